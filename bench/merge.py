"""Benchmark: mergekit's lazy, tensor-at-a-time merge vs loading every model whole, on CPU.

Builds a random base model of Llama-1B shape (TinyLlama-1.1B: hidden 2048, MLP 5632, 32 heads,
4 KV heads, vocabulary 32000; ``--layers 22`` is the full 1.1B, the default keeps a few layers so
it runs in minutes on 2 cores) and two "fine-tunes" of it (base + small random updates), in
bfloat16 safetensors. Then, each in its own process so peak memory is measured cleanly
(``ru_maxrss`` of the child):

- **lazy**: ``vinaforge.merge`` → mergekit ``run_merge`` (reads one tensor at a time, writes
  100M-parameter shards: mergekit holds a whole output shard in memory until it writes it);
- **whole**: the strongest in-memory alternative: load every model with
  ``AutoModelForCausalLM.from_pretrained`` (bf16), merge the state dicts with mergekit's own
  in-memory API (``merge_state_dicts``, the same arithmetic) and ``save_pretrained``.

for a linear merge (2 models) and a TIES merge (base + 2 models, density 0.5). Reports wall
time and peak RSS of each, and the ratios lazy/whole. ``--export`` also times the GGUF export of
the linear merge to f16 and q8_0 with llama.cpp's converter.

    python bench/merge.py                 # 4 layers (~0.3B parameters): a few minutes on 2 cores
    python bench/merge.py --layers 22     # the full 1.1B shape (needs ~10 GB RAM for "whole")
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARD_SIZE = "100M"  # lazy: parameters per output shard (mergekit holds one shard in RAM until written)
sys.path.insert(0, str(REPO))


def build_models(root: Path, layers: int, seed: int = 0) -> dict[str, Path]:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from vinaforge.tokenizer.resolve import resolve_tokenizer

    tok = resolve_tokenizer("mistral-v0.1")
    cfg = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=layers,
                      num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
                      bos_token_id=1, eos_token_id=2)  # fmt: skip
    paths = {}
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    for name, noise in (("base", 0.0), ("ft1", 0.01), ("ft2", 0.01)):
        out = root / name
        paths[name] = out
        if (out / "config.json").is_file():
            continue
        model = base
        if noise:
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
            with torch.no_grad():
                for p, q in zip(model.parameters(), base.parameters(), strict=True):
                    p.copy_(q + torch.randn_like(q) * noise)
        model.save_pretrained(out)
        tok.save_pretrained(out)
        if model is not base:
            del model
    return paths


def _configs(paths: dict[str, Path]) -> dict[str, dict]:
    return {
        "linear": {"merge_method": "linear", "dtype": "float32", "out_dtype": "bfloat16",
                   "models": [{"model": str(paths["ft1"]), "parameters": {"weight": 0.5}},
                              {"model": str(paths["ft2"]), "parameters": {"weight": 0.5}}]},
        "ties": {"merge_method": "ties", "base_model": str(paths["base"]), "dtype": "float32", "out_dtype": "bfloat16",
                 "models": [{"model": str(paths["ft1"]), "parameters": {"weight": 0.5, "density": 0.5}},
                            {"model": str(paths["ft2"]), "parameters": {"weight": 0.5, "density": 0.5}}]},
    }  # fmt: skip


def child(mode: str, cfg: dict, out: str, threads: int) -> None:
    """One merge, in this (child) process."""
    import torch

    torch.set_num_threads(threads)
    if mode == "lazy":
        from vinaforge.merge.config import Config, merge_models

        merge_models(Config(**cfg, shard_size=SHARD_SIZE), out, seed=0)
        return
    from mergekit.merge_methods.api import merge_state_dicts
    from transformers import AutoModelForCausalLM

    names = [m["model"] for m in cfg["models"]]
    base_path = cfg.get("base_model")
    loaded = {p: AutoModelForCausalLM.from_pretrained(p, dtype=torch.bfloat16) for p in [*names, *([base_path] if base_path else [])]}
    params = {k: {p: m["parameters"][k] for p, m in zip(names, cfg["models"], strict=True)}
              for k in cfg["models"][0]["parameters"]}  # fmt: skip
    with torch.no_grad():
        merged = merge_state_dicts({p: loaded[p].state_dict() for p in loaded}, cfg["merge_method"], parameters=params,
                                   base=base_path, dtype=torch.float32, out_dtype=torch.bfloat16)  # fmt: skip
    target = loaded[names[0]]
    target.load_state_dict(merged, strict=False)
    target.save_pretrained(out)


def _anon_kb(pid: int) -> int:
    """Anonymous resident memory of a process (what must fit in RAM; mmapped file pages can be dropped)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(mode: str, cfg: dict, out: Path, threads: int) -> dict:
    """Wall time, peak RSS (``ru_maxrss``, includes mmapped file pages) and peak anonymous RSS (sampled)."""
    import threading

    if out.exists():
        shutil.rmtree(out)
    started = time.time()
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, "--cfg", json.dumps(cfg), "--out", str(out),
                             "--threads", str(threads)])  # fmt: skip
    peak_anon = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak_anon[0] = max(peak_anon[0], _anon_kb(proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    seconds = time.time() - started
    if status != 0:
        raise SystemExit(f"{mode} merge failed (status {status})")
    return {"seconds": round(seconds, 2), "peak_rss_gb": round(usage.ru_maxrss / 1024**2, 3),
            "peak_anon_gb": round(peak_anon[0] / 1024**2, 3)}  # fmt: skip


def export_times(model: Path, work: Path) -> dict:
    from vinaforge.export.llamacpp import convert

    out = {}
    for qtype in ("f16", "q8_0"):
        target = work / f"bench-{qtype}.gguf"
        out[qtype] = {"seconds": convert(model, target, qtype), "bytes": target.stat().st_size}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "merge")
    ap.add_argument("--export", action="store_true", help="also time GGUF f16 and q8_0 export of the linear merge")
    ap.add_argument("--child"), ap.add_argument("--cfg"), ap.add_argument("--out")
    args = ap.parse_args()
    if args.child:
        child(args.child, json.loads(args.cfg), args.out, args.threads)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = args.work / f"layers{args.layers}"
    work.mkdir(parents=True, exist_ok=True)
    t = time.time()
    paths = build_models(work / "models", args.layers)
    n_params = sum(os.path.getsize(f) for f in (paths["ft1"]).glob("*.safetensors")) / 2
    print(f"models ready in {time.time() - t:.0f} s: {n_params / 1e9:.2f}B parameters each (bf16)", flush=True)
    results = {"layers": args.layers, "parameters_b": round(n_params / 1e9, 3), "threads": args.threads, "merges": {}}
    for method, cfg in _configs(paths).items():
        row = {mode: measure(mode, cfg, work / f"out-{method}-{mode}", args.threads) for mode in ("lazy", "whole")}
        row["time_ratio_lazy_over_whole"] = round(row["lazy"]["seconds"] / row["whole"]["seconds"], 3)
        row["ram_ratio_lazy_over_whole"] = round(row["lazy"]["peak_rss_gb"] / row["whole"]["peak_rss_gb"], 3)
        row["anon_ratio_lazy_over_whole"] = round(row["lazy"]["peak_anon_gb"] / row["whole"]["peak_anon_gb"], 3)
        results["merges"][method] = row
        print(method, json.dumps(row), flush=True)
    if args.export:
        results["export"] = export_times(work / "out-linear-lazy", work)
        print("export", json.dumps(results["export"]), flush=True)
    (args.work / f"results-layers{args.layers}.json").write_text(json.dumps(results, indent=2) + "\n")
    for d in work.glob("out-*"):
        shutil.rmtree(d)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
