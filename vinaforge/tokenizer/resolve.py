"""Find a base tokenizer by packaged name, local path or hub id, and load it with transformers.

Accepted forms:

- a packaged name: ``mistral-v0.1`` is the Mistral-7B-v0.1 SentencePiece model that the
  ``mistral-common`` package ships (no network needed);
- a SentencePiece ``.model`` file;
- a ``tokenizer.json`` file, or a Hugging Face folder holding ``tokenizer.model`` and/or
  ``tokenizer.json``;
- a hub id (``owner/name``), fetched with ``huggingface_hub`` (tokenizer files only).

Hand-written glue: transformers and huggingface_hub do the loading; this module decides which
family a tokenizer belongs to (SentencePiece BPE or ``tokenizers`` BPE) so that extension can
edit the right file, and turns each way of failing into one message that names the input.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

Family = Literal["sentencepiece", "bpe"]


class TokenizerError(ValueError):
    """A tokenizer or tokenizer input that cannot be used; the message names it and says why."""


#: Tokenizers shipped inside installed packages: name -> (package, file inside the package).
PACKAGED: dict[str, tuple[str, str]] = {
    "mistral-v0.1": ("mistral_common", "data/tokenizer.model.v1"),
    "mistral-7b-v0.1": ("mistral_common", "data/tokenizer.model.v1"),
}

#: tokenizer_config.json written next to a bare SentencePiece model (Llama/Mistral convention:
#: a BOS token before every sequence, no EOS, Metaspace with a prefix space on the first section).
SENTENCEPIECE_TOKENIZER_CONFIG: dict[str, Any] = {
    "tokenizer_class": "LlamaTokenizer",
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "legacy": False,
    "clean_up_tokenization_spaces": False,
}

HUB_PATTERNS = [
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "config.json",
]


@dataclass(frozen=True)
class BaseTokenizer:
    """A resolved tokenizer: which family, which file holds the model, which folder holds the rest."""

    spec: str
    family: Family
    model_file: Path
    """``tokenizer.model`` (SentencePiece) or ``tokenizer.json`` (BPE)."""
    hf_dir: Path | None = None
    """The Hugging Face folder the model file came from, if any (its configs are reused)."""

    @property
    def label(self) -> str:
        return self.spec


def packaged_path(name: str) -> Path:
    """Path of a tokenizer that an installed package ships, e.g. ``mistral-v0.1``."""
    package, rel = PACKAGED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerError(f"tokenizer {name!r} comes with the {package!r} package, which is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    if not path.is_file():
        raise TokenizerError(f"tokenizer {name!r}: {path} is missing from the installed {package!r} package")
    return path


def check_sentencepiece(path: Path) -> Any:
    """Parse a ``.model`` file; a corrupt or foreign file raises :class:`TokenizerError`."""
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2

    proto = sp_pb2.ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except Exception as err:  # protobuf raises DecodeError or RuntimeWarning subclasses
        raise TokenizerError(f"{path}: not a SentencePiece model (cannot parse it: {err})") from None
    if len(proto.pieces) == 0:
        raise TokenizerError(f"{path}: not a SentencePiece model (no pieces)")
    import sentencepiece as spm

    try:
        spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
    except Exception as err:
        raise TokenizerError(f"{path}: corrupt SentencePiece model ({err})") from None
    return proto


def read_tokenizer_json(path: Path) -> dict:
    """Load a ``tokenizer.json``; anything else raises :class:`TokenizerError` naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TokenizerError(f"{path}: not a tokenizer.json ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise TokenizerError(f"{path}: not a tokenizer.json (no 'model' section)")
    return data


def _from_folder(spec: str, folder: Path) -> BaseTokenizer:
    sp_file = folder / "tokenizer.model"
    json_file = folder / "tokenizer.json"
    if json_file.is_file():
        model_type = read_tokenizer_json(json_file)["model"].get("type")
        if model_type == "BPE":
            if sp_file.is_file():
                try:
                    check_sentencepiece(sp_file)
                    return BaseTokenizer(spec, "sentencepiece", sp_file, folder)
                except TokenizerError as err:  # e.g. Llama-3's tiktoken file of the same name
                    log.warning("%s; using %s", err, json_file)
            return BaseTokenizer(spec, "bpe", json_file, folder)
    if sp_file.is_file():
        check_sentencepiece(sp_file)
        return BaseTokenizer(spec, "sentencepiece", sp_file, folder)
    if json_file.is_file():
        raise TokenizerError(
            f"{json_file}: model type {model_type!r} is not supported (only BPE tokenizers can be extended)"
        )
    raise TokenizerError(f"{folder}: no tokenizer.model or tokenizer.json in this folder")


def _from_hub(spec: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec, allow_patterns=HUB_PATTERNS))
    except Exception as err:
        raise TokenizerError(
            f"tokenizer {spec!r}: not a packaged name ({', '.join(PACKAGED)}), not a local file or folder, "
            f"and the Hugging Face hub could not provide it ({type(err).__name__}: {err})"
        ) from None


