"""Running the app: in the foreground (``vinaforge serve``) or in a background thread (tests, the
demo's smoke test) on a free loopback port.

uvicorn handles SIGINT/SIGTERM: it stops accepting connections and waits up to
``shutdown_grace + 5`` s for in-flight requests; sse-starlette gives open streams
``shutdown_grace`` s to finish before closing them, so a restart does not cut answers short.

Hand-written glue over uvicorn.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from vinaforge.serve.config import ServeConfig

log = logging.getLogger(__name__)


def build_app(cfg: ServeConfig, engine=None):
    """Load the engine, the RAG index and the embedding model a config names; return the app."""
    from vinaforge.serve.api import create_app
    from vinaforge.serve.engines import build_engine

    embedder = None
    if cfg.embedding_model:
        from vinaforge.rag.embed import Embedder

        embedder = Embedder(cfg.embedding_model)
    rag = None
    if cfg.rag_index:
        from vinaforge.rag.index import RagIndex

        rag = RagIndex.load(cfg.rag_index, load_embedder=False)
        if rag.embeddings is not None:
            if embedder is None and rag.embedding_model and Path(rag.embedding_model).is_dir():
                from vinaforge.rag.embed import Embedder

                embedder = Embedder(rag.embedding_model)
            rag.embedder = embedder
    engine = engine or build_engine(cfg)
    return create_app(cfg, engine, rag, embedder)


def uvicorn_config(app, cfg: ServeConfig, port: int | None = None):
    import uvicorn

    return uvicorn.Config(app, host=cfg.host, port=cfg.port if port is None else port, log_level="warning",
                          timeout_graceful_shutdown=int(cfg.shutdown_grace) + 5, lifespan="on",
                          limit_concurrency=cfg.max_concurrency * 2 + 16, timeout_keep_alive=10)  # fmt: skip


def serve_forever(cfg: ServeConfig) -> None:
    import uvicorn

    from vinaforge.logs import console
    from vinaforge.serve.engines import set_torch_threads

    if cfg.backend == "local":
        set_torch_threads(cfg)
    app = build_app(cfg)
    console().print(f"[green]serving[/] {cfg.model_id} on http://{cfg.host}:{cfg.port}/  "
                    f"(OpenAI API at http://{cfg.host}:{cfg.port}/v1)", highlight=False)  # fmt: skip
    uvicorn.Server(uvicorn_config(app, cfg)).run()


class ServerThread:
    """A real uvicorn server in a daemon thread; ``port=0`` picks a free port. Always ``stop()`` it."""

    def __init__(self, app, cfg: ServeConfig, port: int = 0) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn_config(app, cfg, port))
        self.thread = threading.Thread(target=self.server.run, name="vinaforge-server", daemon=True)
        self.host = cfg.host
        self.port = port

    def start(self, timeout: float = 30.0) -> ServerThread:
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() - t0 > timeout:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
