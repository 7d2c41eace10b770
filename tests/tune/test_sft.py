"""SFT correctness on a tiny model (fp32, CPU): masks, packing, LoRA merging, QLoRA, and real learning."""

from __future__ import annotations

import gzip
import json
import random

import pytest

torch = pytest.importorskip("torch")

CONVS = [
    [{"role": "system", "content": "Bạn là trợ lý."}, {"role": "user", "content": "Xin chào!"},
     {"role": "assistant", "content": "Chào bạn, tôi giúp gì được?"}, {"role": "user", "content": "Hai cộng hai?"},
     {"role": "assistant", "content": "Hai cộng hai bằng bốn."}],
    [{"role": "user", "content": "Thủ đô Việt Nam?"}, {"role": "assistant", "content": "Hà Nội."},
     {"role": "user", "content": "Còn Nhật Bản?"}, {"role": "assistant", "content": "Tokyo."},
     {"role": "user", "content": "Pháp?"}, {"role": "assistant", "content": "Paris."}],
    [{"role": "user", "content": "Kể tên một loài hoa."}, {"role": "assistant", "content": "Hoa sen."}],
]  # fmt: skip


def _cfg(tiny_dir, tmp_path, **over):
    from vinaforge.tune.sft import Config

    data = tmp_path / "convs.jsonl"
    data.write_text("".join(json.dumps({"messages": m}, ensure_ascii=False) + "\n" for m in CONVS), encoding="utf-8")
    base = {"model": str(tiny_dir), "mode": "full", "data": {"sources": {"a": {"paths": [str(data)]}},
            "eval_fraction": 0.0, "benchmark_dirs": []}, "training": {"max_steps": 1, "batch_size": 8,
            "max_length": 512, "threads": 2}, "prompts": [], "safety_eval": False}  # fmt: skip
    base.update(over)
    return Config.model_validate(base)


def _trainer(cfg, tmp_path, rows=None):
    from vinaforge.tune.common import load_model_for_training
    from vinaforge.tune.sft import build_trainer

    loaded = load_model_for_training(cfg)
    rows = rows or [{"messages": m} for m in CONVS]
    return loaded, build_trainer(cfg, loaded, rows, [], tmp_path / "ck")


def _batch(trainer):
    """The collated training rows in dataset order (the dataloader would shuffle them)."""
    ds = trainer.train_dataset
    return trainer.data_collator([ds[i] for i in range(len(ds))])


def test_mask_trains_every_assistant_turn(tiny_dir, tmp_path):
    cfg = _cfg(tiny_dir, tmp_path, packing=False)
    loaded, trainer = _trainer(cfg, tmp_path)
    tok = loaded.tokenizer
    batch = _batch(trainer)
    for row in range(len(CONVS)):
        labels = batch["labels"][row]
        trained = tok.decode([int(t) for t in labels if t != -100])
        ids = [int(t) for t in batch["input_ids"][row]]
        text = tok.decode(ids)
        for msg in (m for m in CONVS[row] if m["role"] == "assistant"):
            assert msg["content"] in trained, (msg["content"], trained)  # every turn, not only the last
        for msg in (m for m in CONVS[row] if m["role"] != "assistant"):
            assert msg["content"] in text and msg["content"] not in trained
        assert trained.count(tok.eos_token) == sum(m["role"] == "assistant" for m in CONVS[row])  # learns to stop


def _mask_spans(mask: list[int]) -> list[tuple[int, int]]:
    spans, start = [], None
    for i, bit in enumerate([*mask, 0]):
        if bit and start is None:
            start = i
        elif not bit and start is not None:
            spans.append((start, i))
            start = None
    return spans


@pytest.mark.parametrize("loss_turns", ["every", "last"])
def test_loss_turns_trains_the_template_mask_of_every_or_the_last_turn(tiny_dir, tmp_path, loss_turns):
    """The trained tokens are exactly the chat template's own assistant mask
    (``apply_chat_template(return_assistant_tokens_mask=True)``): every span, or only the last."""
    from vinaforge.chat.conversation import Conversation
    from vinaforge.tune.data import conversation_rows

    cfg = _cfg(tiny_dir, tmp_path, packing=False, loss_turns=loss_turns)
    rows = conversation_rows([Conversation(messages=m) for m in CONVS], loss_turns)
    loaded, trainer = _trainer(cfg, tmp_path, rows=rows)
    batch = _batch(trainer)
    for i, conv in enumerate(CONVS):
        ref = loaded.tokenizer.apply_chat_template(conv, tokenize=True, return_dict=True,
                                                   return_assistant_tokens_mask=True)  # fmt: skip
        spans = _mask_spans(ref["assistant_masks"])
        assert len(spans) == sum(m["role"] == "assistant" for m in conv)
        want = [False] * len(ref["input_ids"])
        for a, b in spans if loss_turns == "every" else spans[-1:]:
            want[a:b] = [True] * (b - a)
        ids = [int(t) for t in batch["input_ids"][i]][: len(ref["input_ids"])]
        assert ids == ref["input_ids"]  # the same tokens as the full conversation
        trained = [int(t) != -100 for t in batch["labels"][i]][: len(want)]
        assert trained == want, (loss_turns, i)


