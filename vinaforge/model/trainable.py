"""Which parameters a training stage may change (EEVE-style stages), including LoRA via PEFT.

LoRA is PEFT's (``LoraConfig`` + ``get_peft_model``; new embedding rows through PEFT's
``trainable_token_indices``, whole matrices through ``modules_to_save``). Hand-written is the
``new_embeddings`` mode, which no library provides for a full (non-adapter) model: only the rows of
added tokens may change, in the input embeddings and in the output head, while the rows of the base
vocabulary stay bit-identical. Masking their gradients is not enough: AdamW's decoupled weight
decay shrinks every row of a parameter, gradient or not. So the original rows are also kept aside
and copied back by :meth:`TrainableState.after_optimizer_step`, which the trainer calls after every
``optimizer.step()``.

Modes: ``new_embeddings``, ``embeddings`` (input matrix; with tied weights the head follows),
``embeddings+lm_head``, ``all``, ``layers`` (everything except the input embeddings and the head),
``lora`` (LoRA on the transformer blocks' linear layers + trainable embeddings).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

TrainableSet = Literal["new_embeddings", "embeddings", "embeddings+lm_head", "all", "layers", "lora"]
TRAINABLE_SETS = ("new_embeddings", "embeddings", "embeddings+lm_head", "all", "layers", "lora")
_HOOKS_ATTR = "_vinaforge_grad_hooks"


class LoraSettings(BaseModel):
    """LoRA hyper-parameters (PEFT ``LoraConfig``) and how the embeddings train alongside."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, gt=0)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    embeddings: Literal["auto", "new_rows", "full", "none"] = Field(
        "auto",
        description="auto: only the new rows when the model was extended (num_base_rows known), else full",
    )


