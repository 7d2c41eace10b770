"""`vinaforge tokenizer advise`: a real extension at each size, costs from a model config, a verdict.

The sweep runs on Mistral-v0.1's tokenizer (shipped in mistral-common) and our own example texts;
SmolLM2's tokenizer and config (../shared/data) show tied embeddings; the verdict rules are
checked on constructed rows, including a base that already covers Vietnamese (Qwen, Llama-3).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vinaforge.tokenizer.advise import (
    Advice,
    ModelShape,
    SizeRow,
    add_costs,
    advise,
    markdown,
    recommend,
    write,
)
from vinaforge.tokenizer.extend import ExtendSettings

REPO = Path(__file__).resolve().parents[2]
VI_DOCS = REPO / "examples" / "corpus" / "vi_docs.jsonl"
EN_DOCS = REPO / "examples" / "corpus" / "en_docs.jsonl"
HELDOUT = REPO / "examples" / "heldout_vi.txt"


def _texts(path):
    from vinaforge.tokenizer.fertility import load_texts

    return load_texts(path)


def _tiny_config(tmp_path, vocab: int, tied: bool):
    cfg = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 64,
           "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 4, "vocab_size": vocab, "tie_word_embeddings": tied}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return tmp_path


def test_sweep_on_mistral_extends_for_real_and_costs_add_up(tmp_path):
    (tmp_path / "m").mkdir()
    model = _tiny_config(tmp_path / "m", 32000, tied=False)
    advice = advise("mistral-v0.1", [str(VI_DOCS)], _texts(HELDOUT), _texts(EN_DOCS), model=model,
                    sizes=[256, 512], settings=ExtendSettings(min_frequency=1), work_dir=tmp_path)  # fmt: skip
    rows = advice.rows
    assert [r.asked for r in rows] == [0, 256, 512]
    assert rows[0].added == 0 and rows[0].vocab_size == 32000 and rows[0].train_cost == 1.0
    assert all(r.vocab_size == 32000 + r.added and 0 < r.added <= r.asked for r in rows[1:])
    f = [r.vi_tokens_per_syllable for r in rows]
    assert f[0] > 2.5 and f[0] > f[1] >= f[2]  # Mistral-v0.1 is English-centric; extension helps
    assert all(r.roundtrip_failures == 0 for r in rows)
    assert all(abs(r.en_tokens_per_word - rows[0].en_tokens_per_word) / rows[0].en_tokens_per_word < 0.005 for r in rows)
    shape = advice.shape
    assert shape.hidden == 64 and not shape.tied and shape.vocab == 32000
    assert rows[1].new_embedding_params == rows[1].added * 64 * 2  # input and output rows
    expected = f[1] * (shape.body_params + rows[1].vocab_size * 64) / (f[0] * (shape.body_params + 32000 * 64))
    assert rows[1].train_cost == pytest.approx(expected)
    assert advice.recommended in (rows[1].added, rows[2].added) and "tokens per syllable" in advice.reason
    write(advice, tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "advise.json").read_text())
    assert saved["recommended_new_tokens"] == advice.recommended and len(saved["rows"]) == 3
    assert (tmp_path / "out" / "advise.png").stat().st_size > 1000
    assert "Recommendation: extend by" in (tmp_path / "out" / "advise.md").read_text()


def test_model_shape_counts_tied_embeddings_once(tmp_path):
    from vinaforge.tokenizer.advise import model_shape

    tied = model_shape(_tiny_config(tmp_path, 1000, tied=True))
    untied_dir = tmp_path / "u"
    untied_dir.mkdir()
    untied = model_shape(_tiny_config(untied_dir, 1000, tied=False))
    assert tied.tied and not untied.tied and tied.body_params == untied.body_params > 0


def _rows(fertilities: list[float], added: list[int], vocab0: int = 150000) -> list[SizeRow]:
    return [SizeRow(asked=a, added=a, vocab_size=vocab0 + a, vi_tokens_per_syllable=f, en_tokens_per_word=1.3,
                    roundtrip_failures=0) for f, a in zip(fertilities, added, strict=True)]  # fmt: skip


def test_a_base_that_covers_vietnamese_is_not_extended():
    rows = _rows([1.35, 1.30, 1.27], [0, 4000, 16000])  # a Qwen2-like base
    add_costs(rows, ModelShape(body_params=360_000_000, hidden=896, vocab=150000, tied=True))
    n, reason = recommend(rows)
    assert n == 0 and "already spends 1.35" in reason


def test_small_savings_are_not_worth_new_rows():
    rows = _rows([2.0, 1.9, 1.85], [0, 1000, 4000], vocab0=32000)
    n, reason = recommend(rows)
    assert n == 0 and "keep the vocabulary" in reason


def test_the_smallest_size_near_the_best_saving_wins():
    rows = _rows([2.9, 1.47, 1.32, 1.23, 1.21], [0, 1000, 2000, 4000, 8000], vocab0=32000)
    add_costs(rows, ModelShape(body_params=7_000_000_000, hidden=4096, vocab=32000, tied=False))
    n, reason = recommend(rows)
    assert n == 4000 and "+4,000 tokens" in reason and "new embedding parameters" in reason
    assert "Recommendation: extend by 4,000" in markdown(Advice("b", rows, None, n, reason))


def test_smollm_with_tied_embeddings(shared_data, tmp_path):
    smol = shared_data / "tokenizers" / "smollm_135m"
    if not (smol / "config.json").is_file():
        pytest.skip("SmolLM tokenizer and config absent from ../shared/data")
    advice = advise(str(smol), [str(VI_DOCS)], _texts(HELDOUT), model=smol, sizes=[512],
                    settings=ExtendSettings(min_frequency=1), work_dir=tmp_path)  # fmt: skip
    assert advice.shape.tied and advice.shape.hidden == 576
    assert advice.rows[1].new_embedding_params == advice.rows[1].added * 576  # one shared row per token
    assert advice.rows[1].vi_tokens_per_syllable < advice.rows[0].vi_tokens_per_syllable


def test_cli_rejects_bad_sizes(tmp_path):
    from typer.testing import CliRunner

    from vinaforge.cli import app

    res = CliRunner().invoke(app, ["tokenizer", "advise", "--base", "mistral-v0.1", "--corpus", str(VI_DOCS),
                                   "--vi-text", str(HELDOUT), "--sizes", "1k,4k"])  # fmt: skip
    assert res.exit_code != 0 and "comma-separated whole numbers" in res.output and "Traceback" not in res.output
