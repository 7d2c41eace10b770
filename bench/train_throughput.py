"""Training throughput: vinaforge's CPT loop against a well-configured Hugging Face ``Trainer``, one run.

Every variant trains the same randomly initialised Llama-architecture model, from the same
initial weights, on the **same packed rows in the same order** (the blocks vinaforge's sampler
draws, handed to ``Trainer`` through a sequential sampler), with the same optimizer settings
(AdamW betas 0.9/0.95, weight decay 0.1 off norms and biases, fused kernel, clip 1.0, cosine to
10% with 2 warm-up steps). So the per-step losses of every packed variant must agree, and a faster
variant that trains worse shows up in ``max_loss_diff``.

Variants (``--variants``; each runs in its own subprocess, so peak memory is per variant):

- ``vinaforge`` / ``vinaforge+compile``: ``vinaforge.train.engine.train_cpt``, eager / ``torch.compile``;
- ``vinaforge+chunked``: the same with ``fused_loss: chunked`` (no full logits);
- ``vinaforge+liger``: ``liger_kernels: true, fused_loss: liger`` (GPU only);
- ``hf`` / ``hf+compile``: ``transformers.Trainer`` on the same packed rows, eager / ``torch_compile=True``;
- ``hf+liger``: ``Trainer(use_liger_kernel=True)`` (GPU only: Liger's kernels are Triton);
- ``hf-unpacked``: ``Trainer`` with one document per row, padded (the baseline this benchmark used
  before; different data per step, so its loss is not comparable and its tokens/s count real tokens).

Reported per variant: tokens/s (tokens of the timed steps / wall time from the end of the last
warm-up step to the end of the last step, measured the same way for every variant by a per-step
callback), MFU (6N + 12LHT FLOPs per token, one peak for all variants: vendor dense bf16 on GPUs,
a measured GEMM on CPU), peak memory (GPU: ``torch.cuda.max_memory_allocated``; CPU: peak RSS of
the variant's process minus its RSS before the model was loaded), the loss of the last step and the
largest per-step loss difference from ``vinaforge``. Variants that cannot run here are listed with
the reason. Prints and writes one JSON record.

    .venv/bin/python bench/train_throughput.py --preset cpu-tiny --threads 1     # any machine
    .venv/bin/python bench/train_throughput.py --preset gpu-1b                   # one GPU, 1.1B shape

Text: ../shared/data/vi_text/news_baomoi_magizbox.jsonl.gz when present, else ``--text FILE``,
else the example corpus. Tokenizer: Mistral-7B-v0.1's (32,000 tokens, shipped by mistral-common).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_TEXT = REPO.parent / "shared" / "data" / "vi_text" / "news_baomoi_magizbox.jsonl.gz"
EXAMPLE_TEXT = REPO / "examples" / "corpus" / "vi_docs.jsonl"

VARIANTS = (
    "vinaforge",
    "vinaforge+compile",
    "vinaforge+chunked",
    "vinaforge+liger",
    "hf",
    "hf+compile",
    "hf+liger",
    "hf-unpacked",
)
GPU_ONLY = {"vinaforge+liger": "Liger's kernels are Triton: CUDA only", "hf+liger": "Liger's kernels are Triton: CUDA only"}

PRESETS = {
    # the quickstart's scale: runs anywhere in a few minutes
    "cpu-tiny": dict(
        hidden=128, layers=2, heads=4, kv_heads=4, intermediate=None, seq_len=256, batch=8,
        steps=12, warmup=3, precision="fp32", docs=1500,
    ),
    # TinyLlama-1.1B's shape (22 layers, hidden 2048, GQA 32/4 heads, SwiGLU 5632), vocab 32,000
    "gpu-1b": dict(
        hidden=2048, layers=22, heads=32, kv_heads=4, intermediate=5632, seq_len=2048, batch=8,
        steps=30, warmup=8, precision="bf16", docs=20000,
    ),
}  # fmt: skip

LR = 3e-4
WARMUP_LR_STEPS = 2


# ----------------------------------------------------------------------------- shared set-up


def load_texts(limit: int, text_file: Path | None) -> tuple[list[str], str]:
    path = text_file or (SHARED_TEXT if SHARED_TEXT.is_file() else EXAMPLE_TEXT)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in itertools.islice(fh, limit) if line.strip()]
    return [t for t in texts if t.strip()], str(path)


def source_config(data_file: Path):
    from vinaforge.train.config import SourceConfig

    return SourceConfig(paths=[str(data_file)])


def prepare(args, work: Path) -> dict:
    """Model folder, packed data and the block order every packed variant trains on."""
    from vinaforge.model.tiny import build_tiny_model, save_model
    from vinaforge.train.flops import flops_per_token
    from vinaforge.train.mixture import MixtureSampler
    from vinaforge.train.packing import pack_source

    if args.tokenizer:  # a saved HF folder (the GPU bundle ships one: no mistral-common there)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    else:
        from vinaforge.tokenizer.resolve import resolve_tokenizer

        tokenizer = resolve_tokenizer("mistral-v0.1")
    texts, text_source = load_texts(args.docs, args.text)
    data_file = work / "texts.jsonl"
    data_file.write_text(
        "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8"
    )
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
    model_dir = save_model(model, tokenizer, work / "model")
    packed = pack_source("vi", source_config(data_file), tokenizer, work / "packed", progress=False)
    total = args.warmup + args.steps
    if packed.n_blocks(args.seq_len) < args.batch:
        raise SystemExit(f"the text gives {packed.n_blocks(args.seq_len)} blocks; need at least {args.batch}")
    sampler = MixtureSampler({"vi": packed}, args.seq_len, seed=0)
    order = [i for _ in range(total) for _, i in sampler.draw(args.batch, {"vi": 1.0})]
    return {
        "model_dir": str(model_dir),
        "data_file": str(data_file),
        "packed_dir": str(packed.path),
        "order": order,
        "text_source": text_source,
        "n_docs": len(texts),
        "params": model.num_parameters(),
        "flops_per_token": flops_per_token(model, args.seq_len),
    }


# ----------------------------------------------------------------------------- workers


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_vinaforge(variant: str, args, spec: dict, work: Path) -> dict:
    from vinaforge.train.config import CptConfig
    from vinaforge.train.engine import train_cpt

    stamps: list[float] = []
    cfg = CptConfig.model_validate(
        {
            "model": spec["model_dir"],
            "data": {
                "sources": {"vi": source_config(Path(spec["data_file"])).model_dump()},
                "cache_dir": str(Path(spec["packed_dir"]).parent),
            },
            "phases": [
                {
                    "name": "bench",
                    "trainable": "all",
                    "max_steps": args.warmup + args.steps,
                    "lr": LR,
                    "warmup_steps": WARMUP_LR_STEPS,
                }
            ],
            "seq_len": args.seq_len,
            "micro_batch_size": args.batch,
            "precision": args.precision,
            "compile": variant == "vinaforge+compile",
            "fused_loss": {"vinaforge+chunked": "chunked", "vinaforge+liger": "liger"}.get(variant, "none"),
            "liger_kernels": variant == "vinaforge+liger",
            "eval_every": 10**9,
            "save_every": 10**9,
            "keep_checkpoints_after_success": False,
            "report_to": [],
            "progress": False,
            "seed": 0,
        }
    )
    summary = train_cpt(cfg, work / variant, callbacks=[lambda record: stamps.append(time.perf_counter())])
    records = [json.loads(line) for line in (work / variant / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    return {"stamps": stamps, "losses": losses, "precision": summary["precision"]}


class _Order:
    """A torch Dataset of the packed blocks in the order vinaforge's sampler drew them."""

    def __init__(self, packed_dir: str, order: list[int], seq_len: int):
        from vinaforge.train.packing import PackedSource

        self.source = PackedSource.open(packed_dir)
        self.order = order
        self.seq_len = seq_len

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> dict:
        import torch

        ids, labels, _ = self.source.block(self.order[i], self.seq_len)
        return {"input_ids": torch.from_numpy(ids), "labels": torch.from_numpy(labels)}


