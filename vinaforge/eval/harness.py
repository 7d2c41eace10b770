"""Run the Vietnamese benchmarks through lm-evaluation-harness, used as a library.

``lm_eval.simple_evaluate`` does the work, with a ``TaskManager`` that indexes only our task
folder (``vinaforge/eval/tasks``) and hands it the data folder and template language as
metadata, and the ``hf`` model class (``HFLM``) for a model path. This module adds what lm-eval
lacks for these benchmarks: checking the files before the model loads, a clear error for a
model that does not load, results keyed by benchmark and split, VMLU's category breakdown and
its ``id,answer`` submission for the unlabelled test split.

The same task folder runs under plain lm-eval and gives the same numbers; our task names carry
a ``vf_`` prefix so that they never replace lm-eval's built-in tasks of the same name::

    lm_eval --model hf --model_args pretrained=PATH --include_path vinaforge/eval/tasks \\
        --tasks vf_arc_vi,vf_vmlu_dev --metadata '{"data_dir": "../shared/data/benchmarks"}'
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vinaforge.eval import data, vmlu
from vinaforge.eval.metrics import argmax
from vinaforge.eval.taskdocs import load_task_docs
from vinaforge.model.load import ModelLoadError, check_model_source

log = logging.getLogger(__name__)

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
DEFAULT_TASKS = ("vmlu", "arc_vi", "mmlu_vi")
# lm-eval's automatic batch size probes up to max_batch_size with the longest request; on a CPU
# that allocates batch x length x vocabulary logits in RAM (64 x 300 x 32k floats = 2.5 GB, several
# times over), and a failed allocation is not caught as a GPU OOM is. Cap the probe there.
CPU_MAX_AUTO_BATCH = 8


@dataclass(frozen=True)
class Selected:
    bench: data.Benchmark
    spec: data.SplitSpec


def expand_tasks(names: list[str] | tuple[str, ...], data_dir: Path) -> list[Selected]:
    """Benchmark names (all their splits present) or lm-eval task names, in the order given."""
    out: list[Selected] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name in data.BENCHMARKS:
            bench = data.BENCHMARKS[name]
            for spec in bench.eval_splits:
                if spec.optional and data.split_file(bench, spec.split, data_dir) is None:
                    log.info("%s: no %s split in %s, skipped", name, spec.split, data_dir)
                    continue
                out.append(Selected(bench, spec))
        elif data.task_name(name) in data.TASK_INDEX:
            bench, spec = data.TASK_INDEX[data.task_name(name)]
            out.append(Selected(bench, spec))
        else:
            known = sorted(set(data.BENCHMARKS) | set(data.TASK_INDEX))
            raise data.TaskDataError(f"unknown task {name!r}; known: {', '.join(known)}")
    seen: set[str] = set()
    unique = [s for s in out if not (s.spec.task in seen or seen.add(s.spec.task))]
    if not unique:
        raise data.TaskDataError("no tasks selected")
    return unique


def check_task_data(selected: list[Selected], data_dir: Path, num_fewshot: int | None, template: str) -> dict:
    """Read and check every file the run needs before any model loads; returns split sizes."""
    sizes: dict[str, int] = {}
    for sel in selected:
        docs = load_task_docs(sel.spec.task, sel.spec.split, data_dir, template)
        sizes[sel.spec.task] = len(docs)
        forced_zero = sel.bench.fmt in ("truthfulqa", "xnli")
        if not num_fewshot or forced_zero:
            continue
        fs = sel.bench.fewshot_split
        if fs is None:
            raise data.TaskDataError(f"{sel.bench.name}: has no few-shot split; run it with --num-fewshot 0")
        if data.split_file(sel.bench, fs, data_dir) is None:
            raise data.TaskDataError(
                f"{sel.bench.name}: --num-fewshot {num_fewshot} needs its {fs} split; expected "
                f"{data.expected_paths(sel.bench, fs, data_dir)}"
            )
        pool = (
            len(docs) if fs == sel.spec.split else len(load_task_docs(sel.spec.task, fs, data_dir, template))
        )
        needed = num_fewshot + (1 if fs == sel.spec.split else 0)
        if pool < needed:
            raise data.TaskDataError(
                f"{sel.bench.name}: --num-fewshot {num_fewshot} needs {needed} {fs} examples, the file has {pool}"
            )
    return sizes


def check_benchmark_data(
    tasks: list[str] | tuple[str, ...], data_dir: str | Path | None, num_fewshot: int | None, template: str
) -> dict:
    """Check every benchmark file a run needs (before any model loads); returns split sizes."""
    root = data.resolve_data_dir(data_dir)
    return check_task_data(expand_tasks(list(tasks), root), root, num_fewshot, template)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def auto_batch_cap(device: str, batch_size: int | str, max_batch_size: int) -> int:
    """The largest batch lm-eval's automatic batch size may probe on ``device``."""
    if str(device).startswith("cpu") and str(batch_size) == "auto" and max_batch_size > CPU_MAX_AUTO_BATCH:
        log.info("on CPU the automatic batch size is capped at %d", CPU_MAX_AUTO_BATCH)
        return CPU_MAX_AUTO_BATCH
    return max_batch_size


