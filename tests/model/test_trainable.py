"""Trainable sets: frozen rows stay bit-identical under AdamW with weight decay; LoRA trains only LoRA."""

from __future__ import annotations

import pytest
import torch

from vinaforge.model.resize import extend_model
from vinaforge.model.trainable import LoraSettings, apply_trainable, merge_lora


def vi_batch(tok, texts, batch: int = 4, length: int = 64) -> torch.Tensor:
    ids: list[int] = []
    for t in texts:
        ids += [tok.bos_token_id, *tok(t, add_special_tokens=False)["input_ids"]]
        if len(ids) >= batch * length:
            break
    return torch.tensor(ids[: batch * length]).view(batch, length)


def train_steps(state, batch: torch.Tensor, steps: int = 3, restore: bool = True, fused: bool = False):
    opt = torch.optim.AdamW(state.param_groups(weight_decay=0.1), lr=1e-2, fused=fused)
    state.model.train()
    losses = []
    for _ in range(steps):
        loss = state.model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()
        if restore:
            state.after_optimizer_step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


@pytest.fixture
def extended(make_tiny, base_tok, ext_tok):
    def make(tie: bool = False):
        model = make_tiny(tie=tie)
        info = extend_model(model, base_tok, ext_tok, init="mean")
        return model, info

    return make


@pytest.mark.parametrize(
    "tie,fused", [(False, False), (True, False), (False, True)], ids=["untied", "tied", "untied-fused"]
)
def test_new_embeddings_changes_only_new_rows(extended, ext_tok, vi_texts, tie, fused):
    model, info = extended(tie)
    n = info.num_base_rows
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state = apply_trainable(model, "new_embeddings", num_base_rows=n)
    batch = vi_batch(ext_tok, vi_texts)
    seen_new = sorted({i for i in batch.flatten().tolist() if i >= n})
    assert len(seen_new) > 20  # the batch does use new tokens

    train_steps(state, batch, fused=fused)

    after = model.state_dict()
    emb_key = next(k for k in after if k.endswith("embed_tokens.weight"))
    head_key = "lm_head.weight"
    for key, old in before.items():
        new = after[key]
        if key in (emb_key, head_key):
            assert torch.equal(new[:n], old[:n]), f"{key}: an original row changed"
            assert not torch.equal(new[seen_new], old[seen_new]), f"{key}: new rows did not train"
            changed = (new[n:] != old[n:]).any(dim=1)
            assert changed[torch.tensor(seen_new) - n].all(), f"{key}: some used new row did not change"
        else:
            assert torch.equal(new, old), f"{key}: a non-embedding weight changed"
    summary = state.summary()
    rows = info.num_rows - n
    hidden = model.config.hidden_size
    assert summary["trainable_params"] == rows * hidden * (1 if tie else 2)


def test_without_restore_weight_decay_would_move_frozen_rows(extended, ext_tok, vi_texts):
    """The negative control: gradient masking alone is not enough under AdamW's decoupled decay."""
    model, info = extended(False)
    n = info.num_base_rows
    old = model.get_input_embeddings().weight[:n].detach().clone()
    state = apply_trainable(model, "new_embeddings", num_base_rows=n)
    train_steps(state, vi_batch(ext_tok, vi_texts), steps=2, restore=False)
    assert not torch.equal(model.get_input_embeddings().weight[:n], old)


def test_new_embeddings_reads_base_rows_from_the_config(extended):
    model, info = extended(False)
    state = apply_trainable(model, "new_embeddings")
    assert state.num_base_rows == info.num_base_rows


def test_new_embeddings_needs_to_know_the_base_rows(make_tiny):
    with pytest.raises(ValueError, match="needs num_base_rows"):
        apply_trainable(make_tiny(), "new_embeddings")
    with pytest.raises(ValueError, match="leaves no new rows"):
        apply_trainable(make_tiny(), "new_embeddings", num_base_rows=32000)


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_trainable_sets_select_the_right_parameters(extended, tie):
    model, info = extended(tie)
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    blocks = [p for n, p in model.named_parameters() if ".layers." in n or n.endswith("model.norm.weight")]

    apply_trainable(model, "embeddings")
    assert emb.requires_grad and not any(p.requires_grad for p in blocks)
    assert head.requires_grad is tie  # a tied head is the same matrix

    apply_trainable(model, "embeddings+lm_head")
    assert emb.requires_grad and head.requires_grad and not any(p.requires_grad for p in blocks)

    apply_trainable(model, "layers")
    assert not emb.requires_grad and not head.requires_grad and all(p.requires_grad for p in blocks)

    state = apply_trainable(model, "all")
    assert all(p.requires_grad for p in model.parameters())
    assert state.summary()["trainable_params"] == state.summary()["total_params"]


