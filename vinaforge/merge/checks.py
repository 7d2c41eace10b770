"""Checks on the input models of a merge, before any tensor is read.

mergekit's own failures come late and read like internals ("Tensor size mismatch for
lm_head.weight", a KeyError on a tensor name, a hub lookup for a mistyped folder). These checks
read only ``config.json`` and the safetensors headers, and turn each problem a user meets into
one line that names the model folder and what to change: a missing folder, different
architectures or shapes, tensors one model lacks, and vocabularies of different sizes without a
tokenizer setting.

Hand-written: mergekit validates its config, not the compatibility of the models it is given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# config.json keys that must agree for tensors to line up (the vocabulary is checked separately)
SHAPE_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
)
EMBEDDING_NAMES = ("model.embed_tokens.weight", "lm_head.weight")


class MergeInputError(ValueError):
    """Models or settings that cannot be merged as asked; the message names the model and the fix."""


@dataclass
class ModelInfo:
    """What the checks need to know about one model folder (read without loading weights)."""

    path: Path
    architecture: str
    model_type: str
    shape: dict[str, int]
    vocab_rows: int | None
    tied: bool
    tensors: set[str] = field(default_factory=set)


def read_model_info(path: str | Path) -> ModelInfo:
    """Architecture, shapes and tensor names of a HF model folder, from its metadata only."""
    p = Path(path)
    if not p.is_dir():
        raise MergeInputError(f"model folder {p} does not exist")
    cfg_file = p / "config.json"
    if not cfg_file.is_file():
        raise MergeInputError(f"model folder {p} has no config.json; is it a Hugging Face model folder?")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise MergeInputError(f"{cfg_file}: not valid JSON ({err})") from None
    if "text_config" in cfg and "hidden_size" not in cfg:
        cfg = {**cfg, **cfg["text_config"]}
    archs = cfg.get("architectures") or ["?"]
    return ModelInfo(
        path=p,
        architecture=archs[0],
        model_type=str(cfg.get("model_type", "?")),
        shape={k: cfg[k] for k in SHAPE_KEYS if cfg.get(k) is not None},
        vocab_rows=cfg.get("vocab_size"),
        tied=bool(cfg.get("tie_word_embeddings", False)),
        tensors=tensor_names(p),
    )


def tensor_names(path: Path) -> set[str]:
    """Tensor names stored in a folder's safetensors files (headers only)."""
    from safetensors import safe_open

    files = sorted(path.glob("*.safetensors"))
    if not files:
        if list(path.glob("*.bin")):
            return set()  # pickled checkpoints: mergekit reads them; names are not checked here
        raise MergeInputError(f"model folder {path} holds no weights (*.safetensors or *.bin)")
    names: set[str] = set()
    for f in files:
        with safe_open(str(f), framework="pt") as fh:
            names.update(fh.keys())
    return names


def _list(names: set[str], limit: int = 4) -> str:
    shown = sorted(names)[:limit]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(shown) + more


def check_compatible(models: list[ModelInfo]) -> None:
    """Same architecture, same shapes, same tensors; raises :class:`MergeInputError` otherwise."""
    first = models[0]
    for other in models[1:]:
        if (other.architecture, other.model_type) != (first.architecture, first.model_type):
            raise MergeInputError(
                f"models have different architectures: {first.path} is {first.architecture} "
                f"({first.model_type}), {other.path} is {other.architecture} ({other.model_type}); "
                "only models of one architecture can be merged"
            )
        diff = {k for k in set(first.shape) | set(other.shape) if first.shape.get(k) != other.shape.get(k)}
        if diff:
            detail = ", ".join(f"{k} {first.shape.get(k)} vs {other.shape.get(k)}" for k in sorted(diff))
            raise MergeInputError(f"models {first.path} and {other.path} have different shapes: {detail}")
        if first.tensors and other.tensors:
            a, b = _comparable(first), _comparable(other)
            for lacking, holder, missing in ((other, first, a - b), (first, other, b - a)):
                if missing:
                    raise MergeInputError(
                        f"model {lacking.path} is missing tensors that {holder.path} has: "
                        f"{_list(missing)}; is the checkpoint complete?"
                    )


def _comparable(info: ModelInfo) -> set[str]:
    """Tensor names, ignoring the output head a tied model does not store."""
    return {n for n in info.tensors if n != "lm_head.weight"} if info.tied else set(info.tensors)


def check_vocabularies(models: list[ModelInfo], has_tokenizer_setting: bool) -> None:
    """Different embedding sizes need a tokenizer setting that says where new-token rows come from."""
    rows = {str(m.path): m.vocab_rows for m in models}
    if len(set(rows.values())) > 1 and not has_tokenizer_setting:
        detail = ", ".join(f"{p}: {n} rows" for p, n in rows.items())
        largest = max(models, key=lambda m: m.vocab_rows or 0)
        raise MergeInputError(
            f"the models' vocabularies differ ({detail}) and no tokenizer setting says how to merge them; "
            f"add `tokenizer: {{source: {largest.path}}}` (the extended model's tokenizer: new-token rows "
            "come only from the models that have them) or `tokenizer_source: union`"
        )


def check_models(paths: list[str | Path], has_tokenizer_setting: bool) -> list[ModelInfo]:
    """All checks on the folders a merge reads; returns their metadata."""
    infos = [read_model_info(p) for p in paths]
    check_compatible(infos)
    check_vocabularies(infos, has_tokenizer_setting)
    return infos
