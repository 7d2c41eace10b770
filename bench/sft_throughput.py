"""SFT throughput: vinaforge's SFT against vanilla TRL + PEFT, in one run, same model, data and steps.

Variants (``--variants``; each in its own subprocess so peak memory is per variant):

- ``vinaforge``: :mod:`vinaforge.tune.sft` — ``SFTTrainer`` as vinaforge configures it: LoRA through
  :func:`vinaforge.tune.common.load_model_for_training`, assistant-only loss on every turn,
  padding-free BFD packing, gradient checkpointing off (on with ``--checkpointing``), Liger kernels
  when installed on a GPU;
- ``trl-padded``: vanilla ``SFTTrainer(peft_config=LoraConfig(...))`` with padding and no packing,
  assistant-only loss, TRL's defaults otherwise except gradient checkpointing (set like vinaforge's);
- ``trl-packed``: the same with ``packing=True``.

Every variant starts from the same randomly initialised weights, trains the same conversations
in the same order for ``--steps`` optimizer steps of ``--batch`` rows, LoRA r=16 on all linear
layers. Reported: real (non-padding) tokens/s over the steps after ``--warmup`` (timed by a
per-step callback, the same way for every variant), peak memory (GPU: ``max_memory_allocated``;
CPU: peak RSS of the variant's process minus its RSS before the model loaded) and the final
logged loss; ratios against ``trl-padded``. Packed variants see more conversations per step, so
final losses are comparable only roughly; tokens/s is the figure of merit.

    .venv/bin/python bench/sft_throughput.py --preset cpu-tiny            # any machine
    .venv/bin/python bench/sft_throughput.py --preset gpu-1b              # one GPU, 1.1B shape, < 5 min

Data: a sample of ../shared/data/instruct/vi_alpaca_reduced.jsonl.gz when present, else the
example instructions. Tokenizer: Mistral-7B-v0.1's (shipped by mistral-common).
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "instruct" / "vi_alpaca_reduced.jsonl.gz"
VARIANTS = ("vinaforge", "trl-padded", "trl-packed")
PRESETS = {
    "cpu-tiny": dict(layers=2, hidden=128, heads=4, kv_heads=4, batch=8, max_length=512, steps=12, warmup=2,
                     items=400, precision="fp32"),
    "gpu-1b": dict(layers=22, hidden=2048, heads=32, kv_heads=4, batch=16, max_length=1024, steps=40, warmup=5,
                   items=4000, precision="bf16"),
}  # fmt: skip


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def load_rows(n: int) -> tuple[list[dict], str]:
    if SHARED.is_file():
        rows = []
        with gzip.open(SHARED, "rt", encoding="utf-8") as fh:
            for line in fh:
                rows.append(json.loads(line))
                if len(rows) >= n:
                    break
        src = f"{SHARED.name} (first {len(rows)})"
    else:
        from vinaforge.chat import read_conversations

        convs = read_conversations([REPO / "examples/instruct/vi_instruct.jsonl", REPO / "examples/instruct/vi_chat.jsonl"]).kept
        rows = [{"messages": c.messages} for c in (convs * (n // len(convs) + 1))[:n]]
        return rows, "examples/instruct (repeated)"
    from vinaforge.chat import parse_record

    return [{"messages": parse_record(r).messages} for r in rows], src


def prepare(args, work: Path) -> dict:
    from vinaforge.model.tiny import save_model, tiny_model_for
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    tok = resolve_tokenizer("mistral-v0.1")
    model = tiny_model_for(tok, "llama", layers=args.layers, hidden=args.hidden, heads=args.heads,
                           kv_heads=args.kv_heads, seed=0)  # fmt: skip
    save_model(model, tok, work / "model")
    rows, src = load_rows(args.items)
    (work / "rows.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return {"model": str(work / "model"), "rows": str(work / "rows.json"), "data": src,
            "params": model.num_parameters()}  # fmt: skip


def _callback(warmup: int, out: dict):
    import torch
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if state.global_step == warmup:
                out["t0"] = time.perf_counter()
            out["t1"] = time.perf_counter()

    return Timer()


class TokenCounter:
    """Wraps a collator and counts real (attention) tokens of the batches after warm-up."""

    def __init__(self, inner, warmup: int):
        self.inner, self.warmup, self.batches, self.tokens = inner, warmup, 0, 0

    def __call__(self, examples):
        batch = self.inner(examples)
        self.batches += 1
        if self.batches > self.warmup:
            if "attention_mask" in batch:
                self.tokens += int(batch["attention_mask"].sum())
            else:  # padding-free: every token is real
                self.tokens += int(batch["input_ids"].numel())
        return batch


def worker(variant: str, args, spec: dict) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rss0 = _rss_mb()
    rows = json.loads(Path(spec["rows"]).read_text(encoding="utf-8"))
    out_dir = Path(tempfile.mkdtemp(prefix=f"sftbench-{variant}-"))
    bf16 = args.precision == "bf16"
    common = dict(output_dir=str(out_dir), max_steps=args.steps, per_device_train_batch_size=args.batch,
                  learning_rate=2e-4, logging_steps=1, save_strategy="no", report_to=[], seed=0,
                  gradient_checkpointing=args.checkpointing, bf16=bf16, use_cpu=not torch.cuda.is_available(),
                  max_length=args.max_length, assistant_only_loss=True, dataset_num_proc=None,
                  shuffle_dataset=False)  # fmt: skip
    timing: dict = {}
    from datasets import Dataset

    ds = Dataset.from_list(rows)
    if variant == "vinaforge":
        from vinaforge.tune.common import load_model_for_training
        from vinaforge.tune.sft import Config, build_trainer

        cfg = Config.model_validate({
            "model": spec["model"], "mode": "lora", "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
            "chat_template": "vi_qa", "dtype": "bf16" if bf16 else "float32",
            "data": {"sources": {"a": {"paths": [spec["rows"]]}}},
            "training": {"max_steps": args.steps, "batch_size": args.batch, "max_length": args.max_length,
                         "learning_rate": 2e-4, "gradient_checkpointing": args.checkpointing, "save_steps": 10**6},
        })  # fmt: skip
        loaded = load_model_for_training(cfg)
        trainer = build_trainer(cfg, loaded, rows, [], out_dir)
        if torch.cuda.is_available() and _has_liger():
            trainer.args.use_liger_kernel = True
    else:
        from peft import LoraConfig
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import SFTConfig, SFTTrainer

        from vinaforge.chat import TEMPLATES

        tok = AutoTokenizer.from_pretrained(spec["model"])
        tok.chat_template = TEMPLATES["vi_qa"].jinja  # the same marked template (TRL ships none for Mistral)
        tok.pad_token = tok.pad_token or tok.unk_token
        model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.bfloat16 if bf16 else torch.float32)
        if torch.cuda.is_available():
            model = model.cuda()
        trainer = SFTTrainer(model=model, args=SFTConfig(**common, packing=variant == "trl-packed"), train_dataset=ds,
                             processing_class=tok, peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                                                          target_modules="all-linear"))  # fmt: skip
    counter = TokenCounter(trainer.data_collator, args.warmup)
    trainer.data_collator = counter
    trainer.add_callback(_callback(args.warmup, timing))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    peak = (torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available()
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0)  # fmt: skip
    secs = timing["t1"] - timing["t0"]
    return {"variant": variant, "tokens_per_s": counter.tokens / secs, "timed_tokens": counter.tokens,
            "timed_seconds": secs, "peak_memory_mb": peak, "final_loss": losses[-1] if losses else None,
            "first_loss": losses[0] if losses else None}  # fmt: skip


def _has_liger() -> bool:
    import importlib.util

    return importlib.util.find_spec("liger_kernel") is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-tiny")
    for key in ("layers", "hidden", "heads", "kv_heads", "batch", "max_length", "steps", "warmup", "items"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=None)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=None)
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing in every variant")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "sft_throughput.json")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for k, v in PRESETS[args.preset].items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    if args.worker:
        res = worker(args.worker, args, json.loads(args.spec.read_text()))
        print("RESULT " + json.dumps(res))
        return
    work = Path(tempfile.mkdtemp(prefix="sftbench-"))
    spec = prepare(args, work)
    spec_file = work / "spec.json"
    spec_file.write_text(json.dumps(spec))
    results = []
    for v in args.variants.split(","):
        cmd = [sys.executable, __file__, "--worker", v, "--spec", str(spec_file), *sys.argv[1:]]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            results.append({"variant": v, "error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]})
        else:
            results.append(json.loads(line[7:]))
        print(json.dumps(results[-1]), flush=True)
    base = next((r for r in results if r["variant"] == "trl-padded" and "tokens_per_s" in r), None)
    for r in results:
        if base and "tokens_per_s" in r:
            r["speedup_vs_trl_padded"] = r["tokens_per_s"] / base["tokens_per_s"]
            r["memory_vs_trl_padded"] = r["peak_memory_mb"] / base["peak_memory_mb"] if base["peak_memory_mb"] else None
    import torch

    record = {"benchmark": "sft_throughput", "preset": args.preset, "settings": {k: getattr(args, k) for k in
              ("layers", "hidden", "heads", "kv_heads", "batch", "max_length", "steps", "warmup", "precision",
               "checkpointing", "threads")}, "params": spec["params"], "data": spec["data"],
              "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu",
              "results": results}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