def test_switching_sets_removes_the_row_mask(extended, ext_tok, vi_texts):
    """EEVE-style chaining: after new_embeddings, an `all` stage trains the base rows again."""
    model, info = extended(False)
    apply_trainable(model, "new_embeddings", num_base_rows=info.num_base_rows)
    state = apply_trainable(model, "all")
    batch = vi_batch(ext_tok, vi_texts)
    model(input_ids=batch, labels=batch).loss.backward()
    grad = model.get_output_embeddings().weight.grad
    assert grad[: info.num_base_rows].abs().sum() > 0
    assert state.frozen_rows == []


def test_param_groups_skip_decay_on_norms_and_hold_only_trainable(extended):
    model, _ = extended(False)
    state = apply_trainable(model, "layers")
    groups = state.param_groups(weight_decay=0.1)
    decay, no_decay = groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 1 for p in no_decay["params"])  # RMSNorm weights
    assert all(p.dim() == 2 for p in decay["params"])
    n_in_groups = sum(len(g["params"]) for g in groups)
    assert n_in_groups == sum(1 for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_lora_trains_only_lora_and_new_embedding_rows(extended, ext_tok, vi_texts, tmp_path, tie):
    from transformers import AutoModelForCausalLM

    from vinaforge.model.tiny import save_model

    model, info = extended(tie)
    n = info.num_base_rows
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state = apply_trainable(model, "lora", num_base_rows=n, lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    peft_model = state.model
    trainable = [name for name, _ in state.trainable_parameters()]
    assert trainable and all("lora_" in name or "trainable_tokens" in name for name in trainable)
    lora_b_before = {k: v.detach().clone() for k, v in peft_model.named_parameters() if "lora_B" in k}

    batch = vi_batch(ext_tok, vi_texts)
    train_steps(state, batch, steps=3)

    # LoRA B matrices start at zero and must have moved
    for k, v in peft_model.named_parameters():
        if "lora_B" in k:
            assert not torch.equal(v, lora_b_before[k]), k
    # the wrapped base weights never move
    for k, v in peft_model.get_base_model().state_dict().items():
        if "base_layer" in k and "token_adapter" not in k:
            plain = k.replace(".base_layer", "")
            assert torch.equal(v, before[plain]), k

    peft_model.eval()
    with torch.no_grad():
        ref_logits = peft_model(input_ids=batch).logits
    merged = merge_lora(peft_model)
    assert type(merged).__name__ == "MistralForCausalLM"
    merged.eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=batch).logits, ref_logits, rtol=1e-4, atol=1e-4)
    after = merged.state_dict()
    emb_key = next(k for k in after if k.endswith("embed_tokens.weight"))
    for key in (emb_key, "lm_head.weight"):
        assert torch.equal(after[key][:n], before[key][:n]), key  # base rows untouched
        assert not torch.equal(after[key][n:], before[key][n:]), key  # new rows trained
    if tie:
        assert merged.get_output_embeddings().weight is merged.get_input_embeddings().weight

    save_model(merged, ext_tok, tmp_path / "merged")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=batch).logits, ref_logits, rtol=1e-4, atol=1e-4)


def test_lora_full_embeddings_uses_modules_to_save(extended):
    model, _ = extended(False)
    state = apply_trainable(model, "lora", lora=LoraSettings(r=4, embeddings="full"))
    names = [n for n, _ in state.trainable_parameters()]
    assert any("embed_tokens.modules_to_save" in n for n in names)
    assert any("lm_head.modules_to_save" in n for n in names)
    assert all("lora_" in n or "modules_to_save" in n for n in names)


def test_applying_a_set_to_a_peft_model_is_refused(extended):
    model, _ = extended(False)
    state = apply_trainable(model, "lora", lora=LoraSettings(r=2))
    with pytest.raises(ValueError, match="already a PEFT model"):
        apply_trainable(state.model, "all")
