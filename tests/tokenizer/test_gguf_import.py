"""`vinaforge tokenizer import-gguf` on llama.cpp's vocab-only GGUF files (../shared/data).

Each imported tokenizer reproduces all of llama.cpp's reference encodings (.inp/.out), round-trips
Vietnamese, is accepted as a `.gguf` base wherever a tokenizer is taken, and extends.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vinaforge.tokenizer.resolve import TokenizerError

pytest.importorskip("gguf")
FAMILIES = ["qwen2", "llama-bpe", "phi-3", "gpt-2", "llama-spm"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def vocab_dir(shared_data) -> Path:
    d = shared_data / "tokenizers" / "llama_cpp_vocab"
    if not d.is_dir():
        pytest.skip("llama.cpp vocab files absent from ../shared/data")
    return d


@pytest.fixture(scope="module")
def vtb_lines():
    from vinaforge.tokenizer.fertility import load_texts

    path = REPO.parent / "shared" / "data" / "benchmarks" / "ud_vietnamese_vtb" / "vi_vtb-ud-dev.conllu"
    return load_texts(path, limit=500) if path.is_file() else None


@pytest.mark.parametrize("family", FAMILIES)
def test_import_reproduces_llama_cpp_and_round_trips(vocab_dir, family, tmp_path, vtb_lines):
    from transformers import AutoTokenizer

    from vinaforge.tokenizer.gguf_import import RECORD, import_gguf

    rec = import_gguf(vocab_dir / f"ggml-vocab-{family}.gguf", tmp_path / "tok")
    ref = rec["reference"]
    assert ref["texts"] >= 40 and ref["matched"] == ref["texts"], ref["mismatches"]
    assert json.loads((tmp_path / "tok" / RECORD).read_text())["vocab_size"] == rec["vocab_size"]
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    if vtb_lines:
        assert all(tok.decode(tok.encode(t, add_special_tokens=False)) == t for t in vtb_lines)


def test_llama3_keeps_vietnamese_words_whole(vocab_dir, tmp_path):
    from vinaforge.tokenizer.gguf_import import import_gguf

    rec = import_gguf(vocab_dir / "ggml-vocab-llama-bpe.gguf", tmp_path / "tok")
    assert any("ignore_merges" in f for f in rec["fixes"])
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert len(tok.encode(" Việt", add_special_tokens=False)) == 1


def test_sentencepiece_import_equals_sentencepiece_on_vietnamese(vocab_dir, shared_data, tmp_path, vtb_lines):
    import sentencepiece as spm

    from vinaforge.tokenizer.gguf_import import import_gguf

    model = shared_data / "tokenizers" / "llama2" / "tokenizer.model"
    if not model.is_file() or not vtb_lines:
        pytest.skip("Llama-2 tokenizer.model or VTB dev absent")
    import_gguf(vocab_dir / "ggml-vocab-llama-spm.gguf", tmp_path / "tok")
    from transformers import AutoTokenizer

    ours = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    sp = spm.SentencePieceProcessor(model_file=str(model))
    texts = [*vtb_lines, " Xin chào", "  hai dấu cách"]
    assert all(ours.encode(t, add_special_tokens=False) == sp.encode(t) for t in texts)


def test_a_gguf_path_is_a_base_tokenizer_and_extends(vocab_dir, tmp_path, monkeypatch):
    from vinaforge.tokenizer.extend import ExtendSettings, extend_tokenizer
    from vinaforge.tokenizer.resolve import resolve_base, resolve_tokenizer

    monkeypatch.setenv("VINAFORGE_CACHE", str(tmp_path / "cache"))
    gguf = vocab_dir / "ggml-vocab-qwen2.gguf"
    assert resolve_base(gguf).family == "bpe"
    res = extend_tokenizer(gguf, tmp_path / "ext", corpus=[str(REPO / "examples" / "corpus" / "vi_docs.jsonl")],
                           settings=ExtendSettings(max_new_tokens=256, min_frequency=1), progress=False)  # fmt: skip
    base, ext = resolve_tokenizer(gguf), resolve_tokenizer(tmp_path / "ext")
    assert res.vocab_size > res.base_vocab_size == len(base)
    text = "Hello world, this is English."
    assert ext.encode(text, add_special_tokens=False) == base.encode(text, add_special_tokens=False)
    assert len(list((tmp_path / "cache" / "gguf-tokenizers").iterdir())) == 1  # imported once


def test_damaged_gguf_is_a_clear_error(tmp_path):
    from vinaforge.tokenizer.gguf_import import import_gguf

    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    with pytest.raises(TokenizerError, match="broken.gguf: not a readable GGUF file"):
        import_gguf(bad, tmp_path / "out")
    with pytest.raises(TokenizerError, match="does not exist"):
        import_gguf(tmp_path / "missing.gguf", tmp_path / "out2")


def test_cli_import_gguf(vocab_dir, tmp_path):
    from typer.testing import CliRunner

    from vinaforge.cli import app

    res = CliRunner().invoke(app, ["tokenizer", "import-gguf", str(vocab_dir / "ggml-vocab-phi-3.gguf"), "-o", str(tmp_path / "t")])
    assert res.exit_code == 0 and "46/46 identical" in res.output
    again = CliRunner().invoke(app, ["tokenizer", "import-gguf", str(vocab_dir / "ggml-vocab-phi-3.gguf"), "-o", str(tmp_path / "t")])
    assert again.exit_code != 0 and "already exists" in again.output


@pytest.mark.parametrize("family", ["phi-3", "llama-spm"])
def test_sentencepiece_vocab_gets_its_tokenizer_model_back(vocab_dir, family, tmp_path, vtb_lines):
    """Issue 21: a SentencePiece GGUF vocabulary imported as tokenizer.json only could not be
    exported to GGUF again (Phi-3's converter reads tokenizer.model) nor extended as SentencePiece.
    The proto written back from the GGUF's pieces reproduces llama.cpp's reference encodings, and
    equals the HF tokenizer on Vietnamese."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    from vinaforge.tokenizer.gguf_import import import_gguf

    rec = import_gguf(vocab_dir / f"ggml-vocab-{family}.gguf", tmp_path / "tok")
    ref = rec["sentencepiece_reference"]
    assert ref["texts"] >= 40 and ref["matched"] == ref["texts"], ref["mismatches"]
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "tok" / "tokenizer.model"))
    assert sp.get_piece_size() == 32000  # Phi-3's chat tokens and padding stay HF added tokens
    if vtb_lines:
        hf = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
        assert all(sp.encode(t) == hf.encode(t, add_special_tokens=False) for t in vtb_lines)


