"""A Hugging Face tokenizer folder from a GGUF file, checked against llama.cpp's own encodings.

transformers builds a tokenizer from a GGUF file (``AutoTokenizer.from_pretrained(dir,
gguf_file=...)``, with the ``gguf`` package), but on llama.cpp's reference files
(``ggml-vocab-*.gguf`` with ``.inp``/``.out``, 46 texts each) two families come out different,
and both differences touch Vietnamese:

- **Llama-3** (``tokenizer.ggml.pre = llama-bpe``): Meta's tokenizer.json sets
  ``ignore_merges: true`` (a pre-token that is itself a vocabulary entry is one token), which the
  GGUF converter leaves out; without it " Việt" becomes " Vi" + "ệ" + "t" instead of one token.
  Meta's tokenizer also adds ``<|begin_of_text|>`` to every text, which the conversion drops; without
  it llama.cpp's converter took an extended Llama-3 for Smaug (``smaug-bpe``: the same regex
  without ``ignore_merges``) and the GGUF split " Việt" again.
- **SentencePiece** (``tokenizer.ggml.model = llama``): no ``tokenizer.model`` comes out, which
  llama.cpp's converter needs for Phi-3 and Gemma and vinaforge's SentencePiece extension edits;
  :func:`sentencepiece_proto` writes it back from the GGUF's pieces, scores and types. And
  sentencepiece always adds the dummy
  prefix "▁", also before a leading space; the converter's ``Metaspace(prepend_scheme="first")``
  skips it when the text starts with a space. The legacy Llama normalizer (prepend "▁", then
  spaces → "▁") is what sentencepiece and llama.cpp do.

:func:`import_gguf` applies both fixes, saves the folder, and, when the ``.inp``/``.out`` files
sit beside the GGUF file, records how many reference encodings it reproduces
(``vinaforge_gguf_import.json``). A ``.gguf`` path is accepted wherever a base tokenizer is
(:func:`vinaforge.tokenizer.resolve.resolve_base` imports it into a cache folder once).

Hand-written: the two fixes and the reference check; the conversion is transformers'.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vinaforge.tokenizer.resolve import TokenizerError

RECORD = "vinaforge_gguf_import.json"
#: Bumped when an import writes something new (2: ``tokenizer.model`` for SentencePiece
#: vocabularies; 3: Llama-3's BOS), so a cached folder from an older vinaforge is imported again.
IMPORT_VERSION = 3
SEPARATOR = "\n__ggml_vocab_test__\n"
IGNORE_MERGES_PRE = {"llama-bpe", "llama3"}


def open_reader(path: Path) -> Any:
    """A ``GGUFReader`` on ``path``; a missing package or an unreadable file is a TokenizerError."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise TokenizerError("reading GGUF files needs the `gguf` package: pip install 'vinaforge[gguf]' or gguf") from None
    try:
        return GGUFReader(str(path))
    except Exception as err:  # a truncated or foreign file: the reader raises many kinds
        raise TokenizerError(f"{path}: not a readable GGUF file ({type(err).__name__}: {err})") from None


