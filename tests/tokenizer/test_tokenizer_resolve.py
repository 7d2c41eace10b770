"""Base tokenizers by name, path or hub id; every bad input gives a clear TokenizerError."""

from __future__ import annotations

import json

import pytest

from vinaforge.tokenizer.resolve import TokenizerError, resolve_base, resolve_tokenizer


def test_packaged_mistral_resolves_to_mistral_common_file():
    base = resolve_base("mistral-v0.1")
    assert base.family == "sentencepiece"
    assert base.model_file.name == "tokenizer.model.v1"
    assert "mistral_common" in str(base.model_file)


def test_resolve_tokenizer_loads_mistral_as_llama_tokenizer(base_tok):
    assert type(base_tok).__name__ == "LlamaTokenizer"
    assert len(base_tok) == 32000
    # BOS first, as Mistral's own config does; "▁Hello" is Mistral's id 22557.
    assert base_tok("Hello").input_ids == [1, 22557]


def test_save_pretrained_round_trips(base_tok, tmp_path):
    base_tok.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").is_file()
    assert resolve_tokenizer(str(tmp_path))("Hello").input_ids == [1, 22557]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "nope", "not found"),
        (lambda d: _write(d / "notes.txt", b"hello"), "unknown tokenizer format"),
        (lambda d: _write(d / "bad.model", b"\x00\x01garbage\xff" * 50), "SentencePiece"),
        (lambda d: _write(d / "tokenizer.json", b"{not json"), "not a tokenizer.json"),
        (lambda d: _mkdir(d / "empty_folder"), "no tokenizer.model or tokenizer.json"),
    ],
    ids=["missing", "unknown-format", "corrupt-model", "corrupt-json", "empty-folder"],
)
def test_bad_bases_give_clear_errors(tmp_path, make, message):
    target = make(tmp_path)
    with pytest.raises(TokenizerError, match=message) as err:
        resolve_base(str(target))
    assert str(target.name) in str(err.value) or "nope" in str(err.value)


def test_unigram_tokenizer_json_is_refused(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps({"model": {"type": "Unigram", "vocab": []}}), encoding="utf-8")
    with pytest.raises(TokenizerError, match="only BPE"):
        resolve_base(str(path))


def test_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TokenizerError, match="hub"):
        resolve_base("no-such-owner/no-such-tokenizer")


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _mkdir(path):
    path.mkdir()
    return path
