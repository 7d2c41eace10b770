"""Every speed/memory lever computes the plain path's loss and gradients (fp32, CPU, tiny real models)."""

from __future__ import annotations

import pytest
import torch


def _model(vocab=300, hidden=64, layers=2, tie=False, seed=0):
    from vinaforge.model.tiny import build_tiny_model

    model = build_tiny_model(
        "llama", vocab_size=vocab, layers=layers, hidden=hidden, heads=4, kv_heads=2, seed=seed, tie_word_embeddings=tie
    )
    return model.float()


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _batch(vocab=300, rows=3, seq=40, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (rows, seq), generator=g)
    labels = ids.clone()
    labels[0, :10] = -100  # a masked prompt
    labels[2, 25:] = -100
    return ids, labels


@pytest.mark.parametrize("tie", [False, True])
def test_chunked_loss_matches_plain_loss_and_gradients(tie):
    from vinaforge.train.levers import disable_levers, enable_chunked_loss

    ids, labels = _batch()
    n_items = int((labels[:, 1:] != -100).sum()) + 7  # a global count larger than this micro-batch's
    model = _model(tie=tie)
    plain = model(input_ids=ids, labels=labels, num_items_in_batch=n_items, use_cache=False).loss
    plain.backward()
    expected = _grads(model)
    model.zero_grad(set_to_none=True)

    enable_chunked_loss(model, chunk_size=17)  # chunks that do not divide the 117 positions
    out = model(input_ids=ids, labels=labels, num_items_in_batch=torch.tensor(n_items), use_cache=False)
    assert out.logits is None  # the full logits were never built
    out.loss.backward()
    got = _grads(model)
    assert abs(out.loss.item() - plain.item()) < 1e-5
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)
    disable_levers(model)
    assert model(input_ids=ids).logits.shape == (3, 40, 300)


def test_chunked_loss_without_item_count_is_the_mean():
    from vinaforge.train.levers import chunked_linear_cross_entropy

    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 9, 16, generator=g, requires_grad=True)
    weight = torch.randn(50, 16, generator=g, requires_grad=True)
    labels = torch.randint(0, 50, (2, 9), generator=g)
    labels[1, 3] = -100
    logits = hidden[:, :-1] @ weight.t()
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, 50), labels[:, 1:].reshape(-1), ignore_index=-100)
    got = chunked_linear_cross_entropy(hidden, weight, labels, chunk_size=5)
    torch.testing.assert_close(got, ref)
    (gh_ref, gw_ref) = torch.autograd.grad(ref, (hidden, weight))
    (gh, gw) = torch.autograd.grad(got, (hidden, weight))
    torch.testing.assert_close(gh, gh_ref)
    torch.testing.assert_close(gw, gw_ref)


def test_chunked_loss_refuses_a_head_with_bias():
    from vinaforge.train.levers import LeverError, enable_chunked_loss

    model = _model()
    model.lm_head = torch.nn.Linear(64, 300, bias=True)
    with pytest.raises(LeverError, match="bias"):
        enable_chunked_loss(model)


def test_liger_needs_a_gpu():
    from vinaforge.train.levers import LeverError, apply_levers

    if torch.cuda.is_available():
        pytest.skip("a GPU is present; the GPU check script covers Liger")
    with pytest.raises(LeverError, match="CUDA"):
        apply_levers(_model(), liger_kernels=True)
