"""Our ``arc_vi`` and ``truthfulqa_vi`` equal lm-eval's own Okapi tasks on the same local files.

lm-eval ships Okapi's ``arc_vi`` and ``truthfulqa_vi_mc1/mc2`` (lm_eval/tasks/okapi/...), which
read the ``alexandrainst/m_*`` hub datasets. Here they read our fixture files instead, through a
task YAML that includes lm-eval's own and overrides ``dataset_path: json``; our tasks, with the
English template, must give the same ``acc``, ``acc_norm`` (per character), ``mc1`` and ``mc2``
on one tiny real model. Our task names carry a ``vf_`` prefix, so both sets load side by side.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vinaforge.eval.harness import TASKS_DIR, run_benchmarks


def _okapi_dir() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).parent / "tasks" / "okapi"


def _flat_truthfulqa(fixture: Path) -> list[dict]:
    """The fixture's TruthfulQA records in m_truthfulqa's flattened shape (what Okapi's code reads)."""
    from vinaforge.eval import data

    out = []
    for item in data.load_items(data.BENCHMARKS["truthfulqa_vi"], fixture):
        out.append({
            "question": item["question"],
            "mc1_targets_choices": item["mc1_choices"], "mc1_targets_labels": item["mc1_labels"],
            "mc2_targets_choices": item["mc2_choices"], "mc2_targets_labels": item["mc2_labels"],
        })  # fmt: skip
    return out


def _okapi_task(path: Path, include: Path, name: str, files: dict[str, Path], **keys) -> None:
    import yaml

    cfg = {"include": str(include), "task": name, "dataset_path": "json", "dataset_name": None,
           "dataset_kwargs": {"data_files": {k: str(v) for k, v in files.items()}}, **keys}  # fmt: skip
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")


def test_arc_vi_and_truthfulqa_vi_equal_lm_evals_okapi_tasks(tiny_model_dir, fixtures_dir, tmp_path):
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    data_dir = tmp_path / "benchmarks"
    (data_dir / "okapi_vi").mkdir(parents=True)
    src = fixtures_dir / "okapi_vi"
    for name in ("m_arc_vi_test.json", "m_arc_vi_train.json"):
        (data_dir / "okapi_vi" / name).write_bytes((src / name).read_bytes())
    tqa = data_dir / "okapi_vi" / "m_truthfulqa_vi_validation.json"
    tqa.write_text(json.dumps(_flat_truthfulqa(src / "m_truthfulqa_vi_validation.json"), ensure_ascii=False))

    tasks_dir = tmp_path / "okapi_local"
    tasks_dir.mkdir()
    okapi = _okapi_dir()
    arc_files = {"train": data_dir / "okapi_vi" / "m_arc_vi_train.json", "test": data_dir / "okapi_vi" / "m_arc_vi_test.json"}  # fmt: skip
    _okapi_task(tasks_dir / "arc.yaml", okapi / "arc_multilingual" / "arc_vi.yaml", "okapi_arc_vi_local",
                arc_files, validation_split=None)  # fmt: skip
    for mc in ("mc1", "mc2"):
        _okapi_task(tasks_dir / f"tqa_{mc}.yaml", okapi / "truthfulqa_multilingual" / f"truthfulqa_vi_{mc}.yaml",
                    f"okapi_truthfulqa_vi_{mc}_local", {"val": tqa})  # fmt: skip

    lm = HFLM(pretrained=str(tiny_model_dir), batch_size=8, device="cpu", dtype="float32")
    ours = run_benchmarks(lm, ["arc_vi", "truthfulqa_vi"], data_dir=data_dir, template="en")
    theirs = lm_eval.simple_evaluate(
        model=lm,
        tasks=["okapi_arc_vi_local", "okapi_truthfulqa_vi_mc1_local", "okapi_truthfulqa_vi_mc2_local"],
        task_manager=TaskManager(include_path=str(tasks_dir), include_defaults=False),
        bootstrap_iters=0,
    )["results"]

    arc = ours["arc_vi"]["test"]
    assert arc["n"] == 4
    assert arc["acc"] == theirs["okapi_arc_vi_local"]["acc,none"]
    assert arc["acc_norm"] == theirs["okapi_arc_vi_local"]["acc_norm,none"]
    assert 0.0 <= arc["acc_bytes"] <= 1.0
    tqa_ours = ours["truthfulqa_vi"]["validation"]
    assert tqa_ours["n"] == 3
    assert tqa_ours["mc1"] == theirs["okapi_truthfulqa_vi_mc1_local"]["acc,none"]
    assert tqa_ours["mc2"] == pytest.approx(theirs["okapi_truthfulqa_vi_mc2_local"]["acc,none"], rel=1e-9)


def test_our_task_names_do_not_shadow_lm_eval_builtins():
    """Every task in our folder is ``vf_``-prefixed and named by no YAML task in lm-eval's own tree."""
    import re

    import lm_eval

    def names(root: Path) -> set[str]:
        found = set()
        for path in root.rglob("*.yaml"):
            found.update(re.findall(r"^task:\s*['\"]?([\w.-]+)", path.read_text(encoding="utf-8", errors="replace"), re.M))
        return found

    ours = names(TASKS_DIR)
    assert len(ours) == 12 and all(name.startswith("vf_") for name in ours)
    builtin = names(Path(lm_eval.__file__).parent / "tasks")
    assert {"arc_vi", "truthfulqa_vi_mc1", "xcopa_vi"} <= builtin  # the names we used to shadow
    assert not ours & builtin