def test_phi3_folder_extends_as_sentencepiece_keeping_its_chat_tokens(vocab_dir, tmp_path, vtb_lines):
    """Issue 21: extending a Phi-3 folder (tokenizer.model of 32,000 pieces, chat tokens from 32,000)
    used to fail ("32385 ids, expected 32384"): the first new piece took <|endoftext|>'s id.
    Every base id keeps its token, the chat template encodes the same, and Vietnamese gets shorter."""
    from transformers import AutoTokenizer

    from vinaforge.tokenizer.extend import ExtendSettings, extend_tokenizer
    from vinaforge.tokenizer.gguf_import import import_gguf

    import_gguf(vocab_dir / "ggml-vocab-phi-3.gguf", tmp_path / "phi3")
    res = extend_tokenizer(tmp_path / "phi3", tmp_path / "ext", corpus=[str(REPO / "examples" / "corpus" / "vi_docs.jsonl")],
                           settings=ExtendSettings(max_new_tokens=256, min_frequency=1), progress=False)  # fmt: skip
    base, ext = AutoTokenizer.from_pretrained(str(tmp_path / "phi3")), AutoTokenizer.from_pretrained(str(tmp_path / "ext"))
    assert res.base_vocab_size == len(base) == 32064 and len(ext) > len(base)
    assert ext.convert_ids_to_tokens(list(range(len(base)))) == base.convert_ids_to_tokens(list(range(len(base))))
    chat = [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "Hi, how can I help?"}]
    text = base.apply_chat_template(chat, tokenize=False)
    assert ext.apply_chat_template(chat, tokenize=False) == text
    assert ext.encode(text, add_special_tokens=False) == base.encode(text, add_special_tokens=False)
    assert ext.encode("<|user|>\nXin chào", add_special_tokens=False)[0] == base.convert_tokens_to_ids("<|user|>")
    if vtb_lines:
        assert all(ext.decode(ext.encode(t, add_special_tokens=False)) == t for t in vtb_lines)
        assert sum(len(ext.encode(t)) for t in vtb_lines) < sum(len(base.encode(t)) for t in vtb_lines)


def test_a_cached_import_from_an_older_version_is_redone(vocab_dir, tmp_path, monkeypatch):
    from vinaforge.tokenizer.gguf_import import RECORD, cached_import

    monkeypatch.setenv("VINAFORGE_CACHE", str(tmp_path / "cache"))
    folder = cached_import(vocab_dir / "ggml-vocab-phi-3.gguf")
    (folder / "tokenizer.model").unlink()
    rec = json.loads((folder / RECORD).read_text())
    (folder / RECORD).write_text(json.dumps({k: v for k, v in rec.items() if k != "version"}))
    assert cached_import(vocab_dir / "ggml-vocab-phi-3.gguf") == folder and (folder / "tokenizer.model").is_file()
