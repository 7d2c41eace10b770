"""Export to HF + GGUF + Ollama, verified against llama.cpp on an extended-vocabulary tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vinaforge.export.config import Config
from vinaforge.export.export import export_model

HELDOUT = Path(__file__).resolve().parents[2] / "examples" / "heldout_vi.txt"


@pytest.fixture(scope="module")
def exported(family, converter, runtime, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("export") / "vi"
    cfg = Config(model=str(family["vi"]), gguf=["f16", "q8_0"], chat_template="vi_qa", first_new_id=32000,
                 verify_texts=[str(HELDOUT)], card={"licence": "apache-2.0"})  # fmt: skip
    return out, export_model(cfg, out, name="vi-tiny")


def test_gguf_matches_hf_on_new_tokens_and_greedy_generation(exported):
    out, record = exported
    assert record["verified"] is True
    f16, q8 = record["verification"]
    tok = f16["tokenization"]
    assert tok["ok"] and tok["texts"] >= 40 and tok["new_token_ids_used"] > 50  # the new tokens were exercised
    gen = f16["generation"]
    assert gen["ok"] and len(gen["hf"]) == 16 and gen["hf"] == gen["gguf"]
    assert q8["tokenization"]["ok"] and "not compared" in q8["generation"]["note"]
    for v in (f16, q8):
        assert v["metadata"]["ok"] and v["metadata"]["bos_token_id"] == 1 and v["metadata"]["eos_token_id"] == 2
    assert (out / "gguf" / "model-f16.gguf").stat().st_size > (out / "gguf" / "model-q8_0.gguf").stat().st_size


def test_gguf_metadata_holds_the_inference_chat_template(exported):
    from vinaforge.chat.templates import TEMPLATES
    from vinaforge.export.hf import inference_template
    from vinaforge.export.llamacpp import read_metadata

    out, _ = exported
    meta = read_metadata(out / "gguf" / "model-f16.gguf")
    assert meta["tokenizer.chat_template"] == inference_template(TEMPLATES["vi_qa"].jinja)
    assert "generation" not in meta["tokenizer.chat_template"]


def test_hf_folder_card_and_modelfile(exported):
    import torch
    from safetensors import safe_open

    out, _ = exported
    with safe_open(str(out / "hf" / "model.safetensors"), framework="pt") as fh:
        assert fh.get_tensor("model.embed_tokens.weight").dtype == torch.bfloat16
    assert "{% generation %}" in (out / "hf" / "chat_template.jinja").read_text(encoding="utf-8") or \
        "generation" in (out / "hf" / "chat_template.jinja").read_text(encoding="utf-8")
    card = (out / "hf" / "README.md").read_text(encoding="utf-8")
    for section in ("## Base model", "## Evaluation", "## Files", "## Intended use and limitations", "license: apache-2.0"):
        assert section in card
    assert "randomly initialised" in card and "`gguf/model-f16.gguf`: verified" in card
    modelfile = (out / "Modelfile").read_text(encoding="utf-8")
    assert modelfile.startswith("# Ollama") and "FROM ./gguf/model-f16.gguf" in modelfile
    assert "### Câu hỏi:" in modelfile and 'PARAMETER stop "</s>"' in modelfile


def test_stock_converter_scores_would_fail_verification(family, converter, runtime, tmp_path):
    """Without our token-score fix, llama.cpp splits Vietnamese words differently: verification catches it."""
    from vinaforge.export.hf import export_hf, gguf_source
    from vinaforge.export.llamacpp import read_metadata
    from vinaforge.export.verify import VERIFY_TEXTS, verify_gguf

    hf = tmp_path / "hf"  # base vocabulary, no padded rows: the stock converter can load it at all
    info = export_hf(family["instruct"], hf, "fp32", None)
    src = gguf_source(hf, tmp_path / "src", info["jinja"])
    gguf = tmp_path / "stock.gguf"
    subprocess.run([sys.executable, str(converter / "convert_hf_to_gguf.py"), str(src), "--outtype", "f32",
                    "--outfile", str(gguf)], check=True, capture_output=True)  # fmt: skip
    texts = [line for line in HELDOUT.read_text(encoding="utf-8").splitlines() if line.strip()]
    report = verify_gguf(hf, gguf, "f32", read_metadata(gguf), info, [*VERIFY_TEXTS, *texts])
    assert report["verified"] is False and report["tokenization"]["ok"] is False


def test_export_without_runtime_writes_gguf_and_says_not_verified(family, converter, tmp_path, monkeypatch):
    from vinaforge.export import llamacpp
    from vinaforge.export.stage import run
    from vinaforge.stage import StageContext

    monkeypatch.setattr(llamacpp, "runtime_available", lambda: False)
    ctx = StageContext(name="export", kind="export", run_dir=tmp_path, work_dir=tmp_path / "work",
                       final_dir=tmp_path / "export", upstream={}, log=__import__("logging").getLogger("t"))  # fmt: skip
    result = run(Config(model=str(family["instruct"])), ctx)
    assert (tmp_path / "work" / "gguf" / "model-f16.gguf").stat().st_size > 0
    record = json.loads((tmp_path / "work" / "export.json").read_text(encoding="utf-8"))
    assert record["verified"] is False and record["verification"][0]["metadata"]["ok"]
    assert "not verified" in result.report and "vinaforge export verify" in result.report
    assert result.metrics["verified"] == 0
    # the instruct model's own template (mistral) is kept, and the Modelfile has its Go form
    assert "[INST]" in (tmp_path / "work" / "Modelfile").read_text(encoding="utf-8")
    with pytest.raises(Exception, match="could not be verified"):
        run(Config(model=str(family["instruct"]), require_verified=True),
            StageContext(name="e2", kind="export", run_dir=tmp_path, work_dir=tmp_path / "w2",
                         final_dir=tmp_path / "e2", upstream={}, log=ctx.log))  # fmt: skip


def test_cli_export_and_bad_input(family, converter, tmp_path):
    from vinaforge.cli import app

    runner = CliRunner()
    (tmp_path / "taken").mkdir()
    res = runner.invoke(app, ["export", "run", str(family["base"]), "--output", str(tmp_path / "taken")])
    assert res.exit_code == 2 and "exists" in res.output
    res = runner.invoke(app, ["export", "run", str(family["base"]), "--output", str(tmp_path / "o"), "--gguf", "q9_9"])
    assert res.exit_code == 2 and "unknown GGUF type 'q9_9'" in res.output and not (tmp_path / "o").exists()
    res = runner.invoke(app, ["export", "run", str(tmp_path / "nope"), "--output", str(tmp_path / "o")])
    assert res.exit_code == 2 and "nope" in res.output and not (tmp_path / "o").exists()


def test_cli_verify_rechecks_an_export(exported):
    from vinaforge.cli import app

    out, _ = exported
    res = CliRunner().invoke(app, ["export", "verify", str(out)])
    assert res.exit_code == 0, res.output
    assert "gguf/model-f16.gguf: verified" in res.output and "gguf/model-q8_0.gguf: verified" in res.output
    assert json.loads((out / "export.json").read_text(encoding="utf-8"))["verified"] is True


def test_a_real_generation_difference_is_not_taken_for_a_tie(exported, tmp_path):
    """Issue 21: verification lets the GGUF go on from HF's choice where HF's two best logits are
    tied within 16-bit rounding (a random Phi-3 had two logits 5e-5 apart); a model that really
    differs must still fail. Here the HF side's lm_head is scaled by -1 against the same GGUF."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from vinaforge.export.llamacpp import read_metadata
    from vinaforge.export.verify import TIE_TOLERANCE, VERIFY_TEXTS, verify_gguf

    out, record = exported
    gguf = out / "gguf" / "model-f16.gguf"
    hf = tmp_path / "hf"
    shutil.copytree(out / "hf", hf)
    (weights,) = hf.glob("*.safetensors")
    tensors = load_file(str(weights))
    head = next(k for k in tensors if k.endswith("lm_head.weight"))
    tensors[head] = -tensors[head]
    save_file(tensors, str(weights), metadata={"format": "pt"})
    info = {**json.loads((out / "export.json").read_text())["hf"],
            "jinja": (hf / "chat_template.jinja").read_text(encoding="utf-8")}
    report = verify_gguf(hf, gguf, "f16", read_metadata(gguf), info, list(VERIFY_TEXTS))
    gen = report["generation"]
    assert gen["ok"] is False and report["verified"] is False
    assert all(t["logit_gap"] <= TIE_TOLERANCE * 10 for t in gen["ties"])
    assert torch.tensor(gen["hf"]).ne(torch.tensor(gen["gguf"][: len(gen["hf"])])).any()
