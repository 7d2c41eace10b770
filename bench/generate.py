"""Benchmark: generated tokens per second of ``vinaforge.generate``'s LocalBackend, batched vs batch 1.

Both measurements run in the same process, on the same tiny real model (a random Mistral, 2 layers,
hidden 128 by default, the real Mistral-v0.1 tokenizer shipped in ``mistral-common``) and the same
chat requests (Vietnamese questions from ``examples/``, rendered in the ``vi_qa`` template):

- baseline: ``batch_size=1`` (one request per ``generate`` call, KV cache on: what a loop over
  ``model.generate`` does);
- measured: ``batch_size=B`` (left-padded batches sorted by prompt length, KV cache on).

Greedy decoding, a fixed ``max_new_tokens`` and no stop string a random model can hit, so every
request generates the same number of tokens in both runs (checked, and the texts must be equal:
greedy batched output equals batch-1 output). Each configuration is warmed up once, then timed
``--repeats`` times; the best time counts. Usage::

    python bench/generate.py [--requests 32] [--batch-size 16] [--max-new-tokens 48] [--threads 2]
        [--json bench/out/generate.json]
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


def build_tiny_model(folder: Path, hidden: int, layers: int) -> Path:
    from vinaforge.model.tiny import save_model, tiny_model_for
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    tok = resolve_tokenizer("mistral-v0.1")
    model = tiny_model_for(tok, "mistral", layers=layers, hidden=hidden, heads=4, kv_heads=2, max_position=2048,
                           seed=0)  # fmt: skip
    return save_model(model, tok, folder)


def questions(n: int) -> list[list[dict[str, str]]]:
    """``n`` one-turn conversations from the example instruction data (cycled if there are fewer)."""
    from vinaforge.chat import read_conversations

    convs = read_conversations([str(REPO / "examples" / "instruct" / "vi_instruct.jsonl")]).kept
    prompts = [c.prompt_messages for c in convs if c.prompt_messages]
    if not prompts:
        raise SystemExit("no prompts in examples/instruct")
    return [prompts[i % len(prompts)] for i in range(n)]


def timed(backend, requests, params, repeats: int) -> tuple[float, list]:
    backend.generate(requests[: max(1, backend.batch_size)], params)  # warm-up
    best, out = float("inf"), []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = backend.generate(requests, params)
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-template-stops", action="store_true",
                    help="drop the template's stop strings (to measure what transformers' stop-string check costs)")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "generate.json")
    args = ap.parse_args()

    import torch

    from vinaforge.generate import GenRequest, SamplingParams
    from vinaforge.generate.local import LocalBackend

    torch.set_num_threads(args.threads)
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0.0)
    requests = [GenRequest(messages=m) for m in questions(args.requests)]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "model", args.hidden, args.layers)
        runs = {}
        texts = {}
        for name, bs in (("batch_1", 1), (f"batch_{args.batch_size}", args.batch_size)):
            backend = LocalBackend(str(model_dir), device="cpu", dtype="float32", batch_size=bs)
            if args.no_template_stops:
                backend.template_stops = []
            seconds, out = timed(backend, requests, params, args.repeats)
            tokens = sum(c.completion_tokens for c in out)
            prompt_tokens = sum(c.prompt_tokens for c in out)
            if any(not c.ok for c in out):
                raise SystemExit(f"{name}: failed requests: {[c.error for c in out if not c.ok][:3]}")
            runs[name] = {"batch_size": bs, "seconds": round(seconds, 3), "completion_tokens": tokens,
                          "prompt_tokens": prompt_tokens, "tokens_per_s": round(tokens / seconds, 1)}  # fmt: skip
            texts[name] = [c.text for c in out]
            print(f"{name:>10}: {tokens} tokens in {seconds:.2f} s = {tokens / seconds:,.1f} tokens/s", flush=True)
    base, batched = runs["batch_1"], runs[f"batch_{args.batch_size}"]
    same = texts["batch_1"] == texts[f"batch_{args.batch_size}"]
    ratio = batched["tokens_per_s"] / base["tokens_per_s"]
    print(f"batched / batch-1 throughput: {ratio:.2f}x  (greedy outputs identical: {same})")
    result = {
        "benchmark": "vinaforge.generate LocalBackend: batched vs batch-1 generation",
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "runs": runs,
        "ratio": round(ratio, 2),
        "outputs_identical": same,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "python": platform.python_version()},  # fmt: skip
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
