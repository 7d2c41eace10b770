"""DPO / ORPO / KTO on pairs with a clear rule: Vietnamese replies preferred over English ones.

Held-out pairs (never trained on) must end with reward accuracy well above 0.5 and a larger
chosen-over-rejected log-prob margin than before tuning.
"""

from __future__ import annotations

import importlib

import pytest

pytest.importorskip("trl")

CASES = {
    "dpo-lora": ("dpo", {"mode": "lora", "loss_type": ["sigmoid"]}),
    "rpo-full-precomputed": ("dpo", {"mode": "full", "loss_type": ["sigmoid", "sft"], "precompute_ref_log_probs": True}),
    "orpo-lora": ("orpo", {"mode": "lora", "steps": 14}),  # its preference term is one part of an SFT loss
    "kto-full": ("kto", {"mode": "full"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_preference_learns_the_rule_on_heldout_pairs(tiny_dir, tmp_path, repo_root, case):
    method, extra = CASES[case]
    extra = dict(extra)
    steps = extra.pop("steps", 8)
    module = importlib.import_module(f"vinaforge.tune.{method}")
    cfg = module.Config.model_validate({
        "model": str(tiny_dir), "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "data": {"sources": {"pairs": {"paths": [str(repo_root / "examples/instruct/vi_preferences.jsonl")]}},
                 "eval_fraction": 0.25, "benchmark_dirs": []},
        "training": {"max_steps": steps, "batch_size": 4, "learning_rate": 3e-3 if extra["mode"] != "full" else 1e-3,
                     "max_length": 128, "threads": 2},
        "beta": 0.1, "prompts": [], "safety_eval": False, **extra,
    })  # fmt: skip
    summary = getattr(module, f"train_{method}")(cfg, tmp_path / case)
    pref = summary["preference"]
    assert pref["n"] >= 5 and summary["data"]["accounted"]
    assert pref["reward_accuracy"] >= 0.8, pref
    assert pref["margin_after"] > pref["margin_before"], pref
    assert (tmp_path / case / "final" / "config.json").is_file()