def load_lm(
    model: str | Path,
    *,
    tokenizer: str | Path | None = None,
    batch_size: int | str = "auto",
    max_batch_size: int = 64,
    device: str | None = None,
    dtype: str = "auto",
    max_length: int | None = None,
):
    """lm-eval's ``hf`` model over a local folder (or hub id); a failure names the model."""
    from lm_eval.models.huggingface import HFLM

    check_model_source(str(model))
    device = device or default_device()
    max_batch_size = auto_batch_cap(device, batch_size, max_batch_size)
    kwargs: dict[str, Any] = dict(
        pretrained=str(model),
        batch_size=batch_size,
        max_batch_size=max_batch_size,
        device=device,
        dtype=dtype,
    )
    if tokenizer:
        kwargs["tokenizer"] = str(tokenizer)
    if max_length:
        kwargs["max_length"] = max_length
    try:
        return HFLM(**kwargs)
    except Exception as err:  # transformers raises OSError, ValueError, KeyError... for a bad model
        raise ModelLoadError(f"model {model} does not load: {type(err).__name__}: {err}") from err


def _metrics_of(task_result: dict) -> dict[str, float]:
    out = {}
    for key, value in task_result.items():
        name, _, filt = key.partition(",")
        if not filt or name.startswith("bypass") or not isinstance(value, int | float):
            continue
        out[name] = float(value)
    return out


