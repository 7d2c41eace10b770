"""Fixtures for the serving tests: a real tiny model on disk, a RAG index of the example corpus,
and real uvicorn servers on 127.0.0.1 (always stopped)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MISSING = [m for m in ("fastapi", "uvicorn", "sse_starlette", "bm25s") if importlib.util.find_spec(m) is None]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def needs_serve_extra():  # first of the session fixtures: nothing is built when the extra is missing
    if MISSING:
        pytest.skip(f"the serve extra is not installed (missing {', '.join(MISSING)})")


@pytest.fixture(autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer Mistral on Mistral-v0.1's tokenizer, saved as a HF folder."""
    from vinaforge.model.tiny import build_tiny_model
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    out = tmp_path_factory.mktemp("tiny_chat")
    tok = resolve_tokenizer("mistral-v0.1")
    model = build_tiny_model("mistral", vocab_size=len(tok), layers=2, hidden=64, heads=4,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, seed=0)  # fmt: skip
    model.config.max_position_embeddings = 2048
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def rag_index_dir(tmp_path_factory) -> Path:
    from vinaforge.rag.chunk import load_documents, passages_of
    from vinaforge.rag.index import RagIndex

    out = tmp_path_factory.mktemp("rag") / "index"
    passages = passages_of(load_documents(REPO / "examples" / "corpus" / "vi_docs.jsonl"))
    return RagIndex.build(passages).save(out)


@pytest.fixture(scope="session")
def local_engine(tiny_model_dir):
    from vinaforge.generate.local import LocalBackend
    from vinaforge.serve.engines import LocalEngine

    engine = LocalEngine(LocalBackend(str(tiny_model_dir)), max_batch_size=16, window_ms=5)
    yield engine
    engine.close()


class _KeepOpen:
    """Lets several servers share one engine: closing the app does not close the engine."""

    def __init__(self, engine) -> None:
        self._engine = engine

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def close(self) -> None:
        pass


@pytest.fixture(scope="session")
def make_server(local_engine, tiny_model_dir):
    """Start a real uvicorn server on a free loopback port with the shared tiny-model engine."""
    from vinaforge.serve.api import create_app
    from vinaforge.serve.config import ServeConfig
    from vinaforge.serve.server import ServerThread

    started = []

    def make(rag=None, embedder=None, **overrides):
        cfg = ServeConfig(model=str(tiny_model_dir), served_name="tiny", port=0,
                          api_key_env="VINAFORGE_TEST_NO_KEY", **overrides)  # fmt: skip
        app = create_app(cfg, _KeepOpen(local_engine), rag, embedder)
        server = ServerThread(app, cfg).start()
        started.append(server)
        return server

    yield make
    for s in started:
        s.stop(timeout=10)


@pytest.fixture(scope="session")
def server(make_server, rag_index_dir):
    from vinaforge.rag.index import RagIndex

    return make_server(rag=RagIndex.load(rag_index_dir))


@pytest.fixture
def client(server):
    import openai

    c = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)
    yield c
    c.close()


XSS_REPLY = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> **an toàn** `mã`'


def teach(model_dir: Path, out: Path, pairs: list[tuple[list[dict], str]], steps: int = 50) -> Path:
    """Overfit the tiny model on a few (conversation → reply) pairs, so that its greedy answer to
    exactly those conversations is known: a real model saying a known thing, for the page tests."""
    import torch

    from vinaforge.generate.base import GenRequest
    from vinaforge.generate.local import LocalBackend

    backend = LocalBackend(str(model_dir))
    tok, model = backend.tokenizer, backend.model
    seqs = [backend.encode(GenRequest(messages=m)) + tok(r, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            for m, r in pairs]  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # session fixtures run before the per-test thread setting
    model.train()
    model.get_input_embeddings().weight.requires_grad_(False)  # half the optimizer work; the head learns
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    torch.manual_seed(0)
    for _ in range(steps):
        for s in seqs:
            ids = torch.tensor([s])
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    model.eval()
    torch.set_num_threads(threads)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def taught_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model taught to answer "Xin chào" with a reply full of HTML and JavaScript."""
    return teach(tiny_model_dir, tmp_path_factory.mktemp("taught"), [([{"role": "user", "content": "Xin chào"}], XSS_REPLY)])
