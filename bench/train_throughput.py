"""Training throughput: our CPT trainer vs a vanilla Hugging Face ``Trainer``, same model, same run.

Both train the same randomly initialised Llama-architecture model on the same Vietnamese text
with the same optimizer settings, one after the other in this process:

- ``vinaforge``: ``vinaforge.train.engine.train_cpt`` — packed memory-mapped sequences of exactly
  ``seq_len`` tokens (no padding), SDPA attention without a mask (causal kernel), loss over every
  token; optional ``torch.compile`` (``--compile``);
- ``baseline``: ``transformers.Trainer`` with default settings — one document per row, truncated
  to ``seq_len`` and padded to the longest row of the batch (``DataCollatorForLanguageModeling``),
  the model's default attention, the default optimizer.

Reported per trainer: median tokens/s over the timed steps (after ``--warmup`` steps), where a
token is a *real* (non-padding) token, so the figure is what the corpus advances per second;
the baseline's padded tokens/s too; MFU = tokens/s x (6 N + 12 L H T) / peak (vinaforge.train.flops;
GPU: vendor dense bf16 peak; CPU: a measured GEMM). Prints and writes one JSON record.

    # CPU (the tiny model; any machine)
    .venv/bin/python bench/train_throughput.py --preset cpu-tiny
    # one GPU: a ~1.1B Llama (TinyLlama-1.1B shape), seq 2048, bf16
    .venv/bin/python bench/train_throughput.py --preset gpu-1b

Text: ../shared/data/vi_text/news_baomoi_magizbox.jsonl.gz when present, else the example corpus.
Tokenizer: Mistral-7B-v0.1's (32,000 tokens, shipped by mistral-common).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_TEXT = REPO.parent / "shared" / "data" / "vi_text" / "news_baomoi_magizbox.jsonl.gz"
EXAMPLE_TEXT = REPO / "examples" / "corpus" / "vi_docs.jsonl"

PRESETS = {
    # the quickstart's scale: runs anywhere in a couple of minutes
    "cpu-tiny": dict(
        hidden=128,
        layers=2,
        heads=4,
        kv_heads=4,
        intermediate=None,
        seq_len=256,
        batch=8,
        steps=12,
        warmup=3,
        precision="fp32",
        compile=False,
        docs=1500,
    ),
    # TinyLlama-1.1B's shape (22 layers, hidden 2048, GQA 32/4 heads, SwiGLU 5632), vocab 32,000
    "gpu-1b": dict(
        hidden=2048,
        layers=22,
        heads=32,
        kv_heads=4,
        intermediate=5632,
        seq_len=2048,
        batch=8,
        steps=30,
        warmup=8,
        precision="bf16",
        compile=True,
        docs=20000,
    ),
}


def load_texts(limit: int) -> tuple[list[str], str]:
    path = SHARED_TEXT if SHARED_TEXT.is_file() else EXAMPLE_TEXT
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in itertools.islice(fh, limit) if line.strip()]
    return [t for t in texts if t.strip()], str(path)


def build_model_dir(args, tokenizer, out: Path) -> tuple[Path, int]:
    from vinaforge.model.tiny import build_tiny_model, save_model

    model = build_tiny_model(
        "llama",
        vocab_size=len(tokenizer),
        layers=args.layers,
        hidden=args.hidden,
        heads=args.heads,
        kv_heads=args.kv_heads,
        intermediate=args.intermediate,
        max_position=max(4096, args.seq_len),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        seed=0,
    )
    save_model(model, tokenizer, out)
    return out, model.num_parameters()


def run_ours(args, model_dir: Path, data_file: Path, work: Path) -> dict:
    from vinaforge.train.config import CptConfig
    from vinaforge.train.engine import train_cpt

    cfg = CptConfig.model_validate(
        {
            "model": str(model_dir),
            "data": {"sources": {"vi": {"paths": [str(data_file)]}}},
            "phases": [
                {
                    "name": "bench",
                    "trainable": "all",
                    "max_steps": args.warmup + args.steps,
                    "lr": 3e-4,
                    "warmup_steps": 2,
                }
            ],
            "seq_len": args.seq_len,
            "micro_batch_size": args.batch,
            "precision": args.precision,
            "compile": args.compile,
            "eval_every": 10**9,
            "save_every": 10**9,
            "keep_checkpoints_after_success": False,
            "report_to": [],
            "progress": False,
        }
    )
    summary = train_cpt(cfg, work / "ours")
    records = [json.loads(line) for line in (work / "ours" / "metrics.jsonl").read_text().splitlines()]
    timed = [r for r in records if "loss" in r][args.warmup :]
    tps = statistics.median(r["tokens_per_s"] for r in timed)
    return {
        "tokens_per_s": tps,
        "padded_tokens_per_s": tps,
        "mfu": statistics.median(r["mfu"] for r in timed) if timed[0].get("mfu") is not None else None,
        "peak_source": summary["peak_source"],
        "peak_tflops": summary["peak_tflops"],
        "flops_per_token": summary["flops_per_token"],
        "final_loss": summary["final_loss"],
        "steps_timed": len(timed),
    }


def run_baseline(
    args, model_dir: Path, texts: list[str], tokenizer, work: Path, flops_token: float, peak: float | None
) -> dict:
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from vinaforge.train.flops import mfu

    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    ds = Dataset.from_dict({"text": texts}).map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=args.seq_len),
        batched=True,
        remove_columns=["text"],
    )
    base_collate = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    counts: list[tuple[int, int]] = []

    def collate(features):
        batch = base_collate(features)
        counts.append((int(batch["attention_mask"].sum()), batch["input_ids"].numel()))
        return batch

    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t0)

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    targs = TrainingArguments(
        output_dir=str(work / "baseline"),
        per_device_train_batch_size=args.batch,
        max_steps=args.warmup + args.steps,
        learning_rate=3e-4,
        warmup_steps=2,
        lr_scheduler_type="cosine",
        weight_decay=0.1,
        bf16=args.precision == "bf16",
        logging_steps=10**9,
        save_strategy="no",
        report_to=[],
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(
        model=model, args=targs, train_dataset=ds, data_collator=collate, callbacks=[StepTimer()]
    )
    trainer.train()
    timed = list(zip(times, counts, strict=False))[args.warmup :]
    real = statistics.median(c[0] / t for t, c in timed)
    padded = statistics.median(c[1] / t for t, c in timed)
    return {
        "tokens_per_s": real,
        "padded_tokens_per_s": padded,
        "mfu": mfu(real, flops_token, peak, 1),
        "attn_implementation": model.config._attn_implementation,
        "optim": targs.optim,
        "mean_real_tokens_per_row": statistics.mean(c[0] for _, c in timed) / args.batch,
        "steps_timed": len(timed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-tiny")
    for key in (
        "hidden",
        "layers",
        "heads",
        "kv_heads",
        "intermediate",
        "seq_len",
        "batch",
        "steps",
        "warmup",
        "docs",
    ):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=None)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=None)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads for both trainers")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "train_throughput.json")
    args = parser.parse_args()
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    from vinaforge.tokenizer.resolve import resolve_tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)

    tokenizer = resolve_tokenizer("mistral-v0.1")
    texts, source = load_texts(args.docs)
    with tempfile.TemporaryDirectory(prefix="vf-bench-") as tmp:
        work = Path(tmp)
        model_dir, n_params = build_model_dir(args, tokenizer, work / "model")
        data_file = work / "texts.jsonl"
        data_file.write_text(
            "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8"
        )
        ours = run_ours(args, model_dir, data_file, work)
        baseline = run_baseline(
            args, model_dir, texts, tokenizer, work, ours["flops_per_token"], ours["peak_tflops"]
        )
    record = {
        "bench": "train_throughput",
        "preset": args.preset,
        "model": {k: getattr(args, k) for k in ("hidden", "layers", "heads", "kv_heads", "intermediate")},
        "params": n_params,
        "seq_len": args.seq_len,
        "batch": args.batch,
        "precision": args.precision,
        "compile_ours": args.compile,
        "text": source,
        "device": torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else platform.processor() or "cpu",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ours": ours,
        "baseline": baseline,
        "speedup_tokens_per_s": ours["tokens_per_s"] / baseline["tokens_per_s"],
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
