"""Benchmark: multiple-choice items per second through ``vinaforge eval`` on CPU, and the cost of a
full VMLU + Okapi run for a 1B model on one GPU, estimated from the measured workload.

Two measurements in the same run, on the same tiny real model (random Mistral, 2 layers, hidden 64,
the real Mistral-v0.1 tokenizer) and the same items:

- baseline: ``batch_size=1``;
- measured: ``batch_size="auto"`` (lm-eval's automatic batch size; capped at 8 on CPU).

The workload of a full run (VMLU dev + test, ARC-vi test, MMLU-vi val, zero-shot) is counted
exactly: every request lm-eval sends, with its token count under the Mistral-v0.1 tokenizer.
The GPU figure is an **estimate** (no GPU measured here): forward FLOPs = 2 x parameters x tokens,
at an assumed share of the GPU's dense bf16 peak. Usage::

    python bench/eval.py [--data-dir ../shared/data/benchmarks] [--items 120] [--json bench/out/eval.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# A Llama-3.2-1B-like model: 1.24e9 parameters (embeddings tied); H100 SXM dense bf16 peak 989 TFLOP/s.
PARAMS_1B = 1.24e9
GPU_PEAK_FLOPS = 989e12
ASSUMED_MFU = (0.25, 0.45)  # share of peak a batched, padded prefill-only workload reaches


def build_tiny_model(folder: Path) -> Path:
    from vinaforge.model.tiny import save_model, tiny_model_for
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    tok = resolve_tokenizer("mistral-v0.1")
    model = tiny_model_for(
        tok, "mistral", layers=2, hidden=64, heads=4, kv_heads=2, max_position=2048, seed=0
    )
    return save_model(model, tok, folder)


def timed_run(model_dir: Path, tasks: list[str], data_dir: Path, items: int, batch_size) -> dict:
    from vinaforge.eval.harness import load_lm, run_benchmarks

    lm = load_lm(str(model_dir), batch_size=batch_size, device="cpu", dtype="float32")
    forward = {"seconds": 0.0, "calls": 0}
    model_call = lm._model_call

    def timed_model_call(*args, **kwargs):  # the model's forward pass, to split it from the rest
        t = time.perf_counter()
        try:
            return model_call(*args, **kwargs)
        finally:
            forward["seconds"] += time.perf_counter() - t
            forward["calls"] += 1

    lm._model_call = timed_model_call
    start = time.perf_counter()
    res = run_benchmarks(lm, tasks, data_dir=data_dir, limit=items)
    seconds = time.perf_counter() - start
    n = sum(res[b][s]["n"] for b in res if not b.startswith("_") for s in res[b])
    requests = sum(n_requests(t, data_dir, items) for t in tasks)
    return {
        "items": n,
        "requests": requests,
        "seconds": round(seconds, 2),
        "items_per_s": round(n / seconds, 2),
        "forward_seconds": round(forward["seconds"], 2),
        "forward_calls": forward["calls"],
        "other_ms_per_request": round(1000 * (seconds - forward["seconds"]) / requests, 2),
        "batch_sizes": res["_meta"].get("batch_sizes"),
    }


def n_requests(task: str, data_dir: Path, items: int) -> int:
    """lm-eval requests of the first ``items`` documents (one per choice)."""
    from vinaforge.eval.data import TASK_INDEX, task_name
    from vinaforge.eval.taskdocs import load_task_docs

    docs = load_task_docs(task, TASK_INDEX[task_name(task)][1].split, data_dir)[:items]
    return sum(len(d["choices"]) for d in docs)


def no_leak(model_dir: Path, data_dir: Path) -> dict:
    """The random model on all of VMLU dev and ARC-vi test: distance from chance in standard errors."""
    from vinaforge.eval import data
    from vinaforge.eval.harness import run_benchmarks

    start = time.perf_counter()
    res = run_benchmarks(
        str(model_dir), ["vmlu_dev", "arc_vi"], data_dir=data_dir, device="cpu", batch_size=8
    )
    out = {"seconds": round(time.perf_counter() - start, 1)}
    for bench, split in (("vmlu", "dev"), ("arc_vi", "test")):
        items = data.load_split(bench, split, data_dir)
        chance = sum(1 / len(it["options"]) for it in items) / len(items)
        m = res[bench][split]
        out[f"{bench}/{split}"] = {
            "n": m["n"],
            "chance": round(chance, 4),
            **{k: round(m[k], 4) for k in ("acc", "acc_stderr", "acc_norm", "acc_norm_stderr")},
            "acc_z": round((m["acc"] - chance) / m["acc_stderr"], 2),
            "acc_norm_z": round((m["acc_norm"] - chance) / m["acc_norm_stderr"], 2),
        }
    return out


def workload(data_dir: Path) -> dict:
    """Requests and tokens of a full zero-shot VMLU (dev+test) + ARC-vi test + MMLU-vi val run."""
    from vinaforge.eval.taskdocs import load_task_docs
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    tok = resolve_tokenizer("mistral-v0.1")
    out = {}
    for task, split in (("vmlu_dev", "dev"), ("vmlu_test", "test"), ("arc_vi", "test"), ("mmlu_vi", "val")):
        docs = load_task_docs(task, split, data_dir)
        lettered = all(len(c) == 1 for d in docs for c in d["choices"])
        prompts = [(d.get("instruction") or "") + d["query"] for d in docs]
        ctx_tokens = [len(ids) for ids in tok(prompts, add_special_tokens=True)["input_ids"]]
        if lettered:  # one-letter continuations share one forward pass per item (lm-eval's one-token cache)
            requests, tokens = len(docs), sum(t + 1 for t in ctx_tokens)
        else:  # one forward pass per choice: context + " " + choice
            conts = [" " + c for d in docs for c in d["choices"]]
            cont_tokens = [len(ids) for ids in tok(conts, add_special_tokens=False)["input_ids"]]
            requests = len(conts)
            per_doc = [len(d["choices"]) for d in docs]
            tokens, k = 0, 0
            for ctx, n in zip(ctx_tokens, per_doc, strict=True):
                tokens += sum(ctx + cont_tokens[k + j] for j in range(n))
                k += n
        out[task] = {"items": len(docs), "requests": requests, "tokens": tokens}
    out["total"] = {k: sum(v[k] for v in out.values()) for k in ("items", "requests", "tokens")}
    return out


def gpu_estimate(tokens: int) -> dict:
    flops = 2 * PARAMS_1B * tokens
    lo, hi = (flops / (GPU_PEAK_FLOPS * m) for m in reversed(ASSUMED_MFU))
    return {"forward_flops": flops, "seconds_low": round(lo, 1), "seconds_high": round(hi, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "benchmarks"))
    ap.add_argument("--items", type=int, default=120, help="items per task in the timed runs")
    ap.add_argument("--json", default=str(REPO / "bench" / "out" / "eval.json"))
    ap.add_argument(
        "--no-leak",
        action="store_true",
        help="also score the random model on all of VMLU dev and ARC-vi test",
    )
    args = ap.parse_args()
    data_dir = Path(args.data_dir)
    tasks = ["vmlu_dev", "arc_vi"]
    chance = None
    with tempfile.TemporaryDirectory(prefix="vf-bench-eval-") as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny")
        baseline = timed_run(model_dir, tasks, data_dir, args.items, 1)
        measured = timed_run(model_dir, tasks, data_dir, args.items, "auto")
        if args.no_leak:
            chance = no_leak(model_dir, data_dir)
    work = workload(data_dir)
    est = gpu_estimate(work["total"]["tokens"])
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared with other processes)",
        "tasks": tasks,
        "items_per_task": args.items,
        "baseline_batch_1": baseline,
        "auto_batch": measured,
        "speedup": round(measured["items_per_s"] / baseline["items_per_s"], 2),
        "full_run_workload": work,
        "gpu_estimate_1b": est,
        "assumptions": {"params": PARAMS_1B, "gpu_peak_bf16_flops": GPU_PEAK_FLOPS, "mfu": ASSUMED_MFU},
        "random_model_vs_chance": chance,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