class _Unpacked:
    def __init__(self, texts: list[str], tokenizer, seq_len: int):
        self.rows = tokenizer(texts, truncation=True, max_length=seq_len)["input_ids"]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.rows[i]}


def run_hf(variant: str, args, spec: dict, work: Path) -> dict:
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        default_data_collator,
    )

    stamps: list[float] = []
    losses: list = []
    counts: list[int] = []

    class Stamps(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            _sync()
            stamps.append(time.perf_counter())

    class LossTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            counts.append(int(inputs["attention_mask"].sum()) if "attention_mask" in inputs else inputs["input_ids"].numel())
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            losses.append((loss[0] if return_outputs else loss).detach())
            return loss

    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    if variant == "hf-unpacked":
        texts, _ = load_texts(args.docs, args.text)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        dataset = _Unpacked(texts, tokenizer, args.seq_len)
        collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
        sampling = "random"
    else:
        dataset = _Order(spec["packed_dir"], spec["order"], args.seq_len)
        collator = default_data_collator
        sampling = "sequential"
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32)
    targs = TrainingArguments(
        output_dir=str(work / variant),
        per_device_train_batch_size=args.batch,
        max_steps=args.warmup + args.steps,
        learning_rate=LR,
        warmup_steps=WARMUP_LR_STEPS,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": 0.1},
        weight_decay=0.1,
        adam_beta1=0.9,
        adam_beta2=0.95,
        adam_epsilon=1e-8,
        max_grad_norm=1.0,
        optim="adamw_torch_fused",
        bf16=args.precision == "bf16",
        torch_compile=variant == "hf+compile",
        use_liger_kernel=variant == "hf+liger",
        train_sampling_strategy=sampling,
        logging_steps=10**9,
        save_strategy="no",
        report_to=[],
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=0,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = LossTrainer(model=model, args=targs, train_dataset=dataset, data_collator=collator, callbacks=[Stamps()])
    trainer.train()
    out = {"stamps": stamps, "losses": [float(x) for x in losses], "precision": args.precision}
    if variant == "hf-unpacked":
        out["real_tokens"] = counts
    return out


def worker(variant: str, args, spec_file: Path, result_file: Path) -> None:
    import torch

    spec = json.loads(spec_file.read_text())
    if args.threads:
        torch.set_num_threads(args.threads)
    # import what every variant uses before taking the baseline, so the figure is the training's
    import accelerate  # noqa: F401
    import transformers.models.llama.modeling_llama  # noqa: F401
    from transformers import Trainer  # noqa: F401

    import vinaforge.train.engine  # noqa: F401

    rss0 = _rss_mb()
    work = result_file.parent / result_file.stem  # one folder per variant and round
    work.mkdir(parents=True, exist_ok=True)
    run = run_vinaforge if variant.startswith("vinaforge") else run_hf
    out = run(variant, args, spec, work)
    if torch.cuda.is_available():
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["memory_kind"] = "torch.cuda.max_memory_allocated"
    else:
        out["peak_memory_mb"] = _peak_rss_mb() - rss0
        out["memory_kind"] = "peak RSS minus RSS before loading the model"
    result_file.write_text(json.dumps(out))


# ----------------------------------------------------------------------------- parent


def run_variant(variant: str, args, spec_file: Path, result_file: Path) -> dict:
    cmd = [sys.executable, __file__, *sys.argv[1:], "--worker", variant, "--spec", str(spec_file),
           "--result", str(result_file)]  # fmt: skip
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "reason": f"timed out after {args.timeout} s"}
    if proc.returncode != 0 or not result_file.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"status": "failed", "reason": " | ".join(tail)[-600:]}
    raw = json.loads(result_file.read_text())
    raw["status"] = "ok"
    raw["wall_s"] = time.perf_counter() - t0
    return raw