def test_packed_loss_equals_unpacked_loss(tiny_dir, tmp_path):
    _, padded = _trainer(_cfg(tiny_dir, tmp_path, packing=False), tmp_path)
    loaded, packed = _trainer(_cfg(tiny_dir, tmp_path, packing=True), tmp_path)
    model = loaded.model.eval()
    b_pad, b_pack = _batch(padded), _batch(packed)
    assert b_pack["input_ids"].shape[0] == 1 and "position_ids" in b_pack  # one padding-free row
    assert int((b_pack["position_ids"][0] == 0).sum()) == len(CONVS)  # positions restart per conversation
    with torch.no_grad():
        loss_pad = model(input_ids=b_pad["input_ids"], attention_mask=b_pad["attention_mask"],
                         labels=b_pad["labels"], use_cache=False).loss  # fmt: skip
        loss_pack = model(input_ids=b_pack["input_ids"], position_ids=b_pack["position_ids"],
                          labels=b_pack["labels"], use_cache=False).loss  # fmt: skip
    assert int((b_pad["labels"] != -100).sum()) == int((b_pack["labels"] != -100).sum())
    assert abs(loss_pad.item() - loss_pack.item()) < 1e-5, (loss_pad.item(), loss_pack.item())


@pytest.mark.parametrize("mode", ["lora", "dora"])
def test_lora_merged_logits_equal_adapter_logits(tiny_dir, tmp_path, mode):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vinaforge.chat import has_generation_markers
    from vinaforge.tune.common import load_model_for_training, save_tuned

    cfg = _cfg(tiny_dir, tmp_path, mode=mode, lora={"r": 4, "alpha": 8, "dropout": 0.0})
    loaded = load_model_for_training(cfg)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in loaded.model.named_parameters():
            if "lora_B" in name or "lora_magnitude" in name:
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    ids = loaded.tokenizer("Xin chào Việt Nam, hôm nay trời đẹp.", return_tensors="pt")["input_ids"]
    loaded.model.eval()
    with torch.no_grad():
        adapter = loaded.model(input_ids=ids).logits
    save_tuned(loaded, tmp_path / "merged", merge=True)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        plain = merged(input_ids=ids).logits
    assert (adapter - plain).abs().max().item() < 1e-5
    tok = AutoTokenizer.from_pretrained(tmp_path / "merged")
    assert has_generation_markers(tok.chat_template)  # the folder chats with the template it trained on
    assert tok.apply_chat_template([{"role": "user", "content": "Chào"}], tokenize=False, add_generation_prompt=True)


def test_qlora_trains_on_cpu_and_missing_bitsandbytes_is_a_clear_error(tiny_dir, tmp_path, monkeypatch):
    from vinaforge.tune import common
    from vinaforge.tune.sft import train_sft

    if not common.bitsandbytes_available():
        pytest.skip("bitsandbytes not installed")
    cfg = _cfg(tiny_dir, tmp_path, mode="qlora", lora={"r": 4, "alpha": 8})
    summary = train_sft(cfg, tmp_path / "q")
    assert summary["steps"] == 1 and summary["final_loss"] > 0
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "q" / "final")  # merged into a full-precision reload
    monkeypatch.setattr(common, "bitsandbytes_available", lambda: False)
    with pytest.raises(common.TuneError, match="qlora needs bitsandbytes"):
        common.load_model_for_training(cfg)


def test_sft_stage_mixes_sources_and_saves_a_chat_model(tiny_dir, tmp_path, repo_root):
    from vinaforge.generate.local import LocalBackend
    from vinaforge.tune.sft import train_sft

    ex = repo_root / "examples" / "instruct"
    cfg = _cfg(tiny_dir, tmp_path, mode="lora", packing=True, neftune_alpha=5.0,
               data={"sources": {"vi": {"paths": [str(ex / "vi_instruct.jsonl")], "weight": 3},
                                 "chat": {"paths": [str(ex / "vi_chat.jsonl")], "weight": 1}},
                     "eval_fraction": 0.15, "benchmark_dirs": [str(repo_root / "examples" / "eval")]},
               safety={"weight": 0.2}, prompts=["Xin chào"], max_new_tokens=4,
               training={"max_steps": 2, "batch_size": 2, "max_length": 512, "threads": 2})  # fmt: skip
    s = train_sft(cfg, tmp_path / "run")
    d = s["data"]
    assert d["accounted"] and d["in"] == d["kept_train"] + d["eval"] + d["rejected"]
    assert d["mix"]["vi"] > d["mix"]["chat"] and d["mix"]["safety"] > 0
    assert s["initial_eval_loss"] is not None and len(s["after"]) == 1
    backend = LocalBackend(str(tmp_path / "run" / "final"))
    assert backend.chat([{"role": "user", "content": "Chào bạn"}]).ok
    assert (tmp_path / "run" / "rejected.jsonl").is_file() and not (tmp_path / "run" / "checkpoints").exists()


