"""Recall@k of retrieval on held-out sentences: does a sentence find the document it came from?

For a sample of documents, one sentence (at least ``min_syllables`` long, not the first) is taken
*out* of the document before the document is indexed and becomes the query, so retrieval cannot
match the sentence itself; a hit is any top-``k`` passage of the same document. This measures
what a RAG answer needs: landing on the right source among thousands.

Documents that yield no query at all are an error, not a report of recall 0.

Hand-written: the query-set construction; the retrieval is :class:`~vinaforge.rag.index.RagIndex`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from vinaforge.rag.chunk import passages_of
from vinaforge.rag.index import RagIndex, Tokens
from vinaforge.text.sentences import split_sentences
from vinaforge.text.syllables import count_syllables


@dataclass
class RecallReport:
    documents: int
    passages: int
    queries: int
    tokens: str
    mode: str
    recall: dict[int, float] = field(default_factory=dict)
    index_seconds: float = 0.0
    query_ms: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def markdown(self) -> str:
        ks = " | ".join(f"recall@{k}" for k in self.recall)
        vals = " | ".join(f"{v:.3f}" for v in self.recall.values())
        return (f"| documents | passages | queries | tokens | mode | {ks} | index s | ms/query |\n"
                f"|---|---|---|---|---|{'---|' * len(self.recall)}---|---|\n"
                f"| {self.documents} | {self.passages} | {self.queries} | {self.tokens} | {self.mode} | {vals} | "
                f"{self.index_seconds:.1f} | {self.query_ms:.2f} |\n")  # fmt: skip


def heldout_queries(docs: Iterable[tuple[str, str, str]], n_queries: int, seed: int = 0, min_syllables: int = 10
                    ) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:  # fmt: skip
    """Documents with one sentence removed from ``n_queries`` of them, and ``(sentence, doc)`` queries."""
    docs = list(docs)
    rng = random.Random(seed)
    order = list(range(len(docs)))
    rng.shuffle(order)
    queries: list[tuple[str, str]] = []
    for i in order:
        if len(queries) >= n_queries:
            break
        doc, title, text = docs[i]
        sentences = [s for s in split_sentences(text)[1:] if count_syllables(s) >= min_syllables]
        if len(sentences) < 2:
            continue
        sent = rng.choice(sentences)
        docs[i] = (doc, title, text.replace(sent, " ", 1))
        queries.append((sent, doc))
    return docs, queries


def recall_at_k(index: RagIndex, queries: Sequence[tuple[str, str]], ks: Sequence[int] = (1, 5, 10),
                mode: str = "auto") -> tuple[dict[int, float], float]:  # fmt: skip
    """Share of queries whose document is among the top-k passages, per k; and ms per query."""
    hits = dict.fromkeys(ks, 0)
    t0 = time.perf_counter()
    for query, doc in queries:
        found = [h.passage.doc for h in index.search(query, max(ks), mode=mode)]  # type: ignore[arg-type]
        for k in ks:
            hits[k] += doc in found[:k]
    ms = (time.perf_counter() - t0) * 1000 / max(1, len(queries))
    return {k: hits[k] / max(1, len(queries)) for k in ks}, ms


def evaluate(docs: Iterable[tuple[str, str, str]], n_queries: int = 200, ks: Sequence[int] = (1, 5, 10),
             tokens: Tokens = "syllables", embedding_model: str | None = None, seed: int = 0,
             max_syllables: int = 120, mode: str = "auto") -> RecallReport:  # fmt: skip
    """Build an index of the documents minus the query sentences, and measure recall@k."""
    docs, queries = heldout_queries(docs, n_queries, seed)
    if not queries:
        from vinaforge.rag.index import RagIndexError

        raise RagIndexError(f"no query could be made from {len(docs)} document(s): each needs two sentences "
                            "of 10+ syllables after its first")  # fmt: skip
    t0 = time.perf_counter()
    passages = passages_of(docs, max_syllables)
    index = RagIndex.build(passages, tokens, embedding_model)
    seconds = time.perf_counter() - t0
    recall, ms = recall_at_k(index, queries, ks, mode)
    used = mode if mode != "auto" else ("hybrid" if index.embeddings is not None else "bm25")
    return RecallReport(len(docs), len(passages), len(queries), tokens, used, recall, seconds, ms)
