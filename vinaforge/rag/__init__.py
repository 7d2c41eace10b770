"""Retrieval-augmented answers that cite their passages (``vinaforge rag``, and the server's RAG mode).

- :mod:`~vinaforge.rag.chunk`: documents → passages on Vietnamese sentence/paragraph bounds;
- :mod:`~vinaforge.rag.index`: BM25 (``bm25s``) on syllables or pyvi words, optional dense
  retrieval with a local embedding model, fused by reciprocal rank fusion; saved and loaded;
- :mod:`~vinaforge.rag.prompt`: the VBD-style prompt ("[đoạn k]", "Thật tiếc, …") and the
  citation check;
- :mod:`~vinaforge.rag.evaluate`: recall@k on held-out sentences.

Importing this package is cheap: bm25s, numpy-heavy and torch code load on use.
"""

from vinaforge.rag.chunk import Passage, chunk_document, load_documents
from vinaforge.rag.prompt import REFUSAL, CitationCheck, build_prompt, check_citations

__all__ = ["REFUSAL", "CitationCheck", "Passage", "build_prompt", "check_citations", "chunk_document", "load_documents"]