def test_sft_lowers_heldout_assistant_loss_on_vi_alpaca(tiny_dir, tmp_path, shared_data):
    from vinaforge.tune.sft import train_sft

    src = shared_data / "instruct" / "vi_alpaca_reduced.jsonl.gz"
    if not src.is_file():
        pytest.skip(f"{src} absent")
    rows = []
    with gzip.open(src, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i >= 4000:
                break
            rows.append(line)
    random.Random(0).shuffle(rows)
    rows = [r for r in rows if len(r) < 600]
    (tmp_path / "train.jsonl").write_text("".join(rows[:160]), encoding="utf-8")
    (tmp_path / "heldout.jsonl").write_text("".join(rows[160:184]), encoding="utf-8")  # never trained on
    cfg = _cfg(tiny_dir, tmp_path, mode="full", packing=True,
               data={"sources": {"alpaca": {"paths": [str(tmp_path / "train.jsonl")]}},
                     "eval_paths": [str(tmp_path / "heldout.jsonl")], "benchmark_dirs": []},
               training={"max_steps": 16, "batch_size": 2, "max_length": 256, "learning_rate": 5e-3,
                         "warmup_steps": 2, "threads": 2})  # fmt: skip
    s = train_sft(cfg, tmp_path / "run")
    assert s["data"]["eval"] >= 20  # a held-out record longer than max_length is dropped, with its reason
    assert s["final_eval_loss"] < s["initial_eval_loss"] - 0.3, (s["initial_eval_loss"], s["final_eval_loss"])


def test_lora_on_an_extended_vocabulary_trains_the_new_rows(tiny_dir, tmp_path):
    """Under LoRA, the rows of tokens added by vocabulary extension train; the base rows stay put."""
    import shutil

    from vinaforge.tune.common import load_model_for_training

    ext = tmp_path / "ext"
    shutil.copytree(tiny_dir, ext)
    cfg_file = ext / "config.json"
    conf = json.loads(cfg_file.read_text())
    n_base = conf["vocab_size"] - 300  # pretend the last 300 tokens were added by `model extend`
    conf.setdefault("vinaforge", {})["resize"] = {"num_base_rows": n_base}
    cfg_file.write_text(json.dumps(conf))
    cfg = _cfg(ext, tmp_path, mode="lora", lora={"r": 4, "alpha": 8, "dropout": 0.0},
               training={"max_steps": 2, "batch_size": 4, "max_length": 512, "learning_rate": 0.05, "threads": 2})  # fmt: skip
    loaded = load_model_for_training(cfg)
    before = loaded.model.get_input_embeddings()(torch.arange(len(loaded.tokenizer))[None]).detach().clone()
    from vinaforge.tune.sft import build_trainer

    trainer = build_trainer(cfg, loaded, [{"messages": m} for m in CONVS], [], tmp_path / "ck")
    trainer.train()
    after = trainer.model.get_input_embeddings()(torch.arange(len(loaded.tokenizer))[None]).detach()
    assert torch.equal(before[0, :n_base], after[0, :n_base])
    used_new = [i for i in range(n_base, len(loaded.tokenizer)) if not torch.equal(before[0, i], after[0, i])]
    assert used_new  # new rows seen in the batch moved


def test_interrupted_sft_resumes_from_its_checkpoint(tiny_dir, tmp_path, monkeypatch):
    """A run killed after step 2 resumes from checkpoint-2 and does not redo the finished steps."""
    from transformers import TrainerCallback

    from vinaforge.tune import sft

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.global_step == 2:
                raise KeyboardInterrupt("killed after step 2")

    real = sft.build_trainer
    seen_steps: list[int] = []

    class Record(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            seen_steps.append(state.global_step)

    def killing(*a, **kw):
        trainer = real(*a, **kw)
        trainer.add_callback(Kill())
        return trainer

    cfg = _cfg(tiny_dir, tmp_path, mode="lora", training={"max_steps": 3, "batch_size": 1, "max_length": 512,
                                                          "save_steps": 2, "threads": 2})  # fmt: skip
    monkeypatch.setattr(sft, "build_trainer", killing)
    with pytest.raises(KeyboardInterrupt):
        sft.train_sft(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-2").is_dir()

    def recording(*a, **kw):
        trainer = real(*a, **kw)
        trainer.add_callback(Record())
        return trainer

    monkeypatch.setattr(sft, "build_trainer", recording)
    summary = sft.train_sft(cfg, tmp_path / "run")
    assert seen_steps == [3] and summary["steps"] == 3  # steps 1-2 were not trained again
