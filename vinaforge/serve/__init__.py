"""Serving: an OpenAI-compatible API (FastAPI + uvicorn), a web chat page, a terminal chat.

- :mod:`~vinaforge.serve.config`: :class:`ServeConfig`, one config for the CLI and the recipe;
- :mod:`~vinaforge.serve.engines`: the model behind the API (local HF with dynamic batching,
  GGUF through llama-cpp-python, or any OpenAI-compatible upstream such as vLLM);
- :mod:`~vinaforge.serve.api`: the FastAPI app (``/v1/...``, ``/health``, the page at ``/``);
- :mod:`~vinaforge.serve.server`: running it (foreground, or in a thread for tests and the demo);
- :mod:`~vinaforge.serve.chat_cli`: ``vinaforge chat``.
"""

from vinaforge.serve.config import ServeConfig

__all__ = ["ServeConfig"]
