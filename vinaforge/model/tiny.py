"""Tiny, randomly initialised models of the families users adapt, and saving any model in HF format.

The architectures are transformers' own (``LlamaConfig``, ``MistralConfig``, ``Qwen2Config``,
``Gemma2Config``, ``Gemma3TextConfig``, ``Phi3Config`` → ``AutoModelForCausalLM.from_config``);
hand-written here are only the few settings that keep each family consistent at a tiny size
(:func:`_arch_kwargs`), the per-family tying default, and the provenance label. A random
model must never be mistaken for a pretrained base in a report, so :func:`build_tiny_model` writes
``"vinaforge": {"random_init": true, ...}`` into ``config.json`` and :func:`is_random_init` reads it
back from a model in memory or a folder on disk.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vinaforge.io import atomic_path

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

RANDOM_INIT_LABEL = "randomly initialised (not a pretrained base)"


def default_intermediate(hidden: int) -> int:
    """SwiGLU width as in Llama: 8/3 of the hidden size, rounded up to a multiple of 64."""
    return int(math.ceil(hidden * 8 / 3 / 64) * 64)


Arch = Literal["mistral", "llama", "qwen2", "gemma2", "gemma3", "phi3"]
ARCHS: tuple[str, ...] = ("mistral", "llama", "qwen2", "gemma2", "gemma3", "phi3")

#: Whether each architecture ties its head to the input embeddings when ``tie_word_embeddings``
#: is not given: as the small published bases do (Qwen2.5-0.5B, every Gemma); Llama-3.2-1B ties
#: too, but Llama-3-8B and Mistral do not, so llama/mistral default to untied.
DEFAULT_TIE: dict[str, bool] = {
    "mistral": False,
    "llama": False,
    "qwen2": True,
    "gemma2": True,
    "gemma3": True,
    "phi3": False,
}

#: Gemma 2 is eager-only in transformers (sdpa cannot soft-cap attention logits).
EAGER_ONLY = ("gemma2",)


def _config_class(arch: str):
    import transformers

    names = {
        "mistral": "MistralConfig",
        "llama": "LlamaConfig",
        "qwen2": "Qwen2Config",
        "gemma2": "Gemma2Config",
        "gemma3": "Gemma3TextConfig",
        "phi3": "Phi3Config",
    }
    if arch not in names:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHS)}")
    return getattr(transformers, names[arch])


def _arch_kwargs(arch: str, hidden: int, heads: int) -> dict[str, Any]:
    """What each family needs beyond the Llama-style fields to stay consistent at a tiny size.

    Gemma's configs default ``head_dim`` to 256 whatever the hidden size, and scale queries by
    ``query_pre_attn_scalar`` (256): both follow hidden/heads here. Gemma 2 keeps its logit
    soft-capping (final 30, attention 50) and its sqrt(hidden) embedding scale, which live in the
    model code. Phi-3's config defaults ``pad_token_id`` to 32000, which is outside a smaller
    vocabulary; it is set from the tokenizer (or None) like the others.
    """
    head_dim = hidden // heads
    if arch == "mistral":
        return {"sliding_window": None}
    if arch == "qwen2":
        return {"use_sliding_window": False}
    if arch in ("gemma2", "gemma3"):
        return {"head_dim": head_dim, "query_pre_attn_scalar": head_dim}
    return {}


def tiny_config(
    arch: Arch,
    vocab_size: int,
    layers: int,
    hidden: int,
    heads: int,
    kv_heads: int | None = None,
    intermediate: int | None = None,
    max_position: int = 4096,
    tie_word_embeddings: bool | None = None,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
):
    """The transformers config of a small model of the given family, checked for consistency.

    ``tie_word_embeddings=None`` takes the family's own default (:data:`DEFAULT_TIE`).
    """
    config_class = _config_class(arch)
    kv_heads = kv_heads or heads
    for name, value in (("vocab_size", vocab_size), ("layers", layers), ("hidden", hidden), ("heads", heads)):
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
    if heads % kv_heads:
        raise ValueError(f"heads ({heads}) must be divisible by kv_heads ({kv_heads})")
    if (hidden // heads) % 2:
        raise ValueError(f"head size hidden/heads = {hidden // heads} must be even for rotary embeddings")
    if pad_token_id is not None and not 0 <= pad_token_id < vocab_size:
        raise ValueError(f"pad_token_id {pad_token_id} is outside the vocabulary (size {vocab_size})")
    kwargs: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate or default_intermediate(hidden),
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_position,
        tie_word_embeddings=DEFAULT_TIE[arch] if tie_word_embeddings is None else tie_word_embeddings,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    kwargs.update(_arch_kwargs(arch, hidden, heads))
    return config_class(**kwargs)


def build_tiny_model(
    arch: Arch,
    vocab_size: int,
    layers: int,
    hidden: int,
    heads: int,
    kv_heads: int | None = None,
    intermediate: int | None = None,
    max_position: int = 4096,
    tie_word_embeddings: bool | None = None,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    seed: int = 0,
    attn_implementation: str = "sdpa",
) -> PreTrainedModel:
    """A float32 model with random weights, labelled ``random_init`` in its config.

    Gemma 2 has no sdpa attention in transformers; it is built with eager attention.
    """
    import torch
    from transformers import AutoModelForCausalLM

    config = tiny_config(
        arch,
        vocab_size,
        layers,
        hidden,
        heads,
        kv_heads=kv_heads,
        intermediate=intermediate,
        max_position=max_position,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    if arch in EAGER_ONLY:
        attn_implementation = "eager"
    config.vinaforge = {"random_init": True, "built_by": "vinaforge.model.tiny", "arch": arch, "seed": seed}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(
            config, dtype=torch.float32, attn_implementation=attn_implementation
        )
    log.info(
        "built a tiny %s model: %d layers, hidden %d, %d heads, vocab %d, %s parameters (%s)",
        arch,
        layers,
        hidden,
        heads,
        vocab_size,
        f"{model.num_parameters():,}",
        RANDOM_INIT_LABEL,
    )
    return model


def tiny_model_for(
    tokenizer, arch: Arch, layers: int, hidden: int, heads: int, **kwargs: Any
) -> PreTrainedModel:
    """:func:`build_tiny_model` sized to ``tokenizer``: its length and its BOS/EOS/PAD ids."""
    return build_tiny_model(
        arch,
        vocab_size=len(tokenizer),
        layers=layers,
        hidden=hidden,
        heads=heads,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **kwargs,
    )


def vinaforge_meta(model_or_path) -> dict:
    """The ``vinaforge`` provenance block of a model's config (empty if it has none)."""
    if isinstance(model_or_path, str | Path):
        cfg_file = Path(model_or_path) / "config.json"
        if not cfg_file.is_file():
            raise FileNotFoundError(f"{cfg_file} not found: not a Hugging Face model folder")
        meta = json.loads(cfg_file.read_text(encoding="utf-8")).get("vinaforge") or {}
    else:
        meta = getattr(model_or_path.config, "vinaforge", None) or {}
    return dict(meta)


