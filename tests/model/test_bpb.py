"""Bits per byte equals a hand computation from the model's token log-probabilities."""

from __future__ import annotations

import math

import torch

from vinaforge.model.bpb import bits_per_byte, text_windows


def hand_nll(model, ids: list[int]) -> float:
    """-sum log p(ids[i] | ids[:i]) over i >= 1, one forward pass, no padding, no batching."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    positions = torch.arange(len(ids) - 1)
    return -float(logp[positions, torch.tensor(ids[1:])].sum())  # log p(ids[i] | ids[:i]), i >= 1


def test_bpb_matches_hand_computation(make_tiny, base_tok, vi_texts):
    model = make_tiny(seed=1).eval()
    texts = [t[:300] for t in vi_texts[:5]] + ["", "Hà Nội"]
    result = bits_per_byte(model, base_tok, texts, max_length=512, batch_size=3)

    nll = 0.0
    n_tokens = 0
    n_bytes = 0
    for text in texts:
        if not text:
            continue
        ids = [base_tok.bos_token_id, *base_tok(text, add_special_tokens=False)["input_ids"]]
        nll += hand_nll(model, ids)
        n_tokens += len(ids) - 1
        n_bytes += len(text.encode("utf-8"))
    assert result.n_texts == 6 and result.n_tokens == n_tokens and result.n_bytes == n_bytes
    assert math.isclose(result.nll_nats, nll, rel_tol=1e-5)
    assert math.isclose(result.bits_per_byte, nll / (math.log(2) * n_bytes), rel_tol=1e-5)
    assert math.isclose(result.token_perplexity, math.exp(nll / n_tokens), rel_tol=1e-5)


def test_windows_score_every_token_once():
    ids = list(range(10, 33))  # 23 tokens
    windows = text_windows(ids, prefix=1, max_length=8)
    assert sum(n for _, n in windows) == len(ids)
    targets = [t for w, n in windows for t in w[len(w) - n :]]
    assert targets == ids
    assert all(len(w) <= 9 for w, _ in windows)


def test_long_text_is_scored_in_windows(make_tiny, base_tok, vi_texts):
    model = make_tiny(seed=2).eval()
    text = vi_texts[0][:400]
    ids = base_tok(text, add_special_tokens=False)["input_ids"]
    result = bits_per_byte(model, base_tok, [text], max_length=16, batch_size=4)
    assert result.n_tokens == len(ids)
    expect = sum(hand_nll(model, w) for w, _ in text_windows(ids, base_tok.bos_token_id, 16))
    assert math.isclose(result.nll_nats, expect, rel_tol=1e-5)
