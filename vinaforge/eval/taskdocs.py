"""The bridge between our checked benchmark files and lm-eval: ``custom_dataset`` loaders.

Each task YAML in ``tasks/`` names ``utils.load``, which calls :func:`load_task_dataset` with
lm-eval's metadata (``--metadata`` on the command line, ``TaskManager(metadata=...)`` in
``harness.py``; lm-eval also passes the model arguments, which we ignore). The result is a
``datasets.DatasetDict`` holding the evaluated split and the few-shot split, rendered with the
chosen template language. Hand-written: lm-eval reads hub datasets, not our local formats.
"""

from __future__ import annotations

from typing import Any

from vinaforge.eval import data, templates


def task_splits(task: str) -> tuple[data.Benchmark, data.SplitSpec]:
    try:
        return data.TASK_INDEX[data.task_name(task)]
    except KeyError:
        known = ", ".join(sorted(data.TASK_INDEX))
        raise data.TaskDataError(f"unknown task {task!r}; known tasks: {known}") from None


def load_task_docs(task: str, split: str, data_dir=None, template: str = "vi") -> list[dict]:
    """Rendered lm-eval documents of one split of the benchmark behind ``task``."""
    bench, spec = task_splits(task)
    root = data.resolve_data_dir(data_dir)
    labeled = spec.labeled if split == spec.split else True
    items = data.load_items(bench, data.require_split_file(bench, split, root), labeled=labeled)
    return [templates.render(bench.fmt, it, template, spec.variant) for it in items]


def load_task_dataset(task: str, data_dir: str | None = None, template: str = "vi", **_: Any):
    """``custom_dataset`` for lm-eval: the evaluated split plus the few-shot split when present."""
    import datasets

    bench, spec = task_splits(task)
    root = data.resolve_data_dir(data_dir)
    splits = {spec.split: load_task_docs(task, spec.split, root, template)}
    fs = bench.fewshot_split
    if fs and fs not in splits:
        # an absent few-shot file only matters when shots are asked for; harness.py checks that
        splits[fs] = load_task_docs(task, fs, root, template) if data.split_file(bench, fs, root) else []
    return datasets.DatasetDict({name: datasets.Dataset.from_list(docs) for name, docs in splits.items()})
