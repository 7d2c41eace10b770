"""A saved retrieval index: BM25 on Vietnamese syllables (or pyvi words), plus optional dense
vectors from a local embedding model, fused by reciprocal rank fusion.

Syllable tokens (lower-cased ``\\w+``) are the default: Vietnamese writes one syllable per
space-separated token, and they cost nothing to compute; pyvi word segmentation is an option
(``tokens="words"``), about 60× slower to tokenise (its recall is measured in ``docs/serve.md``).

Layout of an index folder: ``passages.jsonl``, ``bm25/`` (bm25s' own files), ``meta.json`` and,
with a dense model, ``embeddings.npy``. Written to a temporary folder and renamed when complete;
an existing folder is replaced only if it is empty or an index itself (never a folder of the
user's files), and a folder that cannot be created is a one-line error naming it. Loading checks
that every file is there and whole (the passage count against ``meta.json`` and BM25), so a
damaged index is an error naming the file, not a traceback or a wrong passage.

Library: ``bm25s`` (sparse BM25 in numpy/scipy) and sentence-transformers; hand-written: the
Vietnamese tokenisation and the fusion (``1 / (60 + rank)``, Cormack et al. 2009).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vinaforge.rag.chunk import Passage
from vinaforge.text.syllables import SYLLABLE_RE

log = logging.getLogger(__name__)
Tokens = Literal["syllables", "words"]
RRF_K = 60
FORMAT_VERSION = 1


class RagIndexError(ValueError):
    """A folder that is not a vinaforge RAG index, or an index that cannot be built."""


def canonical(text: str) -> str:
    """The project's canonical form (NFC, old-style tone marks) of a query or passage.

    The same words typed decomposed (NFD, as macOS and some keyboards produce) or with the other
    tone-mark style must find the same passages, so both sides go through it before matching.
    """
    from vinaforge.text.normalize import normalize_text

    return normalize_text(text or "")


TOKENS = ("syllables", "words")


def check_tokens(tokens: str) -> None:
    if tokens not in TOKENS:
        raise RagIndexError(f"tokens must be syllables or words, got {tokens!r}")


def tokenize(text: str, tokens: Tokens = "syllables") -> list[str]:
    text = canonical(text)
    if tokens == "words":
        from vinaforge.text.wordseg import segment_words

        return [w.lower() for w in segment_words(text) if any(c.isalnum() for c in w)]
    return [s.lower() for s in SYLLABLE_RE.findall(text)]


@dataclass
class Hit:
    passage: Passage
    score: float
    rank: int

    def to_dict(self) -> dict:
        return self.passage.to_dict() | {"score": round(float(self.score), 5), "rank": self.rank}


def _tokenize_all(texts: list[str], tokens: Tokens, label: str) -> list[list[str]]:
    from rich.progress import Progress

    from vinaforge.logs import console

    out: list[list[str]] = []
    with Progress(console=console(), transient=True, disable=len(texts) < 5000) as bar:
        task = bar.add_task(label, total=len(texts))
        for i, t in enumerate(texts):
            out.append(tokenize(t, tokens) or [""])
            if i % 2000 == 0:
                bar.update(task, completed=i)
    return out


class RagIndex:
    """Passages plus the structures to search them."""

    def __init__(self, passages: list[Passage], bm25, tokens: Tokens = "syllables", embedder=None,
                 embeddings=None, embedding_model: str | None = None) -> None:  # fmt: skip
        self.passages = passages
        self.bm25 = bm25
        self.tokens = tokens
        self.embedder = embedder
        self.embeddings = embeddings
        self.embedding_model = embedding_model

    # ------------------------------------------------------------------ build / save / load

    @classmethod
    def build(cls, passages: list[Passage], tokens: Tokens = "syllables", embedding_model: str | None = None,
              embedder=None) -> RagIndex:  # fmt: skip
        import bm25s

        check_tokens(tokens)
        if not passages:
            raise RagIndexError("no passages to index (are the documents empty?)")
        t0 = time.perf_counter()
        corpus = _tokenize_all([p.text for p in passages], tokens, "tokenising passages")
        bm25 = bm25s.BM25()
        bm25.index(corpus, show_progress=False)
        log.info("BM25 index of %d passages (%s) in %.1f s", len(passages), tokens, time.perf_counter() - t0)
        vectors = None
        if embedding_model or embedder:
            from vinaforge.rag.embed import Embedder

            embedder = embedder or Embedder(embedding_model)
            t1 = time.perf_counter()
            vectors = embedder.encode([canonical(p.text) for p in passages])
            log.info("embedded %d passages in %.1f s", len(passages), time.perf_counter() - t1)
            embedding_model = embedder.path
        return cls(passages, bm25, tokens, embedder, vectors, embedding_model)

    def save(self, out: str | Path) -> Path:
        out = Path(out)
        check_index_output(out)
        try:
            return self._save(out)
        except OSError as err:
            raise RagIndexError(f"index folder {out}: cannot be written ({err.strerror or err})") from err

    def _save(self, out: Path) -> Path:
        import numpy as np

        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with open(tmp / "passages.jsonl", "w", encoding="utf-8") as fh:
            for p in self.passages:
                fh.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
        self.bm25.save(str(tmp / "bm25"), show_progress=False)
        if self.embeddings is not None:
            np.save(tmp / "embeddings.npy", self.embeddings)
        meta = {"format": FORMAT_VERSION, "passages": len(self.passages), "tokens": self.tokens,
                "embedding_model": self.embedding_model}  # fmt: skip
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        return out

    @classmethod
    def load(cls, path: str | Path, embedding_model: str | None = None, load_embedder: bool = True) -> RagIndex:
        import bm25s
        import numpy as np

        p = Path(path)
        meta_file = p / "meta.json"
        if not meta_file.is_file():
            raise RagIndexError(f"{p}: not a RAG index (no meta.json); build one with `vinaforge rag index`")
        meta = _load_part(meta_file, p, lambda f: json.loads(f.read_text(encoding="utf-8")))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
            raise RagIndexError(f"{meta_file}: not a format-{FORMAT_VERSION} RAG index; rebuild it with "
                                "`vinaforge rag index`")  # fmt: skip
        passages = _load_part(p / "passages.jsonl", p, _read_passages)
        bm25 = _load_part(p / "bm25", p, lambda f: bm25s.BM25.load(str(f), show_progress=False))
        counts = {"meta.json": meta.get("passages"), "bm25": _bm25_docs(bm25)}
        for name, n in counts.items():
            if n is not None and n != len(passages):
                raise RagIndexError(f"{p}: damaged RAG index ({len(passages)} passages in passages.jsonl, "
                                    f"{n} in {name}); rebuild it with `vinaforge rag index`")  # fmt: skip
        vectors, embedder = None, None
        model = embedding_model or meta.get("embedding_model")
        if (p / "embeddings.npy").is_file():
            vectors = _load_part(p / "embeddings.npy", p, np.load)
            if len(vectors) != len(passages):
                raise RagIndexError(f"{p}: damaged RAG index ({len(vectors)} vectors for {len(passages)} "
                                    "passages); rebuild it with `vinaforge rag index`")  # fmt: skip
            if load_embedder and model:
                from vinaforge.rag.embed import Embedder

                embedder = Embedder(model)
        return cls(passages, bm25, meta.get("tokens", "syllables"), embedder, vectors, model)

    # ------------------------------------------------------------------ search

    def check_query(self, query: str, k: int) -> None:
        """Refuse an empty query or a ``k`` below 1 (they used to return nothing, silently)."""
        if not canonical(query).strip():
            raise RagIndexError("the question is empty")
        if k < 1:
            raise RagIndexError(f"k must be at least 1, got {k}")

    def _bm25_ranking(self, query: str, depth: int) -> list[tuple[int, float]]:
        q = tokenize(query, self.tokens)
        if not q:
            return []
        depth = min(depth, len(self.passages))
        docs, scores = self.bm25.retrieve([q], k=depth, show_progress=False, n_threads=1)
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]

    def _dense_ranking(self, query: str, depth: int) -> list[tuple[int, float]]:
        import numpy as np

        if self.embedder is None or self.embeddings is None:
            return []
        q = self.embedder.encode([canonical(query)])[0]
        sims = self.embeddings @ q
        depth = min(depth, len(sims))
        top = np.argpartition(-sims, depth - 1)[:depth]
        top = top[np.argsort(-sims[top])]
        return [(int(i), float(sims[i])) for i in top]

    def search(self, query: str, k: int = 5, mode: Literal["auto", "bm25", "dense", "hybrid"] = "auto") -> list[Hit]:
        """Top-``k`` passages; ``auto`` is hybrid (RRF) when the index has vectors, else BM25."""
        if mode == "auto":
            mode = "hybrid" if self.embedder is not None and self.embeddings is not None else "bm25"
        depth = max(k * 4, 20)
        if mode == "bm25":
            ranked = self._bm25_ranking(query, k)
        elif mode == "dense":
            ranked = self._dense_ranking(query, k)
        else:
            fused: dict[int, float] = {}
            for ranking in (self._bm25_ranking(query, depth), self._dense_ranking(query, depth)):
                for rank, (i, _) in enumerate(ranking):
                    fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank + 1)
            ranked = sorted(fused.items(), key=lambda kv: -kv[1])[:k]
        return [Hit(self.passages[i], s, r) for r, (i, s) in enumerate(ranked[:k])]


def check_index_output(out: Path) -> None:
    """Refuse an output that is a file, cannot be created, or is a folder of other files."""
    from vinaforge.checks import check_output_dir

    check_output_dir(out, "index folder", "--out")
    if out.is_dir() and any(out.iterdir()) and not (out / "meta.json").is_file():
        raise RagIndexError(f"index folder {out}: exists and is not a RAG index; it would be replaced, "
                            "so pick a new or empty folder")  # fmt: skip


def _read_passages(f: Path) -> list[Passage]:
    with open(f, encoding="utf-8") as fh:
        return [Passage(**json.loads(line)) for line in fh if line.strip()]


def _bm25_docs(bm25) -> int | None:
    scores = getattr(bm25, "scores", None)
    n = scores.get("num_docs") if isinstance(scores, dict) else None
    return int(n) if n is not None else None


def _load_part(f: Path, index: Path, read):
    """``read(f)``; a missing or damaged file of the index is a :class:`RagIndexError` naming it."""
    if not f.exists():
        raise RagIndexError(f"{index}: damaged RAG index ({f.name} is missing); rebuild it with "
                            "`vinaforge rag index`")  # fmt: skip
    try:
        return read(f)
    except (OSError, ValueError, TypeError, KeyError, EOFError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise RagIndexError(f"{index}: damaged RAG index ({f.name}: {first}); rebuild it with "
                            "`vinaforge rag index`") from err  # fmt: skip
