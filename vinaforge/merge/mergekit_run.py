"""Run a mergekit merge from a config dict, with our checks first and an atomic output folder.

mergekit does the merging (its Python API: ``MergeConfiguration`` + ``run_merge``, the same code
as the ``mergekit-yaml`` CLI, reading tensors lazily, one at a time). This module adds what a
pipeline needs around it:

- local model paths made absolute (mergekit takes a relative ``a/b`` for a hub id);
- :mod:`vinaforge.merge.checks` before any tensor is read (architectures, shapes, missing tensors,
  vocabularies of different sizes without a tokenizer setting), so failures are one clear line;
- the output written to a temporary folder and renamed into place only when complete;
- the tokenizer source's padded embedding rows kept (mergekit would trim them to the tokenizer).

Hand-written glue only; the tensor arithmetic is mergekit's.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path
from typing import Any

from vinaforge.io import atomic_path
from vinaforge.merge.checks import MergeInputError, check_models, check_weights

log = logging.getLogger(__name__)

# mergekit 0.1.5's registered methods (checked against its registry at run time)
MERGEKIT_METHODS = (
    "arcee_fusion", "breadcrumbs", "breadcrumbs_ties", "dare_linear", "dare_ties", "della",
    "della_linear", "karcher", "linear", "model_stock", "multislerp", "nearswap", "nuslerp",
    "passthrough", "ram", "ramplus_tl", "sce", "slerp", "task_arithmetic", "ties",
)  # fmt: skip
MERGEKIT_KEYS = (
    "merge_method", "base_model", "models", "slices", "modules", "parameters", "dtype", "out_dtype",
    "tokenizer_source", "tokenizer", "chat_template",
)  # fmt: skip


def check_method(name: str) -> str:
    if name not in MERGEKIT_METHODS:
        raise MergeInputError(
            f"unknown merge method {name!r}; mergekit methods: {', '.join(MERGEKIT_METHODS)} "
            "(or use chat_vector: / lora: for the instruct residual and adapters)"
        )
    return name


def _abs(value: Any) -> Any:
    """A local path as an absolute string (mergekit reads ``a/b`` as a hub id); others unchanged."""
    if isinstance(value, str) and value not in ("union", "base") and "+" not in value and Path(value).exists():
        return str(Path(value).resolve())
    return value


def absolutize_paths(cfg: dict) -> dict:
    """Every model reference of a mergekit config (models, slices, base, tokenizer source) made absolute."""
    cfg = copy.deepcopy(cfg)

    def fix_entries(entries: list | None) -> None:
        for entry in entries or []:
            if isinstance(entry, dict) and "model" in entry:
                entry["model"] = _abs(entry["model"])

    cfg["base_model"] = _abs(cfg.get("base_model")) if cfg.get("base_model") else cfg.get("base_model")
    cfg["tokenizer_source"] = _abs(cfg.get("tokenizer_source"))
    if isinstance(cfg.get("tokenizer"), dict) and isinstance(cfg["tokenizer"].get("source"), str):
        cfg["tokenizer"]["source"] = _abs(cfg["tokenizer"]["source"])
    fix_entries(cfg.get("models"))
    for group in [cfg.get("slices") or []] + [m.get("slices") or [] for m in (cfg.get("modules") or {}).values()]:
        for s in group:
            fix_entries(s.get("sources"))
            if s.get("base_model"):
                s["base_model"] = _abs(s["base_model"])
    for module in (cfg.get("modules") or {}).values():
        fix_entries(module.get("models"))
    return {k: v for k, v in cfg.items() if v is not None}


def _keep_padded_rows(cfg: dict) -> dict:
    """Keep the tokenizer source's padded row count (mergekit otherwise trims to the tokenizer length)."""
    tok = cfg.get("tokenizer")
    if not isinstance(tok, dict) or tok.get("pad_to_multiple_of") or not isinstance(tok.get("source"), str):
        return cfg
    src = Path(tok["source"])
    if not (src / "config.json").is_file():
        return cfg
    rows = json.loads((src / "config.json").read_text(encoding="utf-8")).get("vocab_size")
    if rows and rows > _tokenizer_length(src):
        # rounding the tokenizer length up to a multiple of `rows` gives exactly `rows`
        cfg = {**cfg, "tokenizer": {**tok, "pad_to_multiple_of": int(rows)}}
    return cfg


