"""Serving throughput: dynamic batching against one request at a time, same server, same run.

For each mode the real server (``vinaforge serve``, uvicorn, its own process) is started on the
same model, and 1, 4 and 16 concurrent clients (the official ``openai`` client, one thread each,
closed loop: a client sends its next request when the previous answer has finished streaming)
send streamed greedy chat requests with Vietnamese prompts. Modes:

- ``continuous``: the default server: continuous batching, up to 16 rows decoded together, a
  request joins the running batch at the next step;
- ``wave``: ``--batching wave``: requests that arrive together run as one ``generate`` call, a
  later one waits for the next batch;
- ``serial``: ``--max-batch-size 1``: one request at a time through the same KV-cached decoding
  (the strongest unbatched configuration: no padding, no waiting for other rows).

Reported per mode and concurrency: output tokens/s (completion tokens from the API's ``usage`` /
wall time of the whole wave), time-to-first-token and end-to-end latency p50/p99 per request,
and each mode's throughput over ``serial``'s. Prints a Markdown table and writes JSON to
``bench/out/serve.json``.

    .venv/bin/python bench/serve.py                    # cpu-tiny preset, any machine
    .venv/bin/python bench/serve.py --preset gpu       # one GPU: a 0.5B-shaped random model, bf16

Models are randomly initialised (Mistral shape, Mistral-v0.1 tokenizer): throughput does not
depend on the weights, and nothing is downloaded. ``--model DIR`` serves a model of your own.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRESETS = {
    "cpu-tiny": {"layers": 2, "hidden": 128, "heads": 4, "max_tokens": 64, "device": "cpu", "dtype": "float32",
                 "threads": 1, "requests": {1: 6, 4: 3, 16: 2}},
    "gpu": {"layers": 24, "hidden": 1024, "heads": 16, "max_tokens": 128, "device": "cuda", "dtype": "bfloat16",
            "threads": 4, "requests": {1: 8, 4: 4, 16: 4}},
}  # fmt: skip


def build_model(out: Path, p: dict) -> Path:
    from vinaforge.model.tiny import build_tiny_model
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    tok = resolve_tokenizer("mistral-v0.1")
    model = build_tiny_model("mistral", vocab_size=len(tok), layers=p["layers"], hidden=p["hidden"], heads=p["heads"],
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, seed=0)  # fmt: skip
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def prompts() -> list[str]:
    out = []
    with open(REPO / "examples" / "instruct" / "vi_instruct.jsonl", encoding="utf-8") as fh:
        for line in fh:
            out.append(json.loads(line)["prompt"])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MODES = {"continuous": ["--max-batch-size", "16"], "wave": ["--max-batch-size", "16", "--batching", "wave"],
         "serial": ["--max-batch-size", "1"]}


def start_server(model: Path, mode_args: list[str], p: dict, log: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS=str(p["threads"]), MKL_NUM_THREADS=str(p["threads"]),
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")  # fmt: skip
    cmd = [sys.executable, "-m", "vinaforge", "serve", str(model), "--port", str(port), "--served-name", "bench",
           *mode_args, "--device", p["device"], "--dtype", p["dtype"], "--max-concurrency", "256"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not start in 300 s")


def one_request(client, prompt: str, max_tokens: int) -> dict:
    t0 = time.perf_counter()
    first, tokens = None, 0
    stream = client.chat.completions.create(model="bench", messages=[{"role": "user", "content": prompt}],
                                            max_tokens=max_tokens, temperature=0, stream=True,
                                            stream_options={"include_usage": True})  # fmt: skip
    for chunk in stream:
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
        if first is None and any(c.delta.content for c in chunk.choices):
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return {"tokens": tokens, "ttft": first if first is not None else total, "latency": total}


def wave(url: str, clients: int, per_client: int, max_tokens: int, texts: list[str]) -> dict:
    import openai

    results: list[dict] = []
    lock = threading.Lock()

    def client_loop(i: int) -> None:
        c = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=600)
        for j in range(per_client):
            r = one_request(c, texts[(i * per_client + j) % len(texts)], max_tokens)
            with lock:
                results.append(r)
        c.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0

    def pct(values: list[float], q: float) -> float:
        values = sorted(values)
        return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]

    lat = [r["latency"] for r in results]
    ttft = [r["ttft"] for r in results]
    tokens = sum(r["tokens"] for r in results)
    return {"clients": clients, "requests": len(results), "tokens": tokens, "wall_s": round(wall, 3),
            "tokens_per_s": round(tokens / wall, 2), "latency_p50_s": round(statistics.median(lat), 3),
            "latency_p99_s": round(pct(lat, 0.99), 3), "ttft_p50_s": round(statistics.median(ttft), 3),
            "ttft_p99_s": round(pct(ttft, 0.99), 3)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu-tiny")
    ap.add_argument("--model", type=Path, help="serve this model folder instead of a random one")
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--modes", default="continuous,wave,serial")
    ap.add_argument("--max-tokens", type=int)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "serve.json")
    args = ap.parse_args()
    p = PRESETS[args.preset]
    max_tokens = args.max_tokens or p["max_tokens"]
    clients = [int(c) for c in args.clients.split(",")]
    texts = prompts()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_model(Path(tmp) / "model", p)
        rows = []
        for mode in args.modes.split(","):
            proc, url = start_server(model, MODES[mode], p, Path(tmp) / f"{mode}.log")
            try:
                wave(url, 2, 1, 8, texts)  # warm-up: first-call allocations, lazy imports
                for c in clients:
                    per = p["requests"].get(c, 2)
                    row = {"mode": mode, **wave(url, c, per, max_tokens, texts)}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
            finally:
                proc.terminate()
                proc.wait(60)
    by = {(r["mode"], r["clients"]): r for r in rows}
    modes = [m for m in args.modes.split(",") if m != "serial"]
    ratios = {m: {c: round(by[(m, c)]["tokens_per_s"] / by[("serial", c)]["tokens_per_s"], 2) for c in clients}
              for m in modes if ("serial", clients[0]) in by}  # fmt: skip
    record = {"preset": args.preset, "max_tokens": max_tokens, "rows": rows, "speedup_vs_serial": ratios,
              "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}}  # fmt: skip
    try:
        import torch

        if torch.cuda.is_available():
            record["machine"]["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2), encoding="utf-8")
    print("\n| mode | clients | requests | output tok/s | latency p50 / p99 (s) | TTFT p50 / p99 (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['clients']} | {r['requests']} | {r['tokens_per_s']} | {r['latency_p50_s']} / "
              f"{r['latency_p99_s']} | {r['ttft_p50_s']} / {r['ttft_p99_s']} |")  # fmt: skip
    for m, r in ratios.items():
        print(f"\n{m} / serial output tokens/s: " + ", ".join(f"{c} clients {v}×" for c, v in r.items()))


if __name__ == "__main__":
    main()
