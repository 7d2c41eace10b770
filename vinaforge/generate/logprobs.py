"""Token log-probabilities of a token sequence, in OpenAI's two response shapes.

Scoring is one teacher-forced forward pass over the whole sequence (prompt and completion): the
log-probability of each token given the ones before it, and the ``top`` most likely tokens at
each position. The first token has no context, so its log-probability is ``None``, as OpenAI's
legacy ``echo`` and llama.cpp's server report it. That is what lm-eval's ``local-completions``
model reads for its loglikelihood tasks (``echo: true, logprobs: 1, max_tokens: 1``), so those
tasks run against ``vinaforge serve`` on the local and GGUF backends.

The logprobs of a generated completion are the model's own distribution (before temperature and
top-p), as vLLM reports them by default, scored on the completion's text tokenised after the
prompt.

Hand-written: the response shapes are OpenAI's; the forward pass is the backend's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


class ScoringUnavailable(Exception):
    """This backend (or this model) cannot score tokens: the API answers 400 naming the field.

    Its own class, not ``NotImplementedError``, so that a real missing method elsewhere is not
    mistaken for an unsupported request parameter.
    """


#: the most top-logprobs a request may ask for (OpenAI allows 5 on completions, 20 on chat)
MAX_TOP_LOGPROBS = 20


@dataclass
class TokenLogprobs:
    """One sequence's tokens, each with its log-probability and the top alternatives."""

    token_ids: list[int]
    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None] = field(default_factory=list)

    def tail(self, start: int) -> TokenLogprobs:
        """The tokens from position ``start`` on (the completion after its prompt)."""
        return TokenLogprobs(self.token_ids[start:], self.tokens[start:], self.token_logprobs[start:],
                             self.top_logprobs[start:])  # fmt: skip

    def completion_shape(self, first_offset: int = 0) -> dict[str, Any]:
        """``choices[i].logprobs`` of ``/v1/completions``; ``text_offset`` counts characters."""
        offsets, at = [], first_offset
        for t in self.tokens:
            offsets.append(at)
            at += len(t)
        return {"tokens": self.tokens, "token_logprobs": self.token_logprobs, "top_logprobs": self.top_logprobs,
                "text_offset": offsets}  # fmt: skip

    def chat_shape(self) -> dict[str, Any]:
        """``choices[i].logprobs`` of ``/v1/chat/completions``."""
        content = []
        for tok, lp, top in zip(self.tokens, self.token_logprobs, self.top_logprobs, strict=True):
            alternatives = [{"token": t, "logprob": v, "bytes": list(t.encode("utf-8"))} for t, v in (top or {}).items()]
            content.append({"token": tok, "logprob": lp if lp is not None else 0.0,
                            "bytes": list(tok.encode("utf-8")), "top_logprobs": alternatives})  # fmt: skip
        return {"content": content, "refusal": None}


def from_log_softmax(ids: Sequence[int], logprobs: Any, top: int, piece: Callable[[int], str]) -> TokenLogprobs:
    """A :class:`TokenLogprobs` from ``logprobs[i]`` = log-softmax of the logits after token ``i``.

    ``logprobs`` is a float tensor or array of shape (len(ids), vocabulary); row ``i`` predicts
    token ``i + 1``. ``top`` alternatives are listed at every position but the first, and always
    include the most likely token, so lm-eval's "is greedy" check (the token's logprob equals
    the best one) is exact.
    """
    import torch

    rows = torch.as_tensor(logprobs, dtype=torch.float32)
    ids = list(ids)
    tokens = [piece(i) for i in ids]
    token_lps: list[float | None] = [None]
    tops: list[dict[str, float] | None] = [None]
    if len(ids) > 1:
        target = torch.tensor(ids[1:], dtype=torch.long)
        chosen = rows[: len(ids) - 1].gather(1, target[:, None])[:, 0].tolist()
        token_lps.extend(_finite(v) for v in chosen)
        if top > 0:
            values, indices = rows[: len(ids) - 1].topk(top, dim=-1)
            for vals, idx in zip(values.tolist(), indices.tolist(), strict=True):
                alternatives: dict[str, float] = {}
                for v, i in zip(vals, idx, strict=True):
                    alternatives.setdefault(piece(i), _finite(v))  # two ids can print the same
                tops.append(alternatives)
        else:
            tops.extend(None for _ in ids[1:])
    return TokenLogprobs(ids, tokens, token_lps, tops)


def _finite(value: float) -> float:
    """JSON has no -inf: a masked token's log-probability is reported as a very small number."""
    return value if math.isfinite(value) else -9999.0
