"""Extending Mistral-v0.1 (SentencePiece BPE) with tokens learnt from our example corpus."""

from __future__ import annotations

import logging

import pytest
import sentencepiece as spm

from vinaforge.text.syllables import count_syllables
from vinaforge.tokenizer.extend import ExtendSettings, extend_tokenizer
from vinaforge.tokenizer.resolve import TokenizerError, check_sentencepiece


def test_output_loads_and_its_length_matches_the_record(ext_dir, ext_tok, ext_record):
    assert type(ext_tok).__name__ == "LlamaTokenizer"
    added = ext_record["added"]
    assert added["first_id"] == 32000
    assert len(ext_tok) == ext_record["vocab_size"] == 32000 + added["count"] == added["last_id"] + 1
    assert [t["id"] for t in added["tokens"]] == list(range(32000, len(ext_tok)))
    assert len(ext_tok) % 128 == 0 and added["count"] <= 512
    # the slow form: the SentencePiece model holds exactly the same pieces
    proto = check_sentencepiece(ext_dir / "tokenizer.model")
    assert len(proto.pieces) == len(ext_tok)
    assert ext_tok.convert_ids_to_tokens(list(range(len(ext_tok)))) == [p.piece for p in proto.pieces]


def test_every_base_id_keeps_its_token(base_tok, ext_tok):
    ids = list(range(len(base_tok)))
    assert base_tok.convert_ids_to_tokens(ids) == ext_tok.convert_ids_to_tokens(ids)
    assert (ext_tok.bos_token_id, ext_tok.eos_token_id, ext_tok.unk_token_id) == (1, 2, 0)


def test_new_pieces_are_real_merges_scored_below_the_base(ext_dir, mistral_model_file, ext_record):
    base = check_sentencepiece(mistral_model_file)
    ext = check_sentencepiece(ext_dir / "tokenizer.model")
    floor = min(p.score for p in base.pieces if p.type == 1 and p.score > -1e8)
    new = list(ext.pieces)[len(base.pieces) :]
    assert all(p.type == 1 for p in new)  # NORMAL pieces, not user-defined "added tokens"
    scores = [p.score for p in new]
    assert scores[0] < floor and scores == sorted(scores, reverse=True)
    ids = {p.piece: i for i, p in enumerate(ext.pieces)}
    for t in ext_record["added"]["tokens"]:
        if t["kind"] == "merge":
            left, right = t["merge"]
            assert ids[left] < t["id"] and ids[right] < t["id"] and left + right == t["token"]
        else:
            assert t["kind"] == "char" and len(t["token"]) == 1


def test_slow_and_fast_agree_and_round_trip(
    ext_dir, ext_tok, base_tok, mistral_model_file, vi_lines, en_lines
):
    for sp_file, tok in ((ext_dir / "tokenizer.model", ext_tok), (mistral_model_file, base_tok)):
        sp = spm.SentencePieceProcessor(model_file=str(sp_file))
        for lines in (vi_lines, en_lines):
            fast = tok(lines, add_special_tokens=False)["input_ids"]
            assert fast == sp.encode(lines)
            assert [tok.decode(ids) for ids in fast] == lines
            assert sp.decode(fast) == lines


def test_vietnamese_gets_cheaper_and_english_does_not_change(base_tok, ext_tok, vi_lines, en_lines):
    syllables = sum(count_syllables(t) for t in vi_lines)
    base_n = sum(len(x) for x in base_tok(vi_lines, add_special_tokens=False)["input_ids"])
    ext_n = sum(len(x) for x in ext_tok(vi_lines, add_special_tokens=False)["input_ids"])
    assert base_n / syllables > 2.5
    assert ext_n / syllables < 1.7  # 1.56 measured: 512 new tokens learnt on these texts
    base_en = base_tok(en_lines, add_special_tokens=False)["input_ids"]
    ext_en = ext_tok(en_lines, add_special_tokens=False)["input_ids"]
    for b, e in zip(base_en, ext_en, strict=True):
        if max(e) < len(base_tok):  # no new token used: identical ids
            assert b == e
        assert len(e) <= len(b)


def test_frequent_syllables_become_single_tokens(ext_tok):
    for word in ("người", "Việt", "những", "được"):
        assert len(ext_tok(" " + word, add_special_tokens=False).input_ids) == 1, word


def test_too_many_new_tokens_pads_with_placeholders_and_warns(tmp_path, vi_lines, caplog):
    corpus = tmp_path / "few.txt"
    corpus.write_text("\n".join(vi_lines[:3]), encoding="utf-8")
    settings = ExtendSettings(max_new_tokens=4000, pad_to_multiple_of=64, sample_bytes=None)
    with caplog.at_level(logging.WARNING, logger="vinaforge"):
        res = extend_tokenizer(
            "mistral-v0.1", tmp_path / "out", corpus=[corpus], settings=settings, progress=False
        )
    assert "placeholder" in caplog.text
    assert res.placeholders > 0 and res.added < 4000
    assert res.vocab_size % 64 == 0 and res.vocab_size == 32000 + res.added + res.placeholders
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    used = {i for ids in tok(vi_lines, add_special_tokens=False)["input_ids"] for i in ids}
    assert not used & set(range(32000 + res.added, res.vocab_size))  # placeholders never produced