def summarise(variant: str, raw: dict, args, tokens_per_step: int, flops_token: float, peak, ref) -> dict:
    from vinaforge.train.flops import mfu

    stamps = raw["stamps"]
    if len(stamps) < args.warmup + 2:
        return {"status": "failed", "reason": f"only {len(stamps)} steps recorded"}
    timed = len(stamps) - args.warmup
    wall = stamps[-1] - stamps[args.warmup - 1] if args.warmup else stamps[-1] - stamps[0]
    steps_in_wall = timed if args.warmup else timed - 1
    if variant == "hf-unpacked":
        per_step = raw["real_tokens"][args.warmup : args.warmup + steps_in_wall]
        tokens = sum(per_step)
    else:
        tokens = tokens_per_step * steps_in_wall
    tps = tokens / wall
    out = {
        "status": "ok",
        "tokens_per_s": tps,
        "mfu": mfu(tps, flops_token, peak, 1),
        "peak_memory_mb": raw["peak_memory_mb"],
        "memory_kind": raw["memory_kind"],
        "final_loss": raw["losses"][-1] if raw["losses"] else None,
        "steps_timed": steps_in_wall,
        "precision": raw["precision"],
        "wall_s": raw.get("wall_s"),
    }
    if ref is not None and variant != "hf-unpacked" and raw["losses"]:
        out["max_loss_diff"] = max(abs(a - b) for a, b in zip(raw["losses"], ref, strict=False))
    if variant == "hf-unpacked":
        out["mean_real_tokens_per_row"] = statistics.mean(raw["real_tokens"]) / args.batch
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-tiny")
    for key in ("hidden", "layers", "heads", "kv_heads", "intermediate", "seq_len", "batch", "steps", "warmup", "docs"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=None)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=None)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of: " + ", ".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads in every variant")
    parser.add_argument("--text", type=Path, default=None, help="JSONL(.gz) with a text field")
    parser.add_argument("--tokenizer", type=Path, default=None, help="HF tokenizer folder (default: Mistral-v0.1's)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per variant")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds; tokens/s is their median")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "train_throughput.json")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.worker:
        worker(args.worker, args, args.spec, args.result)
        return

    import torch

    from vinaforge.train.flops import peak_tflops

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="vf-bench-") as tmp:
        work = Path(tmp)
        spec = prepare(args, work)
        spec_file = work / "spec.json"
        spec_file.write_text(json.dumps(spec))
        peak, peak_source = peak_tflops(device, args.precision)
        tokens_per_step = args.batch * args.seq_len
        ref = None
        rounds: dict[str, list[dict]] = {}
        for rnd in range(args.repeat):  # interleaved rounds: load changes hit every variant alike
            for variant in variants:
                if variant in GPU_ONLY and device.type != "cuda":
                    results[variant] = {"status": "skipped", "reason": GPU_ONLY[variant]}
                    continue
                r = run_variant(variant, args, spec_file, work / f"{variant}-{rnd}.json")
                if r.get("status") == "ok":
                    if variant == "vinaforge" and ref is None:
                        ref = list(r["losses"])
                    r = summarise(variant, r, args, tokens_per_step, spec["flops_per_token"], peak, ref)
                rounds.setdefault(variant, []).append(r)
                print(
                    f"{variant:18s} {r.get('tokens_per_s', 0):>12,.0f} tok/s  MFU {r.get('mfu') or 0:6.1%}  "
                    f"peak {r.get('peak_memory_mb', 0):8,.0f} MB  loss {r.get('final_loss')} {r.get('reason', '')}",
                    file=sys.stderr,
                )
        for variant, runs in rounds.items():
            ok = [r for r in runs if r.get("status") == "ok"]
            if not ok:
                results[variant] = runs[-1]
                continue
            best = dict(ok[0])
            best["tokens_per_s"] = statistics.median(r["tokens_per_s"] for r in ok)
            best["mfu"] = statistics.median(r["mfu"] for r in ok) if ok[0].get("mfu") is not None else None
            best["tokens_per_s_rounds"] = [r["tokens_per_s"] for r in ok]
            best["peak_memory_mb"] = max(r["peak_memory_mb"] for r in ok)
            results[variant] = best
    base = results.get("hf", {}).get("tokens_per_s")
    for r in results.values():
        if base and r.get("tokens_per_s"):
            r["vs_hf"] = r["tokens_per_s"] / base
    record = {
        "bench": "train_throughput",
        "preset": args.preset,
        "model": {k: getattr(args, k) for k in ("hidden", "layers", "heads", "kv_heads", "intermediate")},
        "params": spec["params"],
        "flops_per_token": spec["flops_per_token"],
        "seq_len": args.seq_len,
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "precision": args.precision,
        "text": spec["text_source"],
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu",
        "peak_tflops": peak,
        "peak_source": peak_source,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "variants": results,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
