"""Speed and memory levers for the training step, each off by default and tested against the plain path.

- :func:`chunked_linear_cross_entropy` (``fused_loss: chunked``): the LM head and the cross-entropy
  are computed over chunks of positions, and each chunk's gradients (w.r.t. the hidden states and
  the head weight) are computed in the forward pass, so the ``batch x seq x vocab`` fp32 logits are
  never held in memory: at seq 2048 x batch 8 x 32k vocab that is 2 GiB of logits plus 2 GiB of
  their gradient, more for extended vocabularies. Same idea as Liger's fused linear cross-entropy,
  in plain PyTorch so that it runs (and is tested) on CPU; ``fused_loss: liger`` uses Liger's
  Triton kernel on GPUs instead.
- :func:`apply_liger` (``liger_kernels: true``, GPU): Liger's RMSNorm, SwiGLU, RoPE (and fused
  linear cross-entropy) patched into the model instance, as ``Trainer(use_liger_kernel=True)`` does.

Both replace the model's ``forward`` on the instance only, so accelerate's DDP/FSDP wrappers and
``torch.compile`` still go through the module's ``__call__`` (hooks, sharding) as usual.

Hand-written: the chunked loss (a few lines of PyTorch; Liger's kernel needs Triton and a GPU);
Liger itself is the ``liger-kernel`` package. ``tests/train/test_levers.py`` checks that each lever
gives the plain path's loss and gradients in fp32 on CPU.
"""

from __future__ import annotations

import types
from typing import Any

IGNORE_INDEX = -100


class LeverError(ValueError):
    """A lever that cannot apply to this model or machine; the message names the setting."""


def _chunked_ce_function():
    import torch

    class ChunkedLinearCrossEntropy(torch.autograd.Function):
        """sum over positions of -log softmax(h W^T)[target] / denom, logits never stored whole."""

        @staticmethod
        def forward(ctx, hidden, weight, targets, denom, chunk_size):
            n = hidden.shape[0]
            need_w = weight.requires_grad
            grad_h = torch.empty_like(hidden) if hidden.requires_grad else None
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            w = weight.to(hidden.dtype)
            for start in range(0, n, chunk_size):
                end = min(start + chunk_size, n)
                h = hidden[start:end]
                t = targets[start:end]
                valid = t != IGNORE_INDEX
                safe = torch.where(valid, t, torch.zeros_like(t))
                logits = (h @ w.t()).float()
                lse = torch.logsumexp(logits, dim=-1)
                picked = logits.gather(1, safe[:, None]).squeeze(1)
                total += ((lse - picked) * valid).sum()
                # d(sum nll)/d logits = softmax - onehot, zero on ignored positions
                g = torch.exp(logits - lse[:, None])
                g[torch.arange(end - start, device=g.device), safe] -= 1.0
                g *= valid[:, None]
                if grad_h is not None:
                    grad_h[start:end] = (g.to(h.dtype) @ w).to(hidden.dtype)
                if grad_w is not None:
                    grad_w += g.t() @ h.float()
            scale = 1.0 / float(denom)
            if grad_h is not None:
                grad_h.mul_(scale)
            if grad_w is not None:
                grad_w = grad_w.mul_(scale).to(weight.dtype)
            ctx.save_for_backward(*(x for x in (grad_h, grad_w) if x is not None))
            ctx.has = (grad_h is not None, grad_w is not None)
            return total * scale

        @staticmethod
        def backward(ctx, grad_out):
            saved = list(ctx.saved_tensors)
            has_h, has_w = ctx.has
            gh = saved.pop(0) * grad_out if has_h else None
            gw = saved.pop(0) * grad_out if has_w else None
            return gh, gw, None, None, None

    return ChunkedLinearCrossEntropy


_FUNCTION: Any = None


