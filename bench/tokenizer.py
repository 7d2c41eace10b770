"""Tokenizer benchmarks: training time, extension time, encoding throughput, fertility.

Everything is measured in one run on the same text, and each figure comes with its baseline:

1. ``train``: time to train a 24k Vietnamese tokenizer on ``--train-mb`` MB of ``vi_text``
   (sentencepiece BPE, our default), against HF ``tokenizers`` byte-level BPE on the same sample.
   The time to read and normalize the sample is measured separately.
2. ``extend``: time to extend Mistral-v0.1 with up to 8,000 tokens from a ``--extend-mb`` MB
   sample (count, plan, write and verify).
3. ``encode``: encoding throughput of the extended tokenizer against the base, on the same
   ``--encode-mb`` MB of Vietnamese text (not the extension sample) and on English, batched on
   all cores (``RAYON_NUM_THREADS=1`` for one), with the fast tokenizer (``tokenizers``) and
   with sentencepiece itself; for Mistral-v0.1 and SmolLM. Base and extended run back to back,
   ``--repeats`` times in alternating order; the ratio is the median of the per-pair ratios.
4. ``fertility``: tokens per syllable on UD Vietnamese-VTB dev for the bases, their
   extensions and reference tokenizers (Llama-3 and Qwen2 from llama.cpp's GGUF vocab files,
   PhoMT's syllable-level SentencePiece).

Prints one JSON object per section and writes them all to ``--out``.

    .venv/bin/python bench/tokenizer.py --data ../shared/data --out bench/out/tokenizer.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def emit(results: dict, name: str, data: dict) -> None:
    results[name] = data
    print(json.dumps({name: data}, ensure_ascii=False), flush=True)


def read_sample(corpus: Path, mb: float, skip_mb: float = 0.0) -> list[str]:
    """NFC texts: from each file, in proportion to its size, the records after the first
    ``skip_mb`` share (what the extension sample read) up to an ``mb`` share."""
    import unicodedata

    from vinaforge.io import iter_texts
    from vinaforge.tokenizer.corpus import corpus_files, text_size

    files = corpus_files([corpus])
    sizes = [text_size(f) for f in files]
    total = sum(sizes)
    out: list[str] = []
    for f, size in zip(files, sizes, strict=True):
        skip, take = skip_mb * 1e6 * size / total, mb * 1e6 * size / total
        seen = taken = 0
        for text in iter_texts(f):
            n = len(text.encode())
            seen += n
            if seen <= skip:
                continue
            out.append(unicodedata.normalize("NFC", text))
            taken += n
            if taken >= take:
                break
    return out


def bench_train(corpus: Path, mb: float, vocab_size: int) -> dict:
    from vinaforge.text.normalize import NormalizeConfig
    from vinaforge.tokenizer.corpus import iter_corpus
    from vinaforge.tokenizer.train import TrainSettings, train_tokenizer

    t0 = time.perf_counter()
    n_bytes = sum(
        len(t.encode())
        for t in iter_corpus(
            [corpus], normalize=NormalizeConfig(), sample_bytes=int(mb * 1e6), progress=False
        )
    )
    read_s = time.perf_counter() - t0
    out = {"sample_mb": round(n_bytes / 1e6, 1), "read_and_normalize_s": round(read_s, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("sentencepiece", "tokenizers"):
            settings = TrainSettings(backend=backend, vocab_size=vocab_size, sample_bytes=int(mb * 1e6))
            t0 = time.perf_counter()
            train_tokenizer([corpus], Path(tmp) / backend, settings, progress=False)
            total = time.perf_counter() - t0
            out[f"{backend}_total_s"] = round(total, 1)
            out[f"{backend}_trainer_s"] = round(total - read_s, 1)
    out["ratio_sentencepiece_over_tokenizers_total"] = round(
        out["sentencepiece_total_s"] / out["tokenizers_total_s"], 2
    )
    return out


def bench_extend(corpus: Path, mb: float, out_dir: Path, smollm: Path | None) -> dict:
    """Extend Mistral-v0.1 (timed end to end); then SmolLM from the same unit counts."""
    from vinaforge.tokenizer.extend import ExtendSettings, count_corpus, extend_tokenizer

    settings = ExtendSettings(max_new_tokens=8000, sample_bytes=int(mb * 1e6))
    t0 = time.perf_counter()
    res = extend_tokenizer(
        "mistral-v0.1", out_dir / "mistral", corpus=[corpus], settings=settings, progress=False
    )
    out = {
        "sample_mb": round(res.record["corpus_sample"]["bytes_read"] / 1e6, 1),
        "new_tokens": res.added,
        "total_s": round(time.perf_counter() - t0, 1),
        **{f"{k}_s": v for k, v in res.record["timing_s"].items()},
    }
    if smollm is not None and smollm.is_dir():
        units, _ = count_corpus([corpus], settings, progress=False)
        t0 = time.perf_counter()
        res = extend_tokenizer(
            str(smollm), out_dir / "smollm", corpus=[corpus], settings=settings, units=units, progress=False
        )
        out["smollm_plan_write_verify_s"] = round(time.perf_counter() - t0, 1)
        out["smollm_new_tokens"] = res.added
    return out


def paired(encoders: dict, texts: list[str], repeats: int) -> dict:
    """Time base and extended back to back, ``repeats`` times, alternating which goes first.

    On a shared machine the load drifts; the median of the per-pair ratios cancels most of it.
    Absolute figures are from each encoder's best run. CPU time is summed over threads.
    """
    n_bytes = sum(len(t.encode()) for t in texts)
    runs: dict = {name: [] for name in encoders}
    for r in range(repeats):
        for name in list(encoders) if r % 2 == 0 else list(encoders)[::-1]:
            wall, cpu = time.perf_counter(), time.process_time()
            n_tokens = encoders[name](texts)
            runs[name].append((time.perf_counter() - wall, time.process_time() - cpu, n_tokens))
    (base_name, base), (ext_name, ext) = runs.items()
    out: dict = {}
    for name, rs in runs.items():
        wall, cpu, n_tokens = min(rs)
        out[name] = {
            "best_wall_s": round(wall, 3),
            "bytes_per_s": round(n_bytes / wall),
            "tokens_per_s": round(n_tokens / wall),
            "tokens": n_tokens,
        }
    out["bytes_per_s_ratio_ext_over_base"] = round(
        statistics.median(b[0] / e[0] for b, e in zip(base, ext, strict=True)), 3
    )
    out["cpu_bytes_per_s_ratio_ext_over_base"] = round(
        statistics.median(b[1] / e[1] for b, e in zip(base, ext, strict=True)), 3
    )
    out["tokens_per_s_ratio_ext_over_base"] = round(
        out[ext_name]["tokens_per_s"] / out[base_name]["tokens_per_s"], 3
    )
    return out


def bench_encode(pairs: dict[str, tuple[str, Path]], vi: list[str], en: list[str], repeats: int) -> dict:
    """Paired base/extended throughput per base: the fast tokenizer, and sentencepiece itself
    for SentencePiece bases."""
    import sentencepiece as spm

    from vinaforge.tokenizer.fertility import backend_of
    from vinaforge.tokenizer.resolve import resolve_base, resolve_tokenizer

    threads = int(os.environ.get("RAYON_NUM_THREADS") or os.cpu_count() or 1)
    out: dict = {"threads": threads, "vi_mb": round(sum(len(t.encode()) for t in vi) / 1e6, 1)}
    out["en_mb"] = round(sum(len(t.encode()) for t in en) / 1e6, 1)
    for label, (base_spec, ext_dir) in pairs.items():
        kinds = {
            "fast": {
                "base": backend_of(resolve_tokenizer(base_spec)),
                "extended": backend_of(resolve_tokenizer(str(ext_dir))),
            }
        }
        base = resolve_base(base_spec)
        if base.family == "sentencepiece":
            kinds["sentencepiece"] = {
                "base": spm.SentencePieceProcessor(model_file=str(base.model_file)),
                "extended": spm.SentencePieceProcessor(model_file=str(ext_dir / "tokenizer.model")),
            }
        for lang, texts in (("vi", vi), ("en", en)):
            for kind, toks in kinds.items():
                encoders = {}
                for name, tok in toks.items():
                    if kind == "fast":
                        encoders[name] = lambda ts, b=tok: sum(
                            len(e.ids) for e in b.encode_batch(ts, add_special_tokens=False)
                        )
                    else:
                        encoders[name] = lambda ts, sp=tok: sum(map(len, sp.encode(ts, num_threads=threads)))
                out[f"{label}_{lang}_{kind}"] = paired(encoders, texts, repeats)
    return out


def bench_fertility(data: Path, tokenizers: dict[str, str], gguf: dict[str, str]) -> dict:
    from transformers import AutoTokenizer

    from vinaforge.tokenizer.fertility import fertility, load_texts
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    vi = load_texts(data / "benchmarks/ud_vietnamese_vtb/vi_vtb-ud-dev.conllu")
    en = load_texts(data / "parallel/evbnews_v1_en_vi.jsonl.gz", field="en", limit=3000)
    out = {}
    for name, spec in tokenizers.items():
        out[name] = fertility(name, resolve_tokenizer(spec), vi, en).to_dict()
    import importlib.util

    if importlib.util.find_spec("gguf") is None:  # transformers reads GGUF vocabularies through it
        print("gguf not installed: skipping the Llama-3/Qwen2 anchors", file=sys.stderr)
        gguf = {}
    for name, file in gguf.items():
        tok = AutoTokenizer.from_pretrained(str(data / "tokenizers/llama_cpp_vocab"), gguf_file=file)
        out[name] = fertility(name, tok, vi, en).to_dict()
    for d in out.values():
        for k in ("vi", "en"):
            d.pop(k, None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--train-mb", type=float, default=100.0)
    ap.add_argument("--extend-mb", type=float, default=100.0)
    ap.add_argument("--encode-mb", type=float, default=3.0)
    ap.add_argument("--vocab-size", type=int, default=24000)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--sections", default="train,extend,encode,fertility")
    ap.add_argument("--out", type=Path, default=Path("bench/out/tokenizer.json"))
    ap.add_argument("--extended", type=Path, help="Reuse this extended Mistral folder (skips 'extend').")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    corpus = args.data / "vi_text"
    threads = os.environ.get("RAYON_NUM_THREADS") or str(os.cpu_count())
    results: dict = {
        "machine": f"{os.cpu_count()} CPU cores (encoding threads: {threads}), shared with other processes"
    }
    smollm = args.data / "tokenizers/smollm_135m"
    with tempfile.TemporaryDirectory() as tmp:
        ext_dir = args.extended or Path(tmp) / "mistral"
        smollm_ext = Path(tmp) / "smollm"
        if args.extended is None and sections & {"extend", "encode", "fertility"}:
            emit(results, "extend", bench_extend(corpus, args.extend_mb, Path(tmp), smollm))
        if "train" in sections:
            emit(results, "train", bench_train(corpus, args.train_mb, args.vocab_size))
        if "encode" in sections:
            from vinaforge.tokenizer.fertility import load_texts

            vi = read_sample(corpus, args.encode_mb, skip_mb=args.extend_mb)
            en = load_texts(args.data / "parallel/evbnews_v1_en_vi.jsonl.gz", field="en")
            pairs = {"mistral": ("mistral-v0.1", ext_dir)}
            if smollm_ext.is_dir():
                pairs["smollm"] = (str(smollm), smollm_ext)
            emit(results, "encode", bench_encode(pairs, vi, en, args.repeats))
        if "fertility" in sections:
            toks = {"mistral-v0.1": "mistral-v0.1", "mistral-v0.1 +vinaforge": str(ext_dir)}
            if smollm_ext.is_dir():
                toks.update({"smollm-135m": str(smollm), "smollm-135m +vinaforge": str(smollm_ext)})
            toks["phomt-vi-spm (syllable-level, 32k)"] = str(
                args.data / "tokenizers/vi_spm_phomt/vi_spm.model"
            )
            gguf = {"llama-3 (128k)": "ggml-vocab-llama-bpe.gguf", "qwen2 (152k)": "ggml-vocab-qwen2.gguf"}
            emit(results, "fertility", bench_fertility(args.data, toks, gguf))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