def _mean_stderr(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def vmlu_categories(samples: list[dict]) -> dict[str, dict]:
    """Accuracy per VMLU category (and its standard error), from lm-eval's logged samples."""
    by_cat: dict[str, list[float]] = defaultdict(list)
    for s in samples:
        cat = s["doc"].get("category") or "unknown"
        by_cat[cat].append(float(s["acc"]))
    out = {}
    for cat in (*vmlu.CATEGORIES, "unknown"):
        if by_cat.get(cat):
            acc, se = _mean_stderr(by_cat[cat])
            out[cat] = {"acc": acc, "acc_stderr": se, "n": len(by_cat[cat])}
    return out


def predictions(samples: list[dict]) -> list[tuple[str, str]]:
    """(id, predicted letter) per sample: the choice with the highest log-likelihood."""
    rows = []
    for s in sorted(samples, key=lambda s: s["doc_id"]):
        lls = [float(r[0]) for r in s["filtered_resps"]]
        rows.append((s["doc"]["id"], s["doc"]["choices"][argmax(lls)]))
    return rows


def collect_results(
    raw: dict, selected: list[Selected], submission_dir: Path | None, sizes: dict[str, int]
) -> dict[str, dict]:
    """lm-eval's results reshaped as ``{benchmark: {split: {metric: value}}}``."""
    out: dict[str, dict] = {}
    for sel in selected:
        task = sel.spec.task
        split = out.setdefault(sel.bench.name, {}).setdefault(sel.spec.split, {})
        n = raw.get("n-samples", {}).get(task, {}).get("effective", sizes.get(task))
        samples = raw.get("samples", {}).get(task, [])
        split["n"] = n
        if n is not None and sizes.get(task) and n < sizes[task]:
            split["n_total"] = sizes[task]
        if not sel.spec.labeled:
            rows = predictions(samples)
            shares = defaultdict(int)
            for _, letter in rows:
                shares[letter] += 1
            split["answer_shares"] = {k: v / len(rows) for k, v in sorted(shares.items())} if rows else {}
            if submission_dir is not None:
                name = task.removeprefix(data.TASK_PREFIX)
                path = vmlu.write_submission(Path(submission_dir) / f"{name}_submission.csv", rows)
                split["submission"] = str(path)
            continue
        split.update(_metrics_of(raw["results"].get(task, {})))
        if sel.bench.vmlu_subjects and samples:
            split["by_category"] = vmlu_categories(samples)
    return out


def run_benchmarks(
    model,
    tasks: list[str] | tuple[str, ...] = DEFAULT_TASKS,
    *,
    data_dir: str | Path | None = None,
    num_fewshot: int | None = None,
    limit: int | float | None = None,
    template: str = "vi",
    chat_template: bool = False,
    fewshot_as_multiturn: bool = False,
    system_instruction: str | None = None,
    batch_size: int | str = "auto",
    max_batch_size: int = 64,
    device: str | None = None,
    dtype: str = "auto",
    tokenizer: str | Path | None = None,
    seed: int = 1234,
    submission_dir: str | Path | None = None,
    cache: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` (a path, or an lm-eval ``LM``) and return ``{benchmark: {split: metrics}}``.

    The returned dict also holds ``_meta`` (settings, timing, lm-eval version); keys starting
    with ``_`` are never benchmarks.
    """
    import lm_eval
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager

    started = time.time()
    root = data.resolve_data_dir(data_dir)
    selected = expand_tasks(list(tasks), root)
    sizes = check_task_data(selected, root, num_fewshot, template)
    log.info("tasks: %s", ", ".join(f"{s.spec.task} ({sizes[s.spec.task]})" for s in selected))

    lm = (
        model
        if isinstance(model, LM)
        else load_lm(
            model,
            tokenizer=tokenizer,
            batch_size=batch_size,
            max_batch_size=max_batch_size,
            device=device,
            dtype=dtype,
        )
    )
    if chat_template and not getattr(getattr(lm, "tokenizer", None), "chat_template", None):
        raise ModelLoadError(f"model {model} has no chat template; run without --chat-template")

    manager = TaskManager(
        include_path=str(TASKS_DIR),
        include_defaults=False,
        metadata={"data_dir": str(root.resolve()), "template": template},
    )
    raw = lm_eval.simple_evaluate(
        model=lm,
        tasks=[s.spec.task for s in selected],
        num_fewshot=num_fewshot,
        limit=limit,
        log_samples=True,
        bootstrap_iters=1000,
        task_manager=manager,
        apply_chat_template=chat_template,
        fewshot_as_multiturn=fewshot_as_multiturn,
        system_instruction=system_instruction,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
        use_cache=str(cache) if cache else None,
    )
    results = collect_results(raw, selected, Path(submission_dir) if submission_dir else None, sizes)
    results["_meta"] = {
        "model": str(model) if not isinstance(model, LM) else type(model).__name__,
        "tasks": [s.spec.task for s in selected],
        "num_fewshot": num_fewshot,
        "limit": limit,
        "template": template,
        "chat_template": chat_template,
        "data_dir": str(root),
        "batch_sizes": raw.get("config", {}).get("batch_sizes"),
        "lm_eval_version": lm_eval.__version__,
        "seconds": round(time.time() - started, 2),
        "date": dt.datetime.now().isoformat(timespec="seconds"),
    }
    return results


def benchmark_keys(results: dict) -> list[str]:
    return [k for k in results if not k.startswith("_")]
