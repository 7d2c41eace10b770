"""``vinaforge train tokenize``: datatrove tokenizes the corpus before training, into the packed format the
trainer reads (``kind: packed``), with the same ids as in-job packing."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_datatrove_tokenization_equals_in_job_packing_and_trains(
    tmp_path, tok_dir, tokenizer, corpus_dir, tiny_model_dir, base_config
):
    import gzip

    from typer.testing import CliRunner

    from vinaforge.cli import app
    from vinaforge.train.config import SourceConfig
    from vinaforge.train.packing import pack_source

    with gzip.open(corpus_dir / "high" / "00000.jsonl.gz", "rt", encoding="utf-8") as fh:
        n_high = sum(1 for _ in fh)
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "b.jsonl").write_text(json.dumps({"text": "   "}) + "\n" + json.dumps({"text": "Xin chào."}) + "\n")
    out = tmp_path / "tokenized"
    result = CliRunner().invoke(
        app,
        ["train", "tokenize", str(corpus_dir / "high"), str(extra), "--tokenizer", str(tok_dir),
         "--output", str(out), "--set", "workers=1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["n_records"] == n_high + 2 and meta["rejected"] == {"empty text": 1}  # in = kept + rejected

    inline = pack_source(
        "x", SourceConfig(paths=[str(corpus_dir / "high"), str(extra)]), tokenizer, tmp_path / "inline", progress=False
    )
    ours = np.fromfile(out / "tokens.bin", dtype=meta["dtype"])
    assert np.array_equal(ours, np.asarray(inline.tokens))  # same ids, same order, EOS after each document
    assert np.array_equal(np.load(out / "docs.npy"), inline.doc_starts)

    from vinaforge.train.config import CptConfig
    from vinaforge.train.engine import train_cpt

    cfg = base_config(tiny_model_dir, corpus_dir, save_every=100)
    cfg["data"] = {"sources": {"pre": {"kind": "packed", "paths": [str(out)]}}}
    summary = train_cpt(CptConfig.model_validate(cfg), tmp_path / "run")
    assert summary["final_loss"] < summary["first_loss"]


def test_packed_source_refuses_another_tokenizer(tmp_path, corpus_dir, tok_dir, train_tokenizer, vi_texts):
    from vinaforge.train.config import SourceConfig
    from vinaforge.train.packing import PackingError, pack_source
    from vinaforge.train.pretokenize import TokenizeConfig, tokenize_corpus

    tokenize_corpus(TokenizeConfig(inputs=[str(corpus_dir / "low")], tokenizer=str(tok_dir), workers=1), tmp_path / "t")
    other = train_tokenizer(vi_texts[:20], tmp_path / "other_tok", vocab_size=400)
    with pytest.raises(PackingError, match="tokenized with another tokenizer"):
        pack_source("pre", SourceConfig(kind="packed", paths=[str(tmp_path / "t")]), other, tmp_path / "c")