def _scalar(reader: Any, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    return default if field is None else field.parts[field.data[0]].tolist()[0]


def _text(reader: Any, key: str) -> str | None:
    field = reader.fields.get(key)
    return None if field is None else bytes(field.parts[field.data[0]]).decode("utf-8")


def gguf_fields(reader: Any, path: Path) -> dict[str, Any]:
    """The tokenizer's model and pre-tokenizer names, and its BOS, from the GGUF metadata."""
    model = _text(reader, "tokenizer.ggml.model")
    if model is None:
        raise TokenizerError(f"{path}: this GGUF file has no tokenizer (no tokenizer.ggml.model key)")
    add_bos = _scalar(reader, "tokenizer.ggml.add_bos_token")
    return {"model": model, "pre": _text(reader, "tokenizer.ggml.pre"),
            "add_bos": None if add_bos is None else bool(add_bos),
            "bos_id": _scalar(reader, "tokenizer.ggml.bos_token_id")}  # fmt: skip


def _fix(tokenizer_json: dict[str, Any], fields: dict[str, Any]) -> list[str]:
    fixes = []
    if fields.get("pre") in IGNORE_MERGES_PRE and not tokenizer_json["model"].get("ignore_merges"):
        tokenizer_json["model"]["ignore_merges"] = True
        fixes.append("ignore_merges: true (Llama-3: a pre-token in the vocabulary is one token)")
    if fields.get("pre") in IGNORE_MERGES_PRE and fields.get("add_bos") is not False and fields.get("bos_id") is not None:
        bos_id = fields["bos_id"]
        bos = next((t["content"] for t in tokenizer_json.get("added_tokens", []) if t["id"] == bos_id), None)
        if bos is not None and not (tokenizer_json.get("post_processor") or {}).get("special_tokens"):
            tokenizer_json["post_processor"] = {
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}},
            }  # fmt: skip
            fixes.append(f"adds {bos} to every text, as Meta's Llama-3 tokenizer and llama.cpp do")
    pre = tokenizer_json.get("pre_tokenizer") or {}
    if fields.get("model") == "llama" and pre.get("type") == "Metaspace":
        tokenizer_json["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        ]}  # fmt: skip
        tokenizer_json["pre_tokenizer"] = None
        fixes.append("sentencepiece dummy prefix always added (legacy Llama normalizer)")
    return fixes


def sentencepiece_proto(reader: Any) -> Any:
    """The SentencePiece model a ``tokenizer.ggml.model = llama`` vocabulary was converted from.

    llama.cpp's converter wrote the proto's pieces, scores and types into the GGUF; written back
    (BPE, byte fallback if it has byte pieces, Llama's identity normalizer), they give the
    ``tokenizer.model`` that a real Llama-2/Phi-3 folder has and that llama.cpp's converter reads
    a Phi-3's or Gemma's vocabulary from. The ids after the last normal or byte piece (Phi-3's chat
    tokens, GGUF padding) stay out of the proto, as in the original: they are the HF folder's
    added tokens. Both vocabularies here reproduce llama.cpp's 46 reference encodings.
    """
    from sentencepiece import sentencepiece_model_pb2 as pb

    def values(key: str) -> list:
        field = reader.fields[key]
        return [field.parts[i] for i in field.data]

    tokens = [bytes(v).decode("utf-8") for v in values("tokenizer.ggml.tokens")]
    scores = [float(v[0]) for v in values("tokenizer.ggml.scores")]
    types = [int(v[0]) for v in values("tokenizer.ggml.token_type")]
    piece_type = pb.ModelProto.SentencePiece
    size = max(i for i, t in enumerate(types) if t in (piece_type.NORMAL, piece_type.BYTE)) + 1
    unk = _scalar(reader, "tokenizer.ggml.unknown_token_id", 0)
    proto = pb.ModelProto()
    for i in range(size):
        piece = proto.pieces.add()
        piece.piece, piece.score = tokens[i], scores[i]
        control = types[i] in (piece_type.CONTROL, piece_type.USER_DEFINED)  # <s>, </s> in Phi-3's GGUF
        piece.type = piece_type.UNKNOWN if i == unk else (piece_type.CONTROL if control else types[i])
    spec = proto.trainer_spec
    spec.model_type, spec.vocab_size = pb.TrainerSpec.BPE, size
    spec.byte_fallback = piece_type.BYTE in types[:size]
    spec.unk_id, spec.pad_id = unk, -1
    bos, eos = _scalar(reader, "tokenizer.ggml.bos_token_id", -1), _scalar(reader, "tokenizer.ggml.eos_token_id", -1)
    spec.bos_id = bos if 0 <= bos < size else -1
    spec.eos_id = eos if 0 <= eos < size else (tokens.index("</s>") if "</s>" in tokens[:size] else -1)
    norm = proto.normalizer_spec
    norm.name, norm.add_dummy_prefix = "identity", bool(_scalar(reader, "tokenizer.ggml.add_space_prefix", True))
    norm.remove_extra_whitespaces, norm.escape_whitespaces = False, True
    return proto


def reference_check(encode: Callable[[str], list[int]], gguf_path: Path, examples: int = 5) -> dict[str, Any] | None:
    """Matches of llama.cpp's ``.inp``/``.out`` reference encodings (``encode``: text to ids, no
    special tokens added), when they sit beside the file."""
    inp, out = Path(f"{gguf_path}.inp"), Path(f"{gguf_path}.out")
    if not (inp.is_file() and out.is_file()):
        return None
    texts = inp.read_text(encoding="utf-8").split(SEPARATOR)
    refs = out.read_text(encoding="utf-8").splitlines()
    n = min(len(texts), len(refs))
    mismatches = []
    for text, ref in zip(texts[:n], refs[:n], strict=True):
        ids = encode(text)
        want = [int(x) for x in ref.split()]
        if ids != want:
            mismatches.append({"text": text[:80], "ours": ids[:16], "llama.cpp": want[:16]})
    return {"texts": n, "matched": n - len(mismatches), "mismatches": mismatches[:examples]}


def import_gguf(gguf_path: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Write a HF tokenizer folder for ``gguf_path`` into ``out_dir``; returns the import record."""
    from transformers import AutoTokenizer

    from vinaforge.io import atomic_path, atomic_write_json

    src = Path(gguf_path)
    if not src.is_file():
        raise TokenizerError(f"GGUF file {src} does not exist")
    reader = open_reader(src)
    fields = gguf_fields(reader, src)
    try:
        converted = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    except Exception as err:
        raise TokenizerError(f"{src}: transformers cannot build a tokenizer from it ({type(err).__name__}: {err})") from None
    out = Path(out_dir)
    with atomic_path(out) as tmp:
        converted.save_pretrained(str(tmp))
        tj_path = tmp / "tokenizer.json"
        tj = json.loads(tj_path.read_text(encoding="utf-8"))
        fixes = _fix(tj, fields)
        tj_path.write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
        tok = AutoTokenizer.from_pretrained(str(tmp))
        record = {"version": IMPORT_VERSION, "source": str(src), "sha256": _sha256(src), "gguf": fields, "vocab_size": len(tok),
                  "fixes": fixes, "reference": reference_check(lambda t: tok.encode(t, add_special_tokens=False), src)}  # fmt: skip
        if fields["model"] == "llama":
            import sentencepiece as spm

            (tmp / "tokenizer.model").write_bytes(sentencepiece_proto(reader).SerializeToString())
            sp = spm.SentencePieceProcessor(model_file=str(tmp / "tokenizer.model"))
            record["sentencepiece_reference"] = reference_check(sp.encode, src)
        atomic_write_json(tmp / RECORD, record)
    return record


def cached_import(gguf_path: str | Path) -> Path:
    """The imported folder of a GGUF file in the user cache (imported on first use)."""
    src = Path(gguf_path)
    root = Path(os.environ.get("VINAFORGE_CACHE", Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "vinaforge"))
    folder = root.expanduser() / "gguf-tokenizers" / f"{src.stem}-{_sha256(src)[:16]}"
    if _record_version(folder) != IMPORT_VERSION:
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        import_gguf(src, folder)
    return folder


def _record_version(folder: Path) -> int | None:
    try:
        return json.loads((folder / RECORD).read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
