"""Retrieval: index-build speed at 100k passages, and recall@k of syllable vs word tokens (and hybrid).

- **Speed**: news articles from ``../shared/data/vi_text/news_baomoi_magizbox.jsonl.gz`` are chunked
  until ``--passages`` passages exist; the chunking, the BM25 build and the save are timed
  separately (syllable tokens, one process).
- **Recall@k**: Vietnamese Wikipedia articles; for ``--queries`` of them one sentence is removed
  before indexing and used as the query (see :mod:`vinaforge.rag.evaluate`); each tokenisation in
  ``--tokens`` is measured on the same documents and queries, plus hybrid BM25 + dense (RRF)
  when ``--embedding-model`` is given.

    .venv/bin/python bench/rag.py --passages 100000 --docs 2000 --queries 200 --tokens syllables,words
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VINAFORGE_SHARED_DATA", REPO.parent / "shared" / "data"))


def index_speed(n_passages: int) -> dict:
    from vinaforge.rag.chunk import Passage, chunk_document, load_documents
    from vinaforge.rag.index import RagIndex

    t0 = time.perf_counter()
    passages: list[Passage] = []
    docs = 0
    for doc, title, text in load_documents(SHARED / "vi_text" / "news_baomoi_magizbox.jsonl.gz"):
        docs += 1
        for chunk in chunk_document(text):
            passages.append(Passage(len(passages), doc, chunk, title))
        if len(passages) >= n_passages:
            break
    passages = passages[:n_passages]
    chunk_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    index = RagIndex.build(passages)
    build_s = time.perf_counter() - t1
    with tempfile.TemporaryDirectory() as tmp:
        t2 = time.perf_counter()
        index.save(Path(tmp) / "idx")
        save_s = time.perf_counter() - t2
        t3 = time.perf_counter()
        loaded = RagIndex.load(Path(tmp) / "idx")
        load_s = time.perf_counter() - t3
    t4 = time.perf_counter()
    for q in ("giá xăng dầu tăng", "đội tuyển bóng đá Việt Nam", "thời tiết miền Bắc rét đậm", "thị trường chứng khoán"):
        loaded.search(q, 10)
    query_ms = (time.perf_counter() - t4) * 1000 / 4
    return {"passages": len(passages), "documents": docs, "chunk_s": round(chunk_s, 1), "bm25_build_s": round(build_s, 1),
            "save_s": round(save_s, 1), "load_s": round(load_s, 1), "query_ms": round(query_ms, 2)}  # fmt: skip


def recall(n_docs: int, queries: int, tokens: list[str], embedding_model: str | None, ks=(1, 5, 10)) -> list[dict]:
    from vinaforge.rag.chunk import load_documents
    from vinaforge.rag.evaluate import evaluate

    docs = list(itertools.islice(load_documents(SHARED / "vi_text" / "viwiki_undertheseanlp.jsonl.gz"), n_docs))
    rows = []
    for tok in tokens:
        rows.append(evaluate(docs, queries, ks, tok).to_dict())  # type: ignore[arg-type]
        print(json.dumps(rows[-1]), flush=True)
    if embedding_model:
        for mode in ("dense", "hybrid"):
            rows.append(evaluate(docs, queries, ks, "syllables", embedding_model, mode=mode).to_dict())
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passages", type=int, default=100_000)
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--tokens", default="syllables,words")
    ap.add_argument("--embedding-model")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "rag.json")
    args = ap.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} is absent: this benchmark needs ../shared/data/vi_text")
    from vinaforge.logs import setup_console

    setup_console()
    record = {"machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}}
    if args.passages:
        record["index_speed"] = index_speed(args.passages)
        print(json.dumps(record["index_speed"]), flush=True)
    if args.docs:
        record["recall"] = recall(args.docs, args.queries, args.tokens.split(","), args.embedding_model)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
