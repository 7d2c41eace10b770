"""Load a causal LM and its tokenizer from a Hugging Face folder or a hub id.

Thin wrapper over ``transformers.AutoModelForCausalLM`` / ``AutoTokenizer``: the library does the
loading; this module only turns the many ways loading can fail (missing folder, folder without a
``config.json``, hub id unreachable offline, unknown architecture) into one clear error that names
what was asked for, and maps our ``dtype`` strings to torch dtypes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16")


class ModelLoadError(RuntimeError):
    """A model or tokenizer could not be loaded; the message names the source and the cause."""


def torch_dtype(dtype: str):
    """``"bf16"`` → ``torch.bfloat16``; ``"auto"`` passes through (the checkpoint's own dtype)."""
    import torch

    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype == "auto":
        return "auto"
    try:
        return table[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}") from None


def looks_like_path(name_or_path: str) -> bool:
    """A hub id is ``owner/name``; anything absolute, relative-dotted or existing is a local path."""
    p = Path(name_or_path)
    return p.exists() or p.is_absolute() or name_or_path.startswith((".", "~")) or name_or_path.count("/") > 1


def check_model_source(name_or_path: str) -> None:
    """Fail early, with the path in the message, for a local folder that cannot hold a model."""
    if not looks_like_path(name_or_path):
        return
    p = Path(name_or_path).expanduser()
    if not p.exists():
        raise ModelLoadError(f"model folder {p} does not exist")
    if not p.is_dir():
        raise ModelLoadError(f"model path {p} is a file; expected a Hugging Face model folder")
    if not (p / "config.json").is_file():
        raise ModelLoadError(f"model folder {p} has no config.json; is it a Hugging Face model folder?")
    read_model_config(p)
    check_weights(p)


def read_model_config(folder: str | Path) -> dict:
    """``config.json`` of a model folder; a malformed file is an error naming it and the line."""
    import json

    path = Path(folder) / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{path} not found: not a Hugging Face model folder") from None
    except UnicodeDecodeError as err:
        raise ModelLoadError(f"{path}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ModelLoadError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def check_weights(folder: str | Path) -> list[Path]:
    """Every ``*.safetensors`` file of a model folder, whole (:func:`vinaforge.checks.check_safetensors_complete`)."""
    from vinaforge.checks import InputCheckError, check_safetensors_complete

    try:
        return check_safetensors_complete(folder, "model")
    except InputCheckError as err:
        raise ModelLoadError(str(err)) from None


HEAD_ONLY_SUFFIXES = ("ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")


def check_is_causal_lm(folder: str | Path) -> None:
    """Refuse a reward or classifier checkpoint where a causal LM is needed.

    ``AutoModelForCausalLM`` loads a ``…ForSequenceClassification`` folder without a word: the
    body's weights, a freshly random LM head, and the score head dropped, so exporting or
    finetuning a reward model "worked" and produced noise.
    """
    archs = read_model_config(folder).get("architectures") or []
    head = next((a for a in archs if a.endswith(HEAD_ONLY_SUFFIXES)), None)
    if head:
        raise ModelLoadError(f"{folder} is a {head} (a reward or classifier model with a score head, not a "
                             "language model); this step needs a causal LM (…ForCausalLM): give the model "
                             "it was trained from, or a chat model")  # fmt: skip


def load_causal_lm(
    name_or_path: str,
    dtype: str = "auto",
    attn_implementation: str | None = "sdpa",
    device: str | None = None,
) -> PreTrainedModel:
    """Load a causal LM from a local HF folder or a hub id (honours ``HF_HUB_OFFLINE``)."""
    from transformers import AutoModelForCausalLM

    name_or_path = str(name_or_path)
    check_model_source(name_or_path)
    if looks_like_path(name_or_path):
        check_is_causal_lm(name_or_path)
    kwargs = {"dtype": torch_dtype(dtype)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        try:
            model = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
        except ValueError as err:
            if attn_implementation != "sdpa" or "scaled_dot_product_attention" not in str(err):
                raise
            # Gemma 2 has no sdpa path in transformers (it soft-caps attention logits): eager is
            # the implementation its authors use; say so rather than fail on our default
            log.info("%s: the architecture has no sdpa attention; loading it with eager attention", name_or_path)
            kwargs["attn_implementation"] = "eager"
            model = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        raise ModelLoadError(f"cannot load a causal LM from {name_or_path!r}: {err}") from err
    if device:
        model = model.to(device)
    log.info(
        "loaded %s from %s (%s parameters, %s)",
        type(model).__name__,
        name_or_path,
        f"{model.num_parameters():,}",
        next(model.parameters()).dtype,
    )
    return model


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, out_dir: str | Path) -> Path:
    """``save_pretrained``, keeping the SentencePiece ``tokenizer.model`` the tokenizer came from.

    transformers 5 saves only ``tokenizer.json`` for SentencePiece-based tokenizers, but llama.cpp's
    converter reads a Gemma's or Phi-3's vocabulary from ``tokenizer.model`` only, so a model
    folder that lost it cannot be exported to GGUF. The file is copied when its pieces are the
    tokenizer's first ids (an extended proto included), so it cannot describe another vocabulary.
    """
    import shutil

    out = Path(out_dir)
    tokenizer.save_pretrained(str(out))
    src = getattr(tokenizer, "vocab_file", None)
    dst = out / "tokenizer.model"
    if not src or dst.exists() or not str(src).endswith(".model") or not Path(src).is_file():
        return out
    if sentencepiece_matches(Path(src), tokenizer):
        shutil.copyfile(src, dst)
    else:
        log.warning("%s does not match the tokenizer's vocabulary; %s is saved without tokenizer.model", src, out)
    return out


def sentencepiece_matches(model_file: Path, tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when every piece of ``model_file`` has the same id in ``tokenizer``."""
    try:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(model_file))
    except (ImportError, OSError, RuntimeError):
        return False
    vocab = tokenizer.get_vocab()
    n = sp.get_piece_size()
    return n <= len(tokenizer) and all(vocab.get(sp.id_to_piece(i)) == i for i in range(n))


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """Load the tokenizer saved in a HF folder (or a hub id)."""
    from transformers import AutoTokenizer

    name_or_path = str(name_or_path)
    if looks_like_path(name_or_path) and not Path(name_or_path).expanduser().is_dir():
        raise ModelLoadError(f"tokenizer folder {name_or_path} does not exist")
    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelLoadError(f"cannot load a tokenizer from {name_or_path!r}: {err}") from err
