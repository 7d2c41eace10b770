"""``vinaforge serve MODEL``: the OpenAI-compatible API and the web chat page.

Thin: the settings are :class:`~vinaforge.serve.config.ServeConfig`, the work is in
:mod:`vinaforge.serve.server`. Imports nothing heavy until the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# options may follow MODEL (click groups stop option parsing at the first argument otherwise)
INTERSPERSED = {"allow_interspersed_args": True}
app = typer.Typer(help="OpenAI-compatible API and web chat.", invoke_without_command=True, no_args_is_help=False,
                  pretty_exceptions_enable=False, context_settings=INTERSPERSED)  # fmt: skip


@app.callback(invoke_without_command=True)
def serve(
    model: Annotated[str, typer.Argument(help="HF model folder, .gguf file, or (with --backend openai) the upstream's model name.")] = "",
    backend: Annotated[str, typer.Option(help="local | gguf | openai")] = "local",
    upstream: Annotated[str | None, typer.Option(help="openai backend: base URL of the upstream, e.g. http://127.0.0.1:8001/v1")] = None,
    upstream_key_env: Annotated[str | None, typer.Option(help="env var holding the upstream's API key")] = None,
    host: Annotated[str, typer.Option(help="interface to bind (0.0.0.0 to expose it)")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    served_name: Annotated[str | None, typer.Option(help="model id the API reports")] = None,
    api_key: Annotated[str | None, typer.Option(help="require this bearer key (or set $VINAFORGE_API_KEY)", envvar=None)] = None,
    api_key_env: Annotated[str, typer.Option(help="env var with the required key")] = "VINAFORGE_API_KEY",
    cors: Annotated[list[str] | None, typer.Option("--cors", help="allowed browser origin (repeatable)")] = None,
    rag_index: Annotated[Path | None, typer.Option(help="index from `vinaforge rag index`")] = None,
    embedding_model: Annotated[Path | None, typer.Option(help="local sentence-embedding model folder (/v1/embeddings)")] = None,
    max_batch_size: Annotated[int, typer.Option(help="rows decoded together (local); 1 = one request at a time")] = 16,
    batching: Annotated[str, typer.Option(help="continuous | wave (local)")] = "continuous",
    max_concurrency: Annotated[int, typer.Option(help="requests in flight before 429")] = 64,
    max_tokens_limit: Annotated[int, typer.Option(help="largest max_tokens a request may ask for")] = 2048,
    max_prompt_tokens: Annotated[int | None, typer.Option(help="longest prompt accepted (default: the context)")] = None,
    request_timeout: Annotated[float, typer.Option(help="seconds a request may take")] = 300.0,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 …")] = None,
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16, float16")] = "auto",
    chat_template: Annotated[str | None, typer.Option(help="override the model's chat template")] = None,
    torch_threads: Annotated[int | None, typer.Option(help="CPU threads of the local model (default: half the cores)")] = None,
) -> None:
    """Serve MODEL: the page at http://HOST:PORT/ and the OpenAI API under /v1."""
    from pydantic import ValidationError

    from vinaforge.logs import fail, setup_console
    from vinaforge.serve.config import ServeConfig
    from vinaforge.serve.server import serve_forever

    setup_console()
    try:
        cfg = ServeConfig(
            model=model, backend=backend, upstream=upstream, upstream_key_env=upstream_key_env, host=host, port=port,
            served_name=served_name, api_key=api_key, api_key_env=api_key_env, cors_origins=cors or [],
            rag_index=str(rag_index) if rag_index else None,
            embedding_model=str(embedding_model) if embedding_model else None, max_batch_size=max_batch_size,
            batching=batching, max_concurrency=max_concurrency, max_tokens_limit=max_tokens_limit, max_prompt_tokens=max_prompt_tokens,
            request_timeout=request_timeout, device=device, dtype=dtype, chat_template=chat_template,
            torch_threads=torch_threads,
        )  # fmt: skip
    except ValidationError as err:
        fail("; ".join(f"{'.'.join(map(str, e['loc'])) or 'serve'}: {e['msg']}" for e in err.errors()))
        return
    try:
        serve_forever(cfg)
    except KeyboardInterrupt:
        return
    except Exception as err:  # a missing folder, a bad index, a busy port: one line, no traceback
        fail(f"cannot serve {model or upstream}: {err}")