def test_max_new_tokens_below_one_padding_step_is_an_error(tmp_path, vi_lines):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(vi_lines), encoding="utf-8")
    settings = ExtendSettings(max_new_tokens=100, pad_to_multiple_of=128)
    with pytest.raises(TokenizerError, match="max_new_tokens=100"):
        extend_tokenizer("mistral-v0.1", tmp_path / "o", corpus=[corpus], settings=settings, progress=False)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "content", ["", "\n\n", '{"text": ""}\n'], ids=["empty", "blank-lines", "empty-field"]
)
def test_empty_corpus_is_an_error(tmp_path, content):
    corpus = tmp_path / ("c.jsonl" if content.startswith("{") else "c.txt")
    corpus.write_text(content, encoding="utf-8")
    with pytest.raises(TokenizerError, match="empty"):
        extend_tokenizer("mistral-v0.1", tmp_path / "o", corpus=[corpus], progress=False)


def test_corpus_of_only_numbers_and_urls_is_an_error(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("2024 1999 https://example.com/abc 42\n", encoding="utf-8")
    with pytest.raises(TokenizerError, match="no candidate syllables"):
        extend_tokenizer("mistral-v0.1", tmp_path / "o", corpus=[corpus], progress=False)


def test_bad_jsonl_line_names_file_and_line(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "xin chào"}\nnot json\n', encoding="utf-8")
    with pytest.raises(TokenizerError, match=r"c\.jsonl:2"):
        extend_tokenizer("mistral-v0.1", tmp_path / "o", corpus=[corpus], progress=False)


def test_syllables_strategy_and_trained_vocab_source(tmp_path, vi_lines):
    from vinaforge.tokenizer.train import TrainSettings, train_tokenizer

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(vi_lines), encoding="utf-8")
    res = extend_tokenizer(
        "mistral-v0.1",
        tmp_path / "syl",
        corpus=[corpus],
        settings=ExtendSettings(strategy="syllables", max_new_tokens=256, pad_to_multiple_of=64),
        progress=False,
    )
    assert res.added == 256 and res.placeholders == 0
    vocab = tmp_path / "trained"
    train_tokenizer([corpus], vocab, TrainSettings(vocab_size=600), progress=False)
    res = extend_tokenizer(
        "mistral-v0.1",
        tmp_path / "from_vocab",
        vocab_dir=vocab,
        settings=ExtendSettings(max_new_tokens=128, pad_to_multiple_of=64),
        progress=False,
    )
    assert res.vocab_size == 32128
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tmp_path / "from_vocab"))
    assert [tok.decode(x) for x in tok(vi_lines, add_special_tokens=False)["input_ids"]] == vi_lines


def test_candidate_counts_add_up_with_reasons(ext_record):
    from vinaforge.tokenizer.candidates import count_units

    units = count_units(["Xem https://vnexpress.net/tin-moi năm 2024, biến_số (người) người Ẵn"])
    s = units.summary()
    assert s["rejected_occurrences"] == {"url": 5, "digits": 1, "underscore": 1}
    assert units.counts == {"▁Xem": 1, "▁năm": 1, "người": 1, "▁người": 1, "▁Ẵn": 1}
    assert s["total_occurrences"] == 12 == s["accepted_occurrences"] + sum(s["rejected_occurrences"].values())
    rec = ext_record["candidates"]
    assert rec["total_occurrences"] == rec["accepted_occurrences"] + sum(rec["rejected_occurrences"].values())


def test_only_vietnamese_syllables(tmp_path, vi_lines):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(vi_lines + ["Manchester United Ferguson Mourinho"] * 50), encoding="utf-8")
    settings = ExtendSettings(max_new_tokens=256, pad_to_multiple_of=64, only_vietnamese=True)
    res = extend_tokenizer("mistral-v0.1", tmp_path / "o", corpus=[corpus], settings=settings, progress=False)
    tokens = {t["token"] for t in res.record["added"]["tokens"]}
    assert not tokens & {"▁Ferguson", "▁Mourinho", "▁Manchester"}
    rej = res.record["candidates"]["rejected_occurrences"]
    assert rej["not-vietnamese"] >= 200


def test_extension_is_reproducible(tmp_path, vi_lines):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(vi_lines), encoding="utf-8")
    settings = ExtendSettings(max_new_tokens=192, pad_to_multiple_of=64)
    for name in ("a", "b"):
        extend_tokenizer("mistral-v0.1", tmp_path / name, corpus=[corpus], settings=settings, progress=False)
    assert (tmp_path / "a" / "tokenizer.model").read_bytes() == (
        tmp_path / "b" / "tokenizer.model"
    ).read_bytes()
    assert (tmp_path / "a" / "tokenizer.json").read_text() == (tmp_path / "b" / "tokenizer.json").read_text()
