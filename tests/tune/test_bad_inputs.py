"""Every bad input the issue lists gives a clear error naming the file:line or key, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from vinaforge.chat import ChatFormatError
from vinaforge.tune.data import DataSettings, prepare


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")  # fmt: skip
    return path


GOOD = {"messages": [{"role": "user", "content": "Xin chào"}, {"role": "assistant", "content": "Chào bạn!"}]}


def _settings(*paths, **over) -> DataSettings:
    return DataSettings.model_validate({"sources": {"a": {"paths": [str(p) for p in paths]}}, "eval_fraction": 0.0,
                                        "benchmark_dirs": [], **over})  # fmt: skip


def test_malformed_and_wrong_columns_are_kept_with_file_line(tmp_path):
    f = _write(tmp_path / "c.jsonl", [GOOD, "{not json", {"messages": [{"role": "user", "content": "chỉ hỏi"}]},
                                      {"text": "wrong columns"}, GOOD])  # fmt: skip
    p = prepare(_settings(f), kind="conversation")
    reasons = {r.source: r.reason for r in p.rejected}
    assert reasons[f"{f}:2"].startswith("not valid JSON")
    assert reasons[f"{f}:3"] == "no final assistant turn"
    assert "unknown format: keys text" in reasons[f"{f}:4"]
    assert p.counts["in"] == 5 == p.counts["kept_train"] + p.counts["eval"] + p.counts["rejected"]
    p.write(tmp_path)
    assert len((tmp_path / "rejected.jsonl").read_text().splitlines()) == 3


def test_empty_dataset_names_the_file(tmp_path):
    f = _write(tmp_path / "empty.jsonl", [])
    with pytest.raises(ChatFormatError, match=str(f)):
        prepare(_settings(f), kind="conversation")


def test_chosen_equal_rejected_and_sft_data_given_to_dpo(tmp_path):
    f = _write(tmp_path / "p.jsonl", [{"prompt": "Chào", "chosen": "Xin chào!", "rejected": "Hello!"},
                                      {"prompt": "Chào", "chosen": "Xin chào!", "rejected": "Xin chào!"}, GOOD])  # fmt: skip
    p = prepare(_settings(f), kind="preference")
    reasons = {r.source: r.reason for r in p.rejected}
    assert reasons[f"{f}:2"] == "chosen == rejected"
    assert "not a preference pair" in reasons[f"{f}:3"]
    assert len(p.train) == 1


def test_contaminated_and_too_long_records_are_dropped_with_counts(tmp_path, repo_root, tiny_dir):
    from transformers import AutoTokenizer

    from vinaforge.chat import apply_chat_template

    q = json.loads((repo_root / "examples/eval/vmlu_mini/dev.jsonl").read_text(encoding="utf-8").splitlines()[2])
    leaked = {"prompt": q["question"] + " " + " ".join(q["choices"]), "response": "C"}
    long = {"prompt": "Viết dài.", "response": "rất dài " * 400}
    f = _write(tmp_path / "c.jsonl", [GOOD, leaked, long])
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    apply_chat_template(tok, "vi_qa")
    p = prepare(_settings(f, benchmark_dirs=[str(repo_root / "examples/eval")]), kind="conversation",
                tokenizer=tok, max_length=128)  # fmt: skip
    assert p.counts["contaminated"] == 1 and p.contaminated[0]["benchmark"].startswith("vmlu_mini")
    assert p.counts["too_long_dropped"] == 1 and len(p.train) == 1 and p.counts["accounted"]
    kept_flagged = prepare(_settings(f, decontaminate=False, benchmark_dirs=[str(repo_root / "examples/eval")]),
                           kind="conversation")  # fmt: skip
    assert kept_flagged.counts["contaminated"] == 1 and len(kept_flagged.train) == 3  # reported, not dropped


def test_template_without_markers_lora_target_and_config_keys(tiny_dir, tmp_path):
    from vinaforge.tune.common import TuneError, load_model_for_training
    from vinaforge.tune.dpo import Config as DpoConfig
    from vinaforge.tune.sft import Config

    data = {"sources": {"a": {"paths": [str(_write(tmp_path / "c.jsonl", [GOOD]))]}}}
    unmarked = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    cfg = Config.model_validate({"model": str(tiny_dir), "data": data, "chat_template": unmarked})
    with pytest.raises(TuneError, match="chat_template: .*no \\{% generation %\\} markers"):
        load_model_for_training(cfg)
    cfg = Config.model_validate({"model": str(tiny_dir), "data": data, "lora": {"target_modules": ["q_proj", "nope"]}})
    with pytest.raises(TuneError, match="lora.target_modules: 'nope' matches no module.*q_proj"):
        load_model_for_training(cfg)
    with pytest.raises(ValidationError, match="unknown DPO loss_type 'dpo'"):
        DpoConfig.model_validate({"model": str(tiny_dir), "data": data, "loss_type": ["dpo"]})
    with pytest.raises(ValidationError, match="mode"):
        Config.model_validate({"model": str(tiny_dir), "data": data, "mode": "int3"})


def test_cli_reports_a_bad_key_with_its_name(tmp_path):
    from typer.testing import CliRunner

    from vinaforge.cli import app

    cfg = tmp_path / "sft.yaml"
    cfg.write_text("model: x\ndata: {sources: {a: {paths: [x]}}}\ntraining: {lr: 1}\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["tune", "sft", "--config", str(cfg), "--output", str(tmp_path / "o")])
    assert res.exit_code != 0 and "training.lr" in res.output


def test_kto_records_with_bad_labels(tmp_path):
    from vinaforge.tune.kto import read_kto

    f = _write(tmp_path / "k.jsonl", [{"prompt": "Chào", "completion": "Xin chào!", "label": True},
                                      {"prompt": "Chào", "completion": "Hello", "label": "yes"},
                                      {"prompt": "Chào", "completion": "Hello"}])  # fmt: skip
    res = read_kto([str(f)])
    reasons = {r.source: r.reason for r in res.rejected}
    assert "label must be true or false" in reasons[f"{f}:2"] and "missing label" in reasons[f"{f}:3"]
    assert len(res.kept) == 1
