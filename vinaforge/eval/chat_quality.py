"""Does a chat model speak? Held-out assistant loss and the quality of greedy answers.

Two figures that the seed recipes (issue 20) compare across the base, the CPT model and the chat
model, all on data no stage trained on:

- **held-out assistant loss**: negative log-likelihood of the assistant tokens of held-out
  conversations, rendered with one fixed chat template for every model, in nats per token and in
  bits per byte (the fair figure across tokenizers: a base and its extended vocabulary);
- **answer quality** of greedy answers to held-out prompts: the share in Vietnamese by the
  project's language identifier, the share that is degenerate (a token, or a word, repeated more
  than ``max_run`` times in a row), and corpus-level distinct-2 (unique word bigrams / all bigrams,
  Li et al. 2016) over the answers.

Hand-written: lm-eval scores benchmarks, not free-form chat answers; the masks come from
:func:`vinaforge.chat.assistant_token_mask`, the generation from :mod:`vinaforge.generate`.
"""

from __future__ import annotations

import math
from typing import Any


def assistant_loss(model, tokenizer, conversations: list[Any], template: str, max_length: int = 512) -> dict:
    """NLL of the assistant tokens of ``conversations`` (each cut to ``max_length`` tokens).

    ``loss`` is nats per assistant token (what a trainer's eval loss means); ``bits_per_byte``
    divides the same sum by the UTF-8 bytes those tokens cover, so models with different
    tokenizers (a base and its extended-vocabulary adaptation) are compared fairly.
    ``last_turn_loss`` scores each conversation's final reply alone (what SFT with
    ``loss_turns: last`` trains), so every-turn and last-turn training can be compared on both.
    """
    import torch

    from vinaforge.chat.templates import render

    device = next(model.parameters()).device
    nats, tokens, n_bytes, used = 0.0, 0, 0, 0
    last_nats, last_tokens = 0.0, 0
    model.eval()
    for conv in conversations:
        messages = conv.messages if hasattr(conv, "messages") else conv
        rendered = render(messages, template, bos_token=tokenizer.bos_token or "", eos_token=tokenizer.eos_token or "")
        enc = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"])[:max_length], list(enc["offset_mapping"])[:max_length]
        mask = _covered(offsets, rendered.assistant_spans)
        if not any(mask[1:]):
            continue
        x = torch.tensor([ids], device=device)
        with torch.no_grad():
            logits = model(input_ids=x).logits[0, :-1].float()
        keep = torch.tensor(mask[1:], device=device, dtype=torch.bool)
        token_nats = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="none")
        nats += float(token_nats[keep].sum())
        tokens += int(keep.sum())
        last = torch.tensor(_covered(offsets[1:], rendered.assistant_spans[-1:]), device=device, dtype=torch.bool)
        last_nats += float(token_nats[last].sum())
        last_tokens += int(last.sum())
        n_bytes += sum(len(rendered.text[s:e].encode("utf-8")) for (s, e), m in zip(offsets[1:], mask[1:], strict=True) if m)
        used += 1
    if not tokens:
        raise ValueError("no held-out conversation has an assistant token within max_length")
    return {
        "loss": nats / tokens,
        "bits_per_byte": nats / math.log(2) / max(n_bytes, 1),
        "n_tokens": tokens,
        "last_turn_loss": last_nats / last_tokens if last_tokens else None,
        "last_turn_tokens": last_tokens,
        "n_bytes": n_bytes,
        "n_conversations": used,
    }


def _covered(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[bool]:
    """Which tokens (character offsets) overlap one of ``spans``."""
    return [end > start and any(start < e and end > s for s, e in spans) for start, end in offsets]


def longest_run(ids: list) -> int:
    """The longest run of one token (or word) repeated in a row (0 for an empty answer)."""
    best = run = 0
    last = None
    for t in ids:
        run = run + 1 if t == last else 1
        last = t
        best = max(best, run)
    return best


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Unique word n-grams / all word n-grams over every text (corpus-level distinct-n)."""
    grams = [tuple(ws[i : i + n]) for t in texts for ws in [t.lower().split()] for i in range(len(ws) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def answer_quality(answers: list[str], tokenizer, max_run: int = 4) -> dict:
    """Vietnamese share, degenerate share and distinct-2 of ``answers`` (see the module docstring)."""
    from vinaforge.text.langid import identify

    langs = [identify(a)[0] for a in answers]
    # a word the tokenizer splits ("và" = "▁v" "à" in Mistral's vocabulary) repeats as a pattern,
    # not as one id: count runs of token ids and of words, and take the longer
    runs = [
        max(longest_run(tokenizer(a, add_special_tokens=False)["input_ids"]), longest_run(a.lower().split()))
        for a in answers
    ]
    n = max(len(answers), 1)
    return {
        "n": len(answers),
        "vietnamese_share": sum(lang == "vi" for lang in langs) / n,
        "degenerate_share": sum(r > max_run for r in runs) / n,
        "empty_share": sum(not a.strip() for a in answers) / n,
        "distinct_2": distinct_n(answers, 2),
        "max_run": max(runs, default=0),
        "languages": langs,
        "runs": runs,
    }
