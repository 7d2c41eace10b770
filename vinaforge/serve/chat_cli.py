"""``vinaforge chat MODEL`` (or ``--url``): multi-turn chat in the terminal, streamed with rich.

Commands: ``/reset`` (forget the conversation), ``/system TEXT`` (set the system prompt and
start over), ``/save FILE`` (write the conversation as JSONL in the ``messages`` format every
vinaforge stage reads), ``/exit``. A local model runs in this process through
:class:`~vinaforge.generate.local.LocalBackend`; ``--url`` talks to any OpenAI-compatible server
(``vinaforge serve``, vLLM, llama.cpp) through :class:`~vinaforge.generate.endpoint.EndpointBackend`.

Hand-written: the command loop; streaming and rendering are the backends' and rich's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Terminal chat.", invoke_without_command=True, no_args_is_help=False,
                  pretty_exceptions_enable=False, context_settings={"allow_interspersed_args": True})  # fmt: skip

HELP = "/reset  /system TEXT  /save FILE  /exit"


class ChatSession:
    """The conversation and the commands; ``backend`` is any :class:`vinaforge.generate.Backend`."""

    def __init__(self, backend, params, system: str | None = None) -> None:
        self.backend, self.params = backend, params
        self.system = system
        self.turns: list[dict[str, str]] = []

    def messages(self) -> list[dict[str, str]]:
        return ([{"role": "system", "content": self.system}] if self.system else []) + self.turns

    def command(self, line: str) -> str | None:
        """Run a slash command; returns a message to show, or ``"exit"``."""
        name, _, arg = line.strip().partition(" ")
        if name in ("/exit", "/quit"):
            return "exit"
        if name == "/reset":
            self.turns = []
            return "(cuộc trò chuyện mới)"
        if name == "/system":
            self.system = arg.strip() or None
            self.turns = []
            return f"(system: {self.system or '—'})"
        if name == "/save":
            if not arg.strip():
                return "usage: /save FILE"
            path = Path(arg.strip()).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"messages": self.messages()}, ensure_ascii=False) + "\n")
            return f"(đã lưu {len(self.turns)} lượt vào {path})"
        return f"unknown command {name}; commands: {HELP}"

    def ask(self, text: str, write) -> str:
        """Stream the answer to ``text`` through ``write``; return it (kept in the history).

        The history always alternates user/assistant, which many chat templates require: an answer
        stopped with Ctrl-C keeps what was shown as the reply (or, when nothing was shown, the
        question is dropped too), and a failed call drops the question.
        """
        from contextlib import closing

        self.turns.append({"role": "user", "content": text})
        answer, error = "", None
        try:
            with closing(self.backend.stream(self.messages(), self.params)) as events:  # closing stops generation
                for ev in events:
                    if ev.delta:
                        answer += ev.delta
                        write(ev.delta)
                    if ev.completion is not None and not ev.completion.ok:
                        error = ev.completion.error
        except KeyboardInterrupt:
            self._keep(answer)
            raise
        except BaseException:
            self.turns.pop()
            raise
        if error:
            self.turns.pop()
            raise RuntimeError(error)
        self.turns.append({"role": "assistant", "content": answer})
        return answer

    def _keep(self, partial: str) -> None:
        if partial.strip():
            self.turns.append({"role": "assistant", "content": partial})
        else:
            self.turns.pop()


def quiet_libraries() -> None:
    """No transformers/hub progress bars or warnings inside the conversation (they go to the log level ERROR)."""
    import logging

    try:
        from huggingface_hub.utils import disable_progress_bars
        from transformers.utils import logging as hf_logging

        disable_progress_bars()
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # the --url client needs neither
        pass
    logging.getLogger("vinaforge").setLevel(logging.WARNING)


def restore_ctrl_c() -> None:
    """Make Ctrl-C raise ``KeyboardInterrupt`` even when the parent ignored SIGINT.

    A process started in the background by a non-interactive shell (``cmd &`` in a script, as CI
    runners do) inherits SIGINT ignored, and Python then leaves it ignored: Ctrl-C in the chat
    would do nothing, neither stopping a reply nor clearing the prompt.
    """
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)


def enable_line_editing() -> None:
    """Arrow keys, history and Ctrl-A/E at the prompt: GNU readline hooks ``input()`` when imported."""
    try:
        import readline  # noqa: F401
    except ImportError:  # Windows without pyreadline: plain input
        pass


@app.callback(invoke_without_command=True)
def chat(
    model: Annotated[str, typer.Argument(help="local HF model folder; with --url, the served model name")] = "",
    url: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="env var holding the server's API key")] = None,
    system: Annotated[str | None, typer.Option(help="system prompt")] = None,
    temperature: Annotated[float, typer.Option()] = 0.7,
    max_tokens: Annotated[int, typer.Option()] = 512,
) -> None:
    """Chat with MODEL (or the server at --url) in the terminal."""
    from rich.console import Console

    from vinaforge.generate.base import SamplingParams
    from vinaforge.logs import fail

    out = Console(highlight=False)
    quiet_libraries()
    restore_ctrl_c()
    enable_line_editing()
    params = SamplingParams(max_new_tokens=max_tokens, temperature=temperature, seed=None)
    try:
        if url:
            from vinaforge.generate.endpoint import EndpointBackend

            if not model:
                import openai

                from vinaforge.generate.endpoint import resolve_api_key

                models = openai.OpenAI(base_url=url, api_key=resolve_api_key(api_key_env), max_retries=0).models.list()
                model = models.data[0].id
            backend = EndpointBackend(url, model, api_key_env=api_key_env, max_retries=1)
        elif model:
            from vinaforge.generate.local import LocalBackend

            with out.status(f"loading {model}"):
                backend = LocalBackend(model)
        else:
            fail("give a MODEL folder or --url URL")
            return
    except Exception as err:  # unreadable folder, refused key, server down: one line
        fail(f"cannot chat with {url or model}: {err}")
        return
    session = ChatSession(backend, params, system)
    out.print(f"[bold green]vinaforge chat[/] — {model}  ({HELP})")
    while True:
        try:
            line = out.input("[bold cyan]Bạn:[/] ")
        except EOFError:
            out.print()
            break
        except KeyboardInterrupt:  # at an idle prompt: clear the line, as shells do; /exit or Ctrl-D quits
            out.print("\n(/exit hoặc Ctrl-D để thoát)", style="dim")
            continue
        if not line.strip():
            continue
        if line.startswith("/"):
            reply = session.command(line)
            if reply == "exit":
                break
            out.print(reply, style="dim")
            continue
        out.print("[bold magenta]Trợ lý:[/] ", end="")
        try:
            session.ask(line, lambda d: out.print(d, end="", markup=False, highlight=False, soft_wrap=True))
        except KeyboardInterrupt:
            out.print("\n(đã dừng)", style="dim")
            continue
        except Exception as err:  # a failed call is shown, the chat goes on
            out.print(f"\n[red]lỗi:[/] {err}")
            continue
        out.print()
    backend.close()
