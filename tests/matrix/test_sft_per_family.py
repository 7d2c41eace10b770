"""Issue 21 matrix, cell 4: ``tune sft`` (LoRA, new rows trainable) with each family's chat template.

For each family's extended tiny model (tests/matrix/conftest.py), with the template the family
ships (Llama-3, Qwen, Phi-3, ChatML for SmolLM2, Llama-2, Gemma):

- the tokens TRL trains on (the labels it builds, and those of the collated batch) are exactly transformers' own
  ``apply_chat_template(return_assistant_tokens_mask=True)`` mask of each conversation, and that
  mask equals ours (:func:`vinaforge.chat.assistant_token_mask`, from character offsets): every
  reply of every turn plus its end-of-turn token, nothing of the prompts;
- two LoRA steps run, the adapter is merged, the saved model reloads with the right vocabulary,
  stays tied where it was tied, and the new input rows moved.

Random tiny models: mechanics, not quality.
"""

from __future__ import annotations

import json

import pytest
import torch

from .conftest import MODEL_CELLS, REPO, ModelCell

torch.set_num_threads(1)

CHAT = REPO / "examples" / "instruct" / "vi_chat.jsonl"
#: the template each family ships with (its instruct models' format)
FAMILY_TEMPLATE = {"llama3": "llama3", "qwen2": "qwen", "phi3": "phi3", "smollm": "chatml", "llama2": "llama2"}
CELLS = [c for c in MODEL_CELLS if c.arch != "mistral"]  # llama2 × mistral is the same tokenizer as gemma's


def template_of(cell: ModelCell) -> str:
    return "gemma" if cell.arch.startswith("gemma") else FAMILY_TEMPLATE[cell.family]


def conversations() -> list[list[dict]]:
    rows = [json.loads(line) for line in CHAT.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["messages"] for r in rows if sum(m["role"] == "assistant" for m in r["messages"]) >= 2][:4]


def sft_config(model_dir, template: str, out):
    from vinaforge.tune.sft import Config

    return Config.model_validate({
        "model": str(model_dir), "mode": "lora", "chat_template": template,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "embeddings": "new_rows"},
        "data": {"sources": {"chat": {"paths": [str(CHAT)]}}, "eval_fraction": 0.0, "decontaminate": False},
        "training": {"max_steps": 2, "batch_size": 2, "learning_rate": 5e-3, "max_length": 512, "threads": 1,
                     "logging_steps": 1, "save_steps": 1000},
        "packing": False, "prompts": ["Xin chào"], "max_new_tokens": 2, "safety_eval": False,
    })  # fmt: skip


@pytest.mark.parametrize("cell", [pytest.param(c, id=f"{c.id}-{template_of(c)}") for c in CELLS])
def test_sft_lora_trains_exactly_the_assistant_tokens(matrix, cell, tmp_path):
    from vinaforge.chat import TEMPLATES, assistant_token_mask
    from vinaforge.tune.common import load_model_for_training
    from vinaforge.tune.sft import build_trainer, train_sft

    folder = matrix.extended_dir(cell.family, cell.arch, cell.tied)
    template = template_of(cell)
    cfg = sft_config(folder, template, tmp_path)
    loaded = load_model_for_training(cfg)
    tok = loaded.tokenizer
    assert loaded.template.name == template
    convs = conversations()
    assert convs, "need multi-turn conversations"
    trainer = build_trainer(cfg, loaded, [{"messages": m} for m in convs], [], tmp_path / "ckpt")
    rows = list(trainer.train_dataset)
    assert len(rows) == len(convs)
    for messages, row in zip(convs, rows, strict=True):
        ref = tok.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        assert list(row["input_ids"]) == list(ref["input_ids"])
        assert [label != -100 for label in row["labels"]] == [bool(m) for m in ref["assistant_masks"]]
        ids, ours = assistant_token_mask(tok, messages)
        assert ids == list(ref["input_ids"]) and ours == list(ref["assistant_masks"])
        # what the collator gives the loss: labels only where the mask is 1
        batch = trainer.data_collator([row])
        trained = (batch["labels"][0] != -100).tolist()
        assert trained == [bool(m) for m in ref["assistant_masks"]]
        # and those tokens are the replies with their end-of-turn token, turn by turn
        text = tok.decode([i for i, m in zip(ids, ours, strict=True) if m])
        eot = TEMPLATES[template].end_of_turn.replace("{eos}", tok.eos_token or "")
        for reply in (m["content"] for m in messages if m["role"] == "assistant"):
            assert reply.strip() in text
        assert text.count(eot) == sum(m["role"] == "assistant" for m in messages)
        assert not any(m["content"] in text for m in messages if m["role"] == "user")

    # two real LoRA steps through the stage's own function, merged and saved
    before = loaded.model.get_base_model().get_input_embeddings().weight.detach().clone()
    summary = train_sft(cfg, tmp_path / "run")
    assert summary["steps"] == 2 and summary["template"] == template
    from vinaforge.model.load import load_causal_lm
    from vinaforge.model.resize import is_tied

    after = load_causal_lm(str(tmp_path / "run" / "final"), dtype="float32")
    assert after.get_input_embeddings().weight.shape[0] >= len(tok)
    assert is_tied(after) == cell.tied
    n_base = loaded.num_base_rows
    new = after.get_input_embeddings().weight.detach()
    assert new.shape[0] >= before.shape[0]
    assert bool((new[n_base : before.shape[0]] != before[n_base:]).any())  # new rows trained