def is_random_init(model_or_path) -> bool:
    """True when the model (in memory or a folder) was built with random weights by vinaforge."""
    return bool(vinaforge_meta(model_or_path).get("random_init", False))


def update_vinaforge_meta(model, **fields: Any) -> None:
    """Add provenance fields (kept in ``config.json`` under ``vinaforge``)."""
    meta = vinaforge_meta(model)
    meta.update(fields)
    model.config.vinaforge = meta


def save_model(model, tokenizer, out_dir: str | Path, merge_lora: bool = True) -> Path:
    """Save model + tokenizer as a HF folder, atomically (temp folder, then rename).

    A PEFT model is merged into its base first (``merge_and_unload``, in place) so the folder loads
    with plain ``AutoModelForCausalLM.from_pretrained``; pass ``merge_lora=False`` to save the adapter.
    """
    out = Path(out_dir)
    if merge_lora and is_peft_model(model):
        model = model.merge_and_unload()
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp)
        if tokenizer is not None:
            from vinaforge.chat import ensure_chat_template

            ensure_chat_template(tokenizer)
            from vinaforge.model.load import save_tokenizer

            save_tokenizer(tokenizer, tmp)
    log.info("saved model to %s", out)
    return out


def is_peft_model(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # peft is a dependency, but keep saving usable without it
        return False
    return isinstance(model, PeftModel)