@dataclass
class TrainableState:
    """The model to train and what the trainer must do to respect the trainable set."""

    model: Any
    which: str
    num_base_rows: int | None = None
    frozen_rows: list[tuple[torch.nn.Parameter, torch.Tensor]] = field(default_factory=list, repr=False)
    names: dict[int, str] = field(default_factory=dict, repr=False)

    def trainable_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    def after_optimizer_step(self) -> None:
        """Copy the frozen base rows back (undoes weight decay on them); bit-exact, cheap."""
        import torch

        with torch.no_grad():
            for param, saved in self.frozen_rows:
                param[: saved.shape[0]].copy_(saved)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Optimizer groups over trainable parameters: no decay on norms and biases (1-D tensors)."""
        decay, no_decay = [], []
        for name, p in self.trainable_parameters():
            (no_decay if p.dim() < 2 or "norm" in name.lower() else decay).append(p)
        groups = []
        if decay:
            groups.append({"params": decay, "weight_decay": weight_decay})
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        return groups

    def summary(self) -> dict:
        """Trainable and total parameter counts (``new_embeddings`` counts only the new rows)."""
        seen: set[int] = set()
        total = 0
        for p in self.model.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
        trainable = 0
        seen.clear()
        frozen_numel = {id(p): s.numel() for p, s in self.frozen_rows}
        for _, p in self.trainable_parameters():
            if id(p) not in seen:
                seen.add(id(p))
                trainable += p.numel() - frozen_numel.get(id(p), 0)
        return {
            "which": self.which,
            "trainable_params": trainable,
            "total_params": total,
            "trainable_fraction": trainable / total if total else 0.0,
            "frozen_base_rows": self.num_base_rows if self.which == "new_embeddings" else None,
        }

    def release(self) -> None:
        """Remove the gradient hooks (before applying another trainable set to the same model)."""
        remove_hooks(self.model)
        self.frozen_rows = []


def remove_hooks(model) -> None:
    for handle in getattr(model, _HOOKS_ATTR, []):
        handle.remove()
    if hasattr(model, _HOOKS_ATTR):
        setattr(model, _HOOKS_ATTR, [])


def embedding_params(model) -> tuple[torch.nn.Parameter, torch.nn.Parameter | None, bool]:
    """(input embedding weight, output head weight or None, tied?)."""
    emb = model.get_input_embeddings().weight
    head_mod = model.get_output_embeddings()
    head = head_mod.weight if head_mod is not None else None
    tied = head is not None and (head is emb or head.data_ptr() == emb.data_ptr())
    return emb, head, tied


def module_name(model, module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name
    raise ValueError(f"module {type(module).__name__} is not part of the model")


def _base_rows_from_config(model) -> int | None:
    from vinaforge.model.resize import read_resize_info

    info = read_resize_info(model)
    return int(info["num_base_rows"]) if info else None


def _mask_rows_hook(n: int):
    def hook(grad):
        grad = grad.clone()
        grad[:n] = 0
        return grad

    return hook


def _freeze_all(model) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def apply_trainable(
    model: PreTrainedModel,
    which: TrainableSet,
    num_base_rows: int | None = None,
    lora: LoraSettings | None = None,
) -> TrainableState:
    """Set ``requires_grad`` (and hooks, or a PEFT wrapper) for one training stage.

    ``num_base_rows``: rows below it belong to the base vocabulary (``ResizeInfo.num_base_rows``);
    when omitted it is read from the resize record in the model's config.
    """
    if which not in TRAINABLE_SETS:
        raise ValueError(f"unknown trainable set {which!r}; expected one of {', '.join(TRAINABLE_SETS)}")
    from vinaforge.model.tiny import is_peft_model

    if is_peft_model(model):
        raise ValueError(
            "model is already a PEFT model: merge it first (vinaforge.model.trainable.merge_lora)"
        )
    remove_hooks(model)
    if num_base_rows is None:
        num_base_rows = _base_rows_from_config(model)
    emb, head, tied = embedding_params(model)
    state = TrainableState(model=model, which=which, num_base_rows=num_base_rows)

    if which == "lora":
        state.model = wrap_lora(model, lora or LoraSettings(), num_base_rows)
    elif which == "all":
        for p in model.parameters():
            p.requires_grad_(True)
    elif which == "layers":
        for p in model.parameters():
            p.requires_grad_(True)
        emb.requires_grad_(False)
        if head is not None:
            head.requires_grad_(False)
    elif which in ("embeddings", "embeddings+lm_head"):
        _freeze_all(model)
        emb.requires_grad_(True)
        if which == "embeddings+lm_head" and head is not None:
            head.requires_grad_(True)
    else:  # new_embeddings
        _freeze_new_embeddings(model, state, emb, head, tied, num_base_rows)
    summary = state.summary()
    log.info(
        "trainable set %s: %s of %s parameters (%.2f%%)",
        which,
        f"{summary['trainable_params']:,}",
        f"{summary['total_params']:,}",
        100 * summary["trainable_fraction"],
    )
    return state


def _freeze_new_embeddings(model, state: TrainableState, emb, head, tied: bool, n: int | None) -> None:
    if n is None:
        raise ValueError(
            "trainable set new_embeddings needs num_base_rows (from extend_model's ResizeInfo); "
            "the model's config has no resize record either"
        )
    rows = emb.shape[0]
    if not 0 < n < rows:
        raise ValueError(
            f"num_base_rows={n} leaves no new rows to train (the model has {rows} embedding rows)"
        )
    _freeze_all(model)
    params = [emb] if tied or head is None else [emb, head]
    hooks = []
    for p in params:
        p.requires_grad_(True)
        hooks.append(p.register_hook(_mask_rows_hook(n)))
        state.frozen_rows.append((p, p.detach()[:n].clone()))
    setattr(model, _HOOKS_ATTR, hooks)


def wrap_lora(model, settings: LoraSettings, num_base_rows: int | None):
    """PEFT LoRA on the blocks' linear layers, plus the embeddings as ``settings.embeddings`` says."""
    from peft import LoraConfig, get_peft_model

    emb, head, tied = embedding_params(model)
    emb_name = module_name(model, model.get_input_embeddings()).rsplit(".", 1)[-1]
    head_mod = model.get_output_embeddings()
    head_name = module_name(model, head_mod).rsplit(".", 1)[-1] if head_mod is not None else None
    mode = settings.embeddings
    if mode == "auto":
        mode = "new_rows" if num_base_rows else "full"
    if mode == "new_rows" and not num_base_rows:
        raise ValueError("lora embeddings=new_rows needs num_base_rows (the model was not extended)")
    targets = [emb_name] if tied or head_name is None else [emb_name, head_name]
    kwargs: dict[str, Any] = {}
    if mode == "new_rows":
        new_rows = list(range(num_base_rows, emb.shape[0]))
        # with tied weights PEFT ties the head's token adapter to the embedding's by itself
        kwargs["trainable_token_indices"] = {name: new_rows for name in targets}
    elif mode == "full":
        kwargs["modules_to_save"] = targets
        kwargs["ensure_weight_tying"] = tied
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        **kwargs,
    )
    return get_peft_model(model, config)


def merge_lora(model):
    """Fold LoRA (and trainable-token) weights into the base model; returns a plain HF model."""
    from vinaforge.model.tiny import is_peft_model

    if not is_peft_model(model):
        return model
    merged = model.merge_and_unload()
    for p in merged.parameters():
        p.requires_grad_(True)
    return merged
