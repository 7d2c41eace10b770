"""Extending a byte-level BPE ``tokenizer.json`` (GPT-2 style) by appending merges and tokens."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoTokenizer

from vinaforge.tokenizer.extend import ExtendSettings, extend_tokenizer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "corpus"
VI_DOCS = EXAMPLES / "vi_docs.jsonl"


def _merge_pairs(data: dict) -> list[tuple[str, str]]:
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]]


def test_byte_level_extension(byte_bpe_dir, tmp_path, vi_lines, en_lines):
    out = tmp_path / "ext"
    res = extend_tokenizer(
        str(byte_bpe_dir),
        out,
        corpus=[VI_DOCS],
        settings=ExtendSettings(max_new_tokens=400, pad_to_multiple_of=64),
        progress=False,
    )
    base_json = json.loads((byte_bpe_dir / "tokenizer.json").read_text(encoding="utf-8"))
    ext_json = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    base_merges, ext_merges = _merge_pairs(base_json), _merge_pairs(ext_json)
    # base merges untouched and first; new merges after them
    assert ext_merges[: len(base_merges)] == base_merges
    vocab = ext_json["model"]["vocab"]
    for a, b in ext_merges[len(base_merges) :]:
        assert vocab[a] < vocab[a + b] and vocab[b] < vocab[a + b]  # built from earlier tokens
    # ids and length
    base_tok = AutoTokenizer.from_pretrained(str(byte_bpe_dir))
    tok = AutoTokenizer.from_pretrained(str(out))
    assert len(tok) == res.vocab_size and res.vocab_size % 64 == 0
    n = len(base_tok)
    assert tok.convert_ids_to_tokens(list(range(n))) == base_tok.convert_ids_to_tokens(list(range(n)))
    # round trip, cheaper Vietnamese, English unchanged where no new token applies
    vi_ids = tok(vi_lines, add_special_tokens=False)["input_ids"]
    assert [tok.decode(x) for x in vi_ids] == vi_lines
    base_vi = base_tok(vi_lines, add_special_tokens=False)["input_ids"]
    assert sum(map(len, vi_ids)) < 0.6 * sum(map(len, base_vi))
    for b, e in zip(
        base_tok(en_lines, add_special_tokens=False)["input_ids"],
        tok(en_lines, add_special_tokens=False)["input_ids"],
        strict=True,
    ):
        if max(e) < n:
            assert b == e
    assert [tok.decode(x) for x in tok(en_lines, add_special_tokens=False)["input_ids"]] == en_lines


def test_replay_matches_the_real_bpe(byte_bpe_dir, tmp_path, vi_lines):
    """The planner's word-level replay of BPE gives the same tokens as the tokenizers library."""
    from tokenizers import Tokenizer

    from vinaforge.tokenizer.candidates import SPACE, count_units
    from vinaforge.tokenizer.extend_bpe import TokenizersBpeBase
    from vinaforge.tokenizer.resolve import resolve_base

    out = tmp_path / "ext"
    extend_tokenizer(
        str(byte_bpe_dir),
        out,
        corpus=[VI_DOCS],
        settings=ExtendSettings(max_new_tokens=192, pad_to_multiple_of=64),
        progress=False,
    )
    fam = TokenizersBpeBase(resolve_base(str(out)))
    real = Tokenizer.from_file(str(out / "tokenizer.json"))
    units = list(count_units(vi_lines).counts)[:400]
    for unit in units:
        text = unit.replace(SPACE, " ")
        replay = fam.sim.segment(fam.alphabet.to_model(unit))
        assert real.encode(text, add_special_tokens=False).tokens == replay, unit
