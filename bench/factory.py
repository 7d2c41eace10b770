"""Benchmark: translation records/s through an OpenAI-compatible server (concurrency 1 vs 8) and
decontamination throughput against the full benchmark set (MB of text per second on one core).

Translation: the real tiny model (random weights, Mistral-v0.1 tokenizer, 2 layers, hidden 64)
behind ``vinaforge.generate.testserver`` on 127.0.0.1, called by the ``translate`` pipeline with
the official ``openai`` client; English records from ``examples/factory/en_chat.jsonl`` repeated
with distinct ids and a distinct sentence so the cache never hits. The test server runs one
request at a time (a model lock), so concurrency only overlaps HTTP, JSON and client work with
model time: a batching server (vLLM, ``vinaforge serve``) gains far more.

Decontamination: ``vinaforge.factory.decontaminate`` (one process, one core) over
``shared/data/instruct/vi_alpaca_reduced.jsonl.gz`` (51k records) against every benchmark file
under ``shared/data/benchmarks`` (VMLU dev+test, okapi ARC/MMLU); goal ≥ 1 GB per core-hour
(0.28 MB/s). Index build time is reported apart.

    python bench/factory.py                   # both parts
    python bench/factory.py --records 48 --decontam-records 20000
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VINAFORGE_SHARED_DATA", REPO.parent / "shared" / "data"))


def tiny_model(out: Path) -> Path:
    from vinaforge.chat import apply_chat_template
    from vinaforge.model.tiny import build_tiny_model, save_model
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    tok = resolve_tokenizer("mistral-v0.1")
    apply_chat_template(tok, "mistral")
    model = build_tiny_model("mistral", vocab_size=len(tok), layers=2, hidden=64, heads=4,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, seed=0)  # fmt: skip
    save_model(model, tok, out)
    return out


def batched_backend(engine):
    """A ``Backend`` whose ``generate`` goes through ``BatchingEngine``: concurrent HTTP requests share batches."""
    from vinaforge.generate import Backend

    class BatchedBackend(Backend):
        name = "batched"

        def generate(self, requests, params=None):
            return engine.generate(list(requests), params)

        def stream(self, request, params=None):
            from vinaforge.generate import StreamEvent

            (c,) = self.generate([request], params)  # the whole reply as one event: the bench measures throughput
            yield StreamEvent(c.text or "", c)

        def describe(self):
            return {"kind": "batched"}

    return BatchedBackend()


def _write_records(n: int, path: Path) -> None:
    from vinaforge.chat import parse_record

    lines = (REPO / "examples" / "factory" / "en_chat.jsonl").read_text().splitlines()
    base = [parse_record(json.loads(line)) for line in lines]
    with open(path, "w") as fh:
        for i in range(n):  # every turn made unique (a word, not a number: numbers are protected)
            tag = "".join(chr(97 + (i // 26**k) % 26) for k in range(3))
            msgs = [{**m, "content": f"Case {tag}. {m['content']}"} for m in base[i % len(base)].messages]
            fh.write(json.dumps({"id": f"r{i}", "messages": msgs}) + "\n")


def bench_translate(n: int, tmp: Path) -> dict:
    import contextlib

    from vinaforge.factory.translate import Config, translate
    from vinaforge.generate import BackendConfig, SamplingParams, load_backend
    from vinaforge.generate.batching import BatchingEngine
    from vinaforge.generate.testserver import serve_backend

    data = tmp / "en.jsonl"
    _write_records(n, data)
    backend = load_backend(str(tiny_model(tmp / "tiny")))
    backend.generate(
        ["warm-up"], SamplingParams(max_new_tokens=4)
    )  # load and warm the model outside the timings
    out: dict = {}
    with BatchingEngine(backend, max_batch_size=16) as engine:
        for server in ("serial", "batching"):
            model = backend if server == "serial" else batched_backend(engine)
            with serve_backend(model) as srv:
                if (
                    server == "batching"
                ):  # the test server runs one request at a time; let the engine batch them
                    srv.server.model_lock = contextlib.nullcontext()
                for conc in (1, 8):
                    cfg = Config(inputs=[str(data)], sampling={"max_new_tokens": 16}, batch_records=64,
                                 backend=BackendConfig(kind="openai", base_url=srv.base_url, model="tiny",
                                                       concurrency=conc))  # fmt: skip
                    t0 = time.perf_counter()
                    stats = translate(cfg, tmp / f"out-{server}-{conc}")
                    dt = time.perf_counter() - t0
                    out[f"{server}_concurrency_{conc}"] = {
                        "records": stats["input"], "calls": stats["usage"]["calls"], "seconds": round(dt, 2),
                        "records_per_s": round(stats["input"] / dt, 2),
                    }  # fmt: skip
    rate = {k: v["records_per_s"] for k, v in out.items()}
    out["speedup_8_vs_1_serial"] = round(rate["serial_concurrency_8"] / rate["serial_concurrency_1"], 2)
    out["speedup_8_vs_1_batching"] = round(rate["batching_concurrency_8"] / rate["batching_concurrency_1"], 2)
    return out


def bench_decontaminate(limit: int) -> dict:
    from vinaforge.factory.decontaminate import DecontamConfig, build_index, decontaminate
    from vinaforge.factory.records import total_bytes

    src = SHARED / "instruct" / "vi_alpaca_reduced.jsonl.gz"
    bench = SHARED / "benchmarks"
    if not src.is_file() or not bench.is_dir():
        return {"skipped": f"{src} or {bench} absent"}
    with gzip.open(src, "rt", encoding="utf-8") as fh:
        recs = [json.loads(line) for _, line in zip(range(limit), fh, strict=False)]
    cfg = DecontamConfig(benchmark_dirs=[str(bench)])
    t0, c0 = time.perf_counter(), time.process_time()
    idx = build_index(cfg)
    build = (time.perf_counter() - t0, time.process_time() - c0)
    t0, c0 = time.perf_counter(), time.process_time()
    kept, dropped = decontaminate(recs, cfg, idx)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    mb = total_bytes(recs) / 1e6
    return {"records": len(recs), "mb": round(mb, 2), "benchmark_items": len(idx.items), "index_ngrams": len(idx.hashes),
            "index_build_s": round(build[0], 2), "index_build_cpu_s": round(build[1], 2),
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "mb_per_cpu_s": round(mb / cpu, 3),
            "gb_per_core_hour": round(mb / cpu * 3600 / 1000, 2), "contaminated": len(dropped)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=48)
    ap.add_argument("--decontam-records", type=int, default=51092)
    ap.add_argument("--skip-translate", action="store_true")
    args = ap.parse_args()
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_translate:
            res["translate"] = bench_translate(args.records, Path(tmp))
        res["decontaminate"] = bench_decontaminate(args.decontam_records)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