def resolve_base(spec: str | Path) -> BaseTokenizer:
    """Find the tokenizer named by ``spec`` and tell which family it is."""
    text = str(spec)
    if text in PACKAGED:
        path = packaged_path(text)
        check_sentencepiece(path)
        return BaseTokenizer(text, "sentencepiece", path)
    path = Path(text).expanduser()
    if path.is_dir():
        return _from_folder(text, path)
    if path.is_file():
        if path.suffix == ".gguf":  # llama.cpp's format: imported once into a cache folder
            from vinaforge.tokenizer.gguf_import import cached_import

            return _from_folder(text, cached_import(path))
        if path.name.endswith(".json"):
            data = read_tokenizer_json(path)
            model_type = data["model"].get("type")
            if model_type != "BPE":
                raise TokenizerError(f"{path}: model type {model_type!r} is not supported (only BPE)")
            return BaseTokenizer(text, "bpe", path, path.parent if path.name == "tokenizer.json" else None)
        if path.suffix == ".model" or path.name.startswith("tokenizer.model"):
            check_sentencepiece(path)
            return BaseTokenizer(text, "sentencepiece", path)
        raise TokenizerError(
            f"{path}: unknown tokenizer format (expected a SentencePiece .model, a tokenizer.json, "
            f"a .gguf file or a Hugging Face folder)"
        )
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        return _from_folder(text, _from_hub(text))
    raise TokenizerError(
        f"tokenizer {text!r} not found: not a packaged name ({', '.join(PACKAGED)}), "
        "not an existing file or folder, not a hub id (owner/name)"
    )


def sentencepiece_model_type(proto: Any) -> str:
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2

    return sp_pb2.TrainerSpec.ModelType.Name(proto.trainer_spec.model_type)


def load_sentencepiece_as_hf(model_file: Path, config: dict | None = None) -> PreTrainedTokenizerBase:
    """A transformers tokenizer for a bare SentencePiece model (converted to ``tokenizers``).

    transformers 5 has no SentencePiece-backed Llama tokenizer any more: ``LlamaTokenizer`` is
    the ``tokenizers`` BPE converted from the ``.model`` (vocab plus merges in id order, which is
    score order for Llama/Mistral). A unigram model becomes a ``tokenizers`` Unigram. The source
    path is kept in ``vocab_file``; transformers 5's ``save_pretrained`` writes ``tokenizer.json``
    only (``vinaforge tokenizer extend`` writes ``tokenizer.model`` next to it itself).
    """
    from transformers import AutoTokenizer

    proto = check_sentencepiece(Path(model_file))
    if sentencepiece_model_type(proto) == "UNIGRAM":
        from transformers import PreTrainedTokenizerFast

        tok = PreTrainedTokenizerFast(
            tokenizer_object=unigram_backend(proto),
            bos_token=proto.trainer_spec.bos_piece or None,
            eos_token=proto.trainer_spec.eos_piece or None,
            unk_token=proto.trainer_spec.unk_piece or None,
        )
        tok.name_or_path = str(model_file)
        return tok
    with tempfile.TemporaryDirectory(prefix="vf-spm-") as tmp:
        folder = Path(tmp)
        shutil.copyfile(model_file, folder / "tokenizer.model")
        cfg = dict(config or SENTENCEPIECE_TOKENIZER_CONFIG)
        (folder / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
        try:
            tok = AutoTokenizer.from_pretrained(str(folder))
        except Exception as err:
            raise TokenizerError(f"{model_file}: transformers cannot load it ({err})") from None
    tok.vocab_file = str(model_file)
    tok.name_or_path = str(model_file)
    return tok


def unigram_backend(proto: Any):
    """A ``tokenizers`` Unigram equivalent to a SentencePiece unigram model (identity normalizer).

    transformers 5 converts SentencePiece models for its own model classes only; this is the
    generic form: Metaspace with a prefix space on the first section, byte fallback, and the
    model's control pieces as special tokens.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    backend = Tokenizer(
        models.Unigram(
            [(p.piece, p.score) for p in proto.pieces],
            unk_id=proto.trainer_spec.unk_id,
            byte_fallback=proto.trainer_spec.byte_fallback,
        )
    )
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    specials = [p.piece for p in proto.pieces if p.type in (2, 3)]  # UNKNOWN, CONTROL
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return backend


def load_hf_folder(folder: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except Exception as err:
        raise TokenizerError(f"{folder}: transformers cannot load this tokenizer folder ({err})") from None


def resolve_tokenizer(spec: str | Path) -> PreTrainedTokenizerBase:
    """Load any accepted tokenizer form as a transformers (fast) tokenizer."""
    base = resolve_base(spec)
    if base.hf_dir is not None and (base.hf_dir / "tokenizer_config.json").is_file():
        return load_hf_folder(base.hf_dir)
    if base.family == "sentencepiece":
        return load_sentencepiece_as_hf(base.model_file)
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(base.model_file))
