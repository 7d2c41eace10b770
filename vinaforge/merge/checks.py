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
    from vinaforge.checks import InputCheckError, check_safetensors_complete

    names: set[str] = set()
    for f in files:
        try:
            check_safetensors_complete(f, "model")
        except InputCheckError as err:
            raise MergeInputError(str(err)) from None
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


def tokenizer_fingerprint(path: Path) -> tuple[str, str] | None:
    """(file kind, hash of the vocabulary: token → id) of a folder's tokenizer, or None without one."""
    import hashlib

    tj, spm = path / "tokenizer.json", path / "tokenizer.model"
    if tj.is_file():
        try:
            data = json.loads(tj.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise MergeInputError(f"{tj}: not valid JSON ({err})") from None
        vocab = (data.get("model") or {}).get("vocab")
        added = sorted((t.get("id"), t.get("content")) for t in data.get("added_tokens") or [])
        blob = json.dumps([vocab, added], sort_keys=True, ensure_ascii=False)
        return "tokenizer.json", hashlib.sha256(blob.encode("utf-8")).hexdigest()
    if spm.is_file():
        return "tokenizer.model", hashlib.sha256(spm.read_bytes()).hexdigest()
    return None


def check_tokenizers(models: list[ModelInfo], has_tokenizer_setting: bool) -> None:
    """Same-sized vocabularies can still be different tokenizers (row 500 is another token in
    each): averaging those rows is meaningless, so it needs a tokenizer setting too."""
    if has_tokenizer_setting:
        return
    prints = {m.path: tokenizer_fingerprint(m.path) for m in models}
    for kind in {f[0] for f in prints.values() if f}:  # a tokenizer.json is compared with tokenizer.json files
        known = {p: f[1] for p, f in prints.items() if f and f[0] == kind}
        if len(set(known.values())) <= 1:
            continue
        first = next(iter(known))
        other = next(p for p, f in known.items() if f != known[first])
        raise MergeInputError(
            f"models {first} and {other} have different tokenizers (the same id is a different token); "
            "merge models of one tokenizer, or add `tokenizer: {source: union}` (or a model's folder) "
            "so mergekit aligns the rows by token"
        )


def check_models(paths: list[str | Path], has_tokenizer_setting: bool) -> list[ModelInfo]:
    """All checks on the folders a merge reads; returns their metadata."""
    infos = [read_model_info(p) for p in paths]
    check_compatible(infos)
    check_vocabularies(infos, has_tokenizer_setting)
    check_tokenizers(infos, has_tokenizer_setting)
    return infos


#: methods that add weighted task vectors (model − base): a negative weight subtracts one, which is
#: task arithmetic's "negation" (forgetting a behaviour). Elsewhere a weight is a share of a model.
TASK_VECTOR_METHODS = frozenset({"task_arithmetic", "ties", "dare_ties", "dare_linear", "breadcrumbs",
                                 "breadcrumbs_ties", "della", "della_linear"})  # fmt: skip


def check_weights(cfg: dict) -> list[str]:
    """Refuse a negative ``weight`` where it has no meaning; return a warning for each allowed one."""
    method = str(cfg.get("merge_method", ""))
    warnings = []
    entries = [(m.get("model"), m.get("parameters") or {}) for m in cfg.get("models") or [] if isinstance(m, dict)]
    entries += [(src.get("model"), src.get("parameters") or {}) for sl in cfg.get("slices") or []
                for src in (sl.get("sources") or []) if isinstance(src, dict)]  # fmt: skip
    for model, params in entries:
        weight = params.get("weight") if isinstance(params, dict) else None
        values = weight if isinstance(weight, list) else [weight]
        negative = [v for v in values if isinstance(v, int | float) and v < 0]
        if not negative:
            continue
        if method not in TASK_VECTOR_METHODS:
            raise MergeInputError(
                f"model {model} has weight {negative[0]} in a {method!r} merge, where a weight is a model's share "
                f"and must be >= 0; negative weights mean 'subtract this task vector' only in "
                f"{', '.join(sorted(TASK_VECTOR_METHODS))}"
            )
        warnings.append(f"model {model} has weight {negative[0]}: its task vector is subtracted ({method})")
    return warnings

