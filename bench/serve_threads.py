"""Serving under load: the local server's default torch threads against all cores, on a busy box.

Issue 22 found the local server collapsing on a busy 2-core machine (42 tokens/s with torch's
default of every core against 539 with one thread). ``vinaforge serve`` now defaults to half the
usable cores (``ServeConfig.torch_threads``). This benchmark runs the same server twice on the
same random tiny model, once with the default and once with ``--torch-threads <all cores>``,
while a background process keeps one core busy (a pure-Python loop, stopped at the end), and 4
closed-loop clients stream greedy chat requests (the ``openai`` client). Reported: output
tokens/s and latency p50 of each, and their ratio, measured in the same run.

    .venv/bin/python bench/serve_threads.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve import PRESETS, build_model, prompts, start_server, wave  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def burn(stop_at: float) -> None:
    """Keep one core busy until ``stop_at`` (bounded, so a crashed benchmark cannot leave it running)."""
    x = 0
    while time.time() < stop_at:
        x = (x * 31 + 7) % 1_000_003


def run_mode(model: Path, threads: int | None, p: dict, clients: int, per_client: int, log: Path) -> dict:
    args = ["--max-batch-size", "16"] + (["--torch-threads", str(threads)] if threads else [])
    env_threads = dict(p, threads=os.cpu_count() or 1)  # no OMP cap: the server's own choice decides
    proc, url = start_server(model, args, env_threads, log)
    try:
        wave(url, 1, 1, p["max_tokens"], prompts())  # warm-up
        return wave(url, clients, per_client, p["max_tokens"], prompts())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--per-client", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "serve_threads.json")
    args = ap.parse_args()
    p = PRESETS["cpu-tiny"]
    cores = len(os.sched_getaffinity(0))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / "model", p)
        burner = multiprocessing.Process(target=burn, args=(time.time() + 900,), daemon=True)
        burner.start()
        try:
            for name, threads in (("default", None), (f"all {cores} cores", cores)):
                results[name] = run_mode(model, threads, p, args.clients, args.per_client, Path(tmp) / "log.txt")
        finally:
            burner.terminate()
    ratio = results["default"]["tokens_per_s"] / max(1e-9, results[f"all {cores} cores"]["tokens_per_s"])
    print(f"| threads (cores: {cores}, one kept busy) | tokens/s | latency p50 s |\n|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['tokens_per_s']} | {r['latency_p50_s']} |")
    print(f"default / all cores: {ratio:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cores": cores, "results": results, "ratio": round(ratio, 3)}, indent=2))


if __name__ == "__main__":
    main()
