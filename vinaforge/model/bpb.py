"""Bits per byte and perplexity of a causal LM on raw text.

Bits per byte = total NLL in nats / (ln 2 x UTF-8 bytes). Unlike perplexity it does not depend
on the tokenizer, so an extended-vocabulary model can be compared with its base. The CPT stage's
held-out evaluation and ``vinaforge eval bpb`` both call :func:`bits_per_byte`, so they agree.

Hand-written: lm-eval computes the same figure only inside its own task machinery; training
needs it as a plain function over a model already in memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass


@dataclass
class BpbResult:
    nll_nats: float
    n_bytes: int
    n_tokens: int
    n_texts: int

    @property
    def bits_per_byte(self) -> float:
        return self.nll_nats / (math.log(2) * self.n_bytes) if self.n_bytes else float("nan")

    @property
    def token_perplexity(self) -> float:
        return math.exp(self.nll_nats / self.n_tokens) if self.n_tokens else float("nan")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["bits_per_byte"] = self.bits_per_byte
        d["token_perplexity"] = self.token_perplexity
        return d


def _prefix_id(tokenizer) -> int:
    for tok_id in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tok_id is not None:
            return int(tok_id)
    raise ValueError("tokenizer has neither a BOS nor an EOS token to condition the first token on")


def text_windows(ids: list[int], prefix: int, max_length: int) -> list[tuple[list[int], int]]:
    """Split ``[prefix] + ids`` into model inputs so that every text token is scored exactly once.

    Each window is ``(input_ids, n_scored)``: the window's last ``n_scored`` positions predict new
    tokens. Windows are disjoint; each starts with the token before its first target.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1 token, got {max_length}")
    seq = [prefix, *ids]
    out = []
    start = 0  # index in seq of the first input token of this window
    while start < len(seq) - 1:
        window = seq[start : start + max_length + 1]
        out.append((window, len(window) - 1))
        start += max_length
    return out


def bits_per_byte(
    model,
    tokenizer,
    texts: Iterable[str],
    max_length: int = 1024,
    batch_size: int = 8,
    device: str | None = None,
    allow_vocab_mismatch: bool = False,
) -> BpbResult:
    """Score every token of every text (first token conditioned on BOS, or EOS if no BOS).

    Refuses a tokenizer that is not the model's (see :func:`~vinaforge.model.resize.check_fits_model`):
    a figure from the wrong tokenizer looks plausible and is meaningless.
    """
    import torch

    from vinaforge.model.resize import check_fits_model

    if max_length < 1:
        raise ValueError(f"max_length must be at least 1 token, got {max_length}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    check_fits_model(model, tokenizer, allow_smaller=allow_vocab_mismatch)
    device = device or next(model.parameters()).device
    prefix = _prefix_id(tokenizer)
    windows: list[tuple[list[int], int]] = []
    n_bytes = 0
    n_texts = 0
    for text in texts:
        if not text:
            continue
        n_texts += 1
        n_bytes += len(text.encode("utf-8"))
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        windows.extend(text_windows(ids, prefix, max_length))
    windows.sort(key=lambda w: len(w[0]))  # length-sorted batches waste little padding
    total_nll = 0.0
    n_tokens = 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(windows), batch_size):
            batch = windows[i : i + batch_size]
            width = max(len(w) for w, _ in batch)
            input_ids = torch.zeros((len(batch), width), dtype=torch.long)
            attn = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (w, _) in enumerate(batch):
                input_ids[row, : len(w)] = torch.tensor(w)
                attn[row, : len(w)] = 1
            input_ids, attn = input_ids.to(device), attn.to(device)
            logits = model(input_ids=input_ids, attention_mask=attn).logits.float()
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
            targets = input_ids[:, 1:]
            token_lp = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            mask = attn[:, 1:].bool()
            total_nll -= float(token_lp[mask].sum())
            n_tokens += int(mask.sum())
    if was_training:
        model.train()
    return BpbResult(nll_nats=total_nll, n_bytes=n_bytes, n_tokens=n_tokens, n_texts=n_texts)
