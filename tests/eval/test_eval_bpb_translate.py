"""Bits per byte equals a hand computation; translation scores equal sacrebleu on the saved output."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from vinaforge.eval import translate
from vinaforge.eval.cli import app
from vinaforge.eval.translate import ParallelDataError

runner = CliRunner()


def _hand_bpb(model_dir, texts: list[str]) -> float:
    """Sum of -log p(token) over every token of every text (first token after BOS), per byte."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    nll = 0.0
    for text in texts:
        ids = [tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        logp = torch.log_softmax(logits.double(), dim=-1)
        nll -= sum(float(logp[i, ids[i + 1]]) for i in range(len(ids) - 1))
    return nll / (math.log(2) * sum(len(t.encode("utf-8")) for t in texts))


def test_bpb_command_equals_hand_computation(tiny_model_dir, repo_root, tmp_path):
    heldout = repo_root / "examples" / "heldout_vi.txt"
    out = tmp_path / "bpb.json"
    res = runner.invoke(
        app,
        [
            "bpb",
            "--model",
            str(tiny_model_dir),
            "--text",
            str(heldout),
            "--max-texts",
            "3",
            "--json",
            str(out),
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "bits per byte:" in res.output
    got = json.loads(out.read_text())
    texts = [t for t in heldout.read_text(encoding="utf-8").splitlines() if t.strip()][:3]
    assert got["n_texts"] == 3 and got["n_bytes"] == sum(len(t.encode()) for t in texts)
    assert got["bits_per_byte"] == pytest.approx(_hand_bpb(tiny_model_dir, texts), rel=1e-5)
    # a random model over a 32k vocabulary is near log2(32000) bits per token
    assert got["token_perplexity"] == pytest.approx(32000, rel=0.5)


def test_bpb_command_bad_inputs(tiny_model_dir, tmp_path):
    res = runner.invoke(app, ["bpb", "--model", str(tmp_path / "missing"), "--text", str(tmp_path)])
    assert res.exit_code == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "một"}\n{"txt": "hai"}\n', encoding="utf-8")
    res = runner.invoke(app, ["bpb", "--model", str(tiny_model_dir), "--text", str(bad)])
    assert res.exit_code == 2 and "bad.jsonl:2" in res.output


def test_parallel_files_and_their_errors(repo_root, tmp_path):
    pairs = translate.read_pairs(repo_root / "examples" / "parallel" / "en_vi.jsonl")
    assert len(pairs) == 80 and translate.sides(pairs[0], "vi-en")[0] == pairs[0].vi
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"en": "Hi", "vi": "Chào"}\n{"en": "Bye"}\n', encoding="utf-8")
    with pytest.raises(ParallelDataError, match="p.jsonl:2: record has no text in field 'vi'"):
        translate.read_pairs(bad)
    en, vi = tmp_path / "a.en", tmp_path / "a.vi"
    en.write_text("one\ntwo\nthree\n", encoding="utf-8")
    vi.write_text("một\nhai\n", encoding="utf-8")
    with pytest.raises(ParallelDataError, match="has 3 lines but .* has 2"):
        translate.read_aligned(en, vi)
    vi.write_text("một\n\nba\n", encoding="utf-8")
    with pytest.raises(ParallelDataError, match="a.vi:2: empty line"):
        translate.read_aligned(en, vi)
    tsv = tmp_path / "t.tsv"
    tsv.write_text("Hello.\tXin chào.\tCC-BY 2.0 (France) Attribution: example\n", encoding="utf-8")
    assert translate.read_pairs(tsv)[0].vi == "Xin chào."


def test_translate_command_scores_its_own_output(tiny_model_dir, repo_root, tmp_path):
    from sacrebleu.metrics import BLEU, CHRF

    out = tmp_path / "tr"
    res = runner.invoke(
        app,
        [
            "translate",
            "--model",
            str(tiny_model_dir),
            "--pairs",
            str(repo_root / "examples" / "parallel" / "en_vi.jsonl"),
            "--max-pairs",
            "6",
            "--shots",
            "1",
            "--max-new-tokens",
            "8",
            "--output",
            str(out),
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "results.json").read_text())["translation"]
    assert set(summary) == {"en-vi", "vi-en"}
    for direction in ("en-vi", "vi-en"):
        rows = [json.loads(line) for line in (out / f"{direction}.hyps.jsonl").read_text().splitlines()]
        assert len(rows) == 6 and all("\n" not in r["hypothesis"] for r in rows)
        hyps, refs = [r["hypothesis"] for r in rows], [[r["reference"] for r in rows]]
        assert summary[direction]["chrf++"] == pytest.approx(
            CHRF(word_order=2).corpus_score(hyps, refs).score
        )
        assert summary[direction]["bleu"] == pytest.approx(BLEU().corpus_score(hyps, refs).score)
        assert "nrefs:1" in summary[direction]["chrf++_signature"]
        assert not (out / f"{direction}.partial.jsonl").exists()


def test_translation_resumes_from_finished_hypotheses(tiny_model_dir, repo_root, tmp_path):
    from vinaforge.generate import SamplingParams
    from vinaforge.generate.local import LocalBackend

    pairs = translate.read_pairs(repo_root / "examples" / "parallel" / "en_vi.jsonl")[:4]
    (tmp_path / "en-vi.partial.jsonl").write_text(
        '{"i": 0, "hyp": "đã dịch"}\n{"i": 2, "hyp": "cũng đã dịch"}\n{"i": 3, "hy', encoding="utf-8"
    )
    backend = LocalBackend(str(tiny_model_dir))
    translate.translate_pairs(backend, pairs, "en-vi", tmp_path, params=SamplingParams(max_new_tokens=4))
    rows = [json.loads(line) for line in (tmp_path / "en-vi.hyps.jsonl").read_text().splitlines()]
    assert rows[0]["hypothesis"] == "đã dịch" and rows[2]["hypothesis"] == "cũng đã dịch"
    assert len(rows) == 4
    assert backend.usage.requests == 2  # only sentences 1 and 3 (its line was cut) were translated