def chunked_linear_cross_entropy(
    hidden, weight, labels, num_items_in_batch=None, chunk_size: int = 1024, shift: bool = True
):
    """Causal-LM loss of ``hidden @ weight.T`` against ``labels`` without materialising the logits.

    Same convention as transformers' ``ForCausalLMLoss``: labels are shifted by one inside, -100 is
    ignored, and the summed NLL is divided by ``num_items_in_batch`` when given (else by the number
    of scored positions).
    """
    import torch

    global _FUNCTION
    if _FUNCTION is None:
        _FUNCTION = _chunked_ce_function()
    if shift:
        hidden = hidden[:, :-1]
        labels = labels[:, 1:]
    h = hidden.reshape(-1, hidden.shape[-1])
    t = labels.reshape(-1).to(h.device)
    if num_items_in_batch is None:
        denom = int((t != IGNORE_INDEX).sum())
    else:
        denom = (
            int(num_items_in_batch.item())
            if isinstance(num_items_in_batch, torch.Tensor)
            else int(num_items_in_batch)
        )
    return _FUNCTION.apply(h, weight, t, max(denom, 1), chunk_size)


def _check_causal_lm(model, setting: str):
    inner = getattr(model, "model", None)
    head = getattr(model, "lm_head", None)
    if inner is None or head is None or not hasattr(head, "weight"):
        raise LeverError(f"{setting}: {type(model).__name__} has no .model/.lm_head pair to fuse")
    if getattr(head, "bias", None) is not None:
        raise LeverError(f"{setting}: the LM head of {type(model).__name__} has a bias; use fused_loss: none")
    cfg = model.config
    for key in ("final_logit_softcapping", "logit_scale", "logits_scaling"):
        if getattr(cfg, key, None) not in (None, 1, 1.0):
            raise LeverError(
                f"{setting}: {type(model).__name__} rescales its logits ({key}); use fused_loss: none"
            )
    return inner, head


def enable_chunked_loss(model, chunk_size: int = 1024):
    """Make ``model(**batch, labels=...)`` compute the loss chunk by chunk (``logits`` is then None)."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    inner, head = _check_causal_lm(model, "fused_loss: chunked")

    def forward(self, input_ids=None, labels=None, num_items_in_batch=None, use_cache=False, **kwargs):
        kwargs.pop("logits_to_keep", None)
        out = inner(input_ids=input_ids, use_cache=False, **kwargs)
        hidden = out.last_hidden_state
        if labels is None:
            return CausalLMOutputWithPast(logits=head(hidden))
        loss = chunked_linear_cross_entropy(hidden, head.weight, labels, num_items_in_batch, chunk_size)
        return CausalLMOutputWithPast(loss=loss)

    model._vinaforge_plain_forward = model.forward
    model.forward = types.MethodType(forward, model)
    return model


def disable_levers(model):
    """Restore the model's own ``forward`` (before saving it or running evaluation code on it)."""
    plain = model.__dict__.pop("_vinaforge_plain_forward", None)
    if plain is not None:
        model.forward = plain
        model.__dict__.pop("forward", None)
    return model


def apply_liger(model, fused_loss: bool, kernels: bool):
    """Liger's Triton kernels on this model instance (GPU only)."""
    import torch

    if not torch.cuda.is_available():
        raise LeverError("liger_kernels / fused_loss: liger need a CUDA GPU (Liger's kernels are Triton)")
    try:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance
    except ImportError as err:
        raise LeverError(
            "liger_kernels / fused_loss: liger need liger-kernel (pip install 'vinaforge[gpu]')"
        ) from err
    _apply_liger_kernel_to_instance(
        model=model,
        fused_linear_cross_entropy=fused_loss,
        cross_entropy=False,
        rms_norm=kernels,
        swiglu=kernels,
        rope=kernels,
    )
    return model


def apply_levers(model, fused_loss: str = "none", liger_kernels: bool = False, chunk_size: int = 1024):
    """Apply the configured levers to a plain (unwrapped) causal LM; returns the same model."""
    if liger_kernels or fused_loss == "liger":
        apply_liger(model, fused_loss == "liger", liger_kernels)
    if fused_loss == "chunked":
        enable_chunked_loss(model, chunk_size)
    return model
