"""Packing: memory-mapped token files, EOS between documents, doc-boundary index, reuse, rejects."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from vinaforge.train.config import SourceConfig
from vinaforge.train.packing import PackedSource, PackingError, pack_source


def test_text_source_round_trip(tmp_path, tokenizer, corpus_dir, vi_texts):
    cfg = SourceConfig(paths=[str(corpus_dir / "high")])
    src = pack_source("high", cfg, tokenizer, tmp_path, progress=False)
    docs = vi_texts[::2]
    expected = [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in docs]
    assert src.meta["n_docs"] == len(docs) == src.meta["n_records"]
    assert src.n_tokens == sum(len(e) for e in expected)
    assert src.tokens.dtype == np.uint16  # 768-token vocabulary
    assert src.doc_starts.tolist() == np.cumsum([0] + [len(e) for e in expected[:-1]]).tolist()
    third = src.tokens[src.doc_starts[2] : src.doc_starts[3]].tolist()
    assert third == expected[2] and tokenizer.decode(third[:-1]) == docs[2]
    # same inputs and tokenizer: the packed folder is reused, not rebuilt
    mtime = (src.path / "tokens.bin").stat().st_mtime_ns
    again = pack_source("high", cfg, tokenizer, tmp_path, progress=False)
    assert again.path == src.path and (again.path / "tokens.bin").stat().st_mtime_ns == mtime
    assert PackedSource.open(src.path).n_tokens == src.n_tokens


def test_blocks_and_document_positions(tmp_path, tokenizer, corpus_dir):
    src = pack_source(
        "low", SourceConfig(paths=[str(corpus_dir / "low")]), tokenizer, tmp_path, progress=False
    )
    seq = 128
    assert src.n_blocks(seq) == src.n_tokens // seq
    # find a block with a document boundary inside it
    start = int(src.doc_starts[3])
    index = start // seq
    ids, labels, pos = src.block(index, seq, doc_masking=True)
    offset = start - index * seq
    assert offset > 0
    assert ids[offset - 1] == tokenizer.eos_token_id
    assert pos[offset] == 0 and pos[offset - 1] == pos[offset - 2] + 1 and pos[0] == 0
    assert labels[offset] == -100 and (labels[:offset] == ids[:offset]).all()
    with pytest.raises(IndexError, match="out of range"):
        src.block(src.n_blocks(seq), seq)


def test_parallel_rejects_untranslated_and_bad_lines(tmp_path, tokenizer):
    path = tmp_path / "pairs.jsonl.gz"
    rows = [
        {"en": "The river is long.", "vi": "Con sông này dài."},
        {"en": "File", "vi": "File"},
        {"en": "Open the door.", "vi": "Hãy mở cửa."},
    ]
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    src = pack_source(
        "par", SourceConfig(paths=[str(path)], kind="parallel"), tokenizer, tmp_path / "p", progress=False
    )
    assert src.meta["n_records"] == 3 and src.meta["rejected"] == {"identical sides (untranslated)": 1}
    assert src.meta["n_docs"] == 4  # two usable pairs x two directions
    assert src.loss_mask is None  # translation examples are learned whole unless mask_prompt is set
    text = tokenizer.decode(src.tokens[: src.doc_starts[1]].tolist())
    assert text.startswith("English: The river is long.\nTiếng Việt: Con sông này dài.")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"en": "a", "vi": "b"}\n{"en": "c"}\n', encoding="utf-8")
    with pytest.raises(PackingError, match=r"bad\.jsonl:2: record has no field 'vi'"):
        pack_source(
            "bad", SourceConfig(paths=[str(bad)], kind="parallel"), tokenizer, tmp_path / "b", progress=False
        )


def test_missing_path_names_the_source(tmp_path, tokenizer):
    cfg = SourceConfig(paths=[str(tmp_path / "nowhere" / "*.jsonl")])
    with pytest.raises(PackingError, match=r"data\.sources\.vi\.paths"):
        pack_source("vi", cfg, tokenizer, tmp_path, progress=False)


def test_document_masking_matches_separate_documents(tmp_path, tokenizer, tiny_model_dir, corpus_dir):
    """Position ids reset per document give each document the logits it gets on its own (sdpa)."""
    import torch

    from vinaforge.model.load import load_causal_lm

    model = load_causal_lm(str(tiny_model_dir), dtype="float32", attn_implementation="sdpa").eval()
    src = pack_source(
        "high", SourceConfig(paths=[str(corpus_dir / "high")]), tokenizer, tmp_path, progress=False
    )
    seq = 96
    index = int(src.doc_starts[5]) // seq
    ids, _, pos = src.block(index, seq, doc_masking=True)
    cut = int(np.flatnonzero(pos == 0)[1])
    with torch.no_grad():
        t = torch.from_numpy(ids)[None]
        packed = model(input_ids=t, position_ids=torch.from_numpy(pos)[None], use_cache=False).logits[0]
        first = model(input_ids=t[:, :cut], use_cache=False).logits[0]
        second = model(input_ids=t[:, cut:], use_cache=False).logits[0]
        plain = model(input_ids=t, use_cache=False).logits[0]
    torch.testing.assert_close(packed[:cut], first, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed[cut:], second, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(plain[cut:], second, atol=1e-3)  # without masking, documents see each other