def _tokenizer_length(folder: Path) -> int:
    from transformers import AutoTokenizer

    return len(AutoTokenizer.from_pretrained(str(folder)).get_vocab())


def load_merge_config(cfg: dict):
    """A validated ``mergekit.config.MergeConfiguration`` (errors as one :class:`MergeInputError`)."""
    from mergekit.config import MergeConfiguration
    from pydantic import ValidationError

    unknown = sorted(set(cfg) - set(MERGEKIT_KEYS))
    if unknown:
        raise MergeInputError(f"mergekit config: unknown key {unknown[0]!r}; expected: {', '.join(MERGEKIT_KEYS)}")
    if "merge_method" not in cfg:
        raise MergeInputError("mergekit config: merge_method is missing")
    check_method(cfg["merge_method"])
    try:
        return MergeConfiguration.model_validate(cfg)
    except (ValidationError, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()
        raise MergeInputError(f"mergekit config: {' '.join(first[:3])}") from None


def referenced_paths(merge_config) -> list[str]:
    """Model folders a merge reads, base model first."""
    listed = [merge_config.base_model] + [m.model for m in merge_config.models or []]
    listed += [src.model for s in merge_config.slices or [] for src in s.sources]
    listed += sorted(merge_config.referenced_models(), key=str)  # modules, in a stable order
    seen: list[str] = []
    for ref in listed:
        if ref is not None and ref.model.path not in seen:
            seen.append(ref.model.path)
    return seen


def run_mergekit(
    cfg: dict, out_dir: str | Path, *, seed: int = 0, threads: int | None = None, overwrite: bool = False,
    shard_size: str = "1B",
) -> dict:
    """Check the models, merge with mergekit into a temporary folder, rename it to ``out_dir``."""
    try:
        from mergekit.merge import MergeOptions, run_merge
        from mergekit.merge_methods.registry import registered_methods
    except ImportError as err:
        raise MergeInputError(f"mergekit is not installed ({err}): pip install 'vinaforge[merge]'") from None

    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise MergeInputError(f"output folder {out} exists; remove it or choose another --output")
    cfg = _keep_padded_rows(absolutize_paths(cfg))
    for warning in check_weights(cfg):
        log.warning(warning)
    merge_config = load_merge_config(cfg)
    if cfg["merge_method"] not in {m.spec.name for m in registered_methods()}:
        raise MergeInputError(f"merge method {cfg['merge_method']!r} is not registered in this mergekit")
    paths = referenced_paths(merge_config)
    has_tok = bool(merge_config.tokenizer or merge_config.tokenizer_source)
    check_models(paths, has_tokenizer_setting=has_tok)
    from mergekit.common import parse_kmb

    # mergekit keeps a whole output shard in memory until it writes it: smaller shards, less RAM
    options = MergeOptions(copy_tokenizer=True, random_seed=seed, quiet=True, num_threads=threads,
                           write_model_card=True, out_shard_size=parse_kmb(shard_size))  # fmt: skip
    started = time.time()
    log.info("merging %d models with mergekit (%s)", len(paths), cfg["merge_method"])
    with atomic_path(out) as tmp:
        try:
            run_merge(merge_config, str(tmp), options=options)
        except (ValueError, RuntimeError, KeyError) as err:
            raise MergeInputError(f"mergekit failed: {err}") from err
    seconds = round(time.time() - started, 2)
    log.info("merged into %s in %.1f s", out, seconds)
    return {"method": cfg["merge_method"], "models": paths, "seconds": seconds, "output": str(out)}
