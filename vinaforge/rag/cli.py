"""``vinaforge rag index | ask | eval``: build a retrieval index, answer from it, measure recall@k.

Every wrong input is a one-line ``error:`` (exit 2), never a traceback: counts below 1 are refused
by the options themselves, outputs are checked before any work (:mod:`vinaforge.checks`), and a
model that cannot be loaded or a generation that fails is named as such (exit 1 for the latter).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Retrieval with citations.", no_args_is_help=True, pretty_exceptions_enable=False)


def _docs(paths: list[Path], limit: int | None = None):
    import itertools

    from vinaforge.rag.chunk import load_documents

    docs = itertools.chain.from_iterable(load_documents(p) for p in paths)
    return itertools.islice(docs, limit) if limit else docs


def _guard(fn):
    from vinaforge.logs import fail
    from vinaforge.model.load import ModelLoadError
    from vinaforge.rag.chunk import DocumentError
    from vinaforge.rag.embed import EmbeddingModelError
    from vinaforge.rag.index import RagIndexError

    try:
        return fn()
    except (DocumentError, EmbeddingModelError, RagIndexError, ModelLoadError, OSError, ValueError) as err:
        fail(str(err))


def _read_template(path: Path) -> str:
    from vinaforge.rag.index import RagIndexError

    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not valid UTF-8"
        raise RagIndexError(f"--template {path}: cannot be read ({reason or err})") from err


def _parse_ks(text: str) -> tuple[int, ...]:
    """``"1,5,10"`` as sorted distinct k values, each at least 1."""
    try:
        ks = {int(x) for x in text.split(",") if x.strip()}
    except ValueError:
        raise ValueError(f"-k must be comma-separated whole numbers, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise ValueError(f"-k values must be at least 1, got {text!r}")
    return tuple(sorted(ks))


@app.command("index")
def index_cmd(
    docs: Annotated[list[Path], typer.Argument(help="documents: .txt/.md files, .jsonl(.gz) with `text`, or folders")],
    out: Annotated[Path, typer.Option("-o", "--out", help="index folder to write")],
    tokens: Annotated[str, typer.Option(help="syllables | words (pyvi)")] = "syllables",
    embedding_model: Annotated[Path | None, typer.Option(help="local embedding model folder for dense retrieval")] = None,
    max_syllables: Annotated[int, typer.Option(min=1, help="passage size")] = 120,
    limit: Annotated[int | None, typer.Option(min=1, help="index only the first N documents")] = None,
) -> None:
    """Chunk DOCS into passages and index them (BM25, plus dense vectors with --embedding-model)."""
    import time

    from vinaforge.logs import console, setup_console
    from vinaforge.rag.chunk import passages_of
    from vinaforge.rag.index import RagIndex, check_index_output, check_tokens

    setup_console()

    def run():
        check_tokens(tokens)  # before chunking, not after
        check_index_output(out)
        t0 = time.perf_counter()
        with console().status("chunking documents"):
            passages = passages_of(_docs(docs, limit), max_syllables)
        idx = RagIndex.build(passages, tokens, str(embedding_model) if embedding_model else None)  # type: ignore[arg-type]
        idx.save(out)
        console().print(f"[green]indexed[/] {len(passages)} passages from {len({p.doc for p in passages})} documents "
                        f"in {time.perf_counter() - t0:.1f} s → {out}", highlight=False)  # fmt: skip

    _guard(run)


def _fail_generation(error: str | None, where: str | None) -> None:
    """Exit 1 with the backend's error: the passages were printed, but there is no answer."""
    if error:
        from vinaforge.logs import fail

        fail(f"generation failed ({where}): {error}", code=1)


@app.command("ask")
def ask_cmd(
    index: Annotated[Path, typer.Argument(help="index folder")],
    question: Annotated[str, typer.Argument(help="câu hỏi")],
    model: Annotated[str | None, typer.Option(help="local model folder (or the served name with --url)")] = None,
    url: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="env var with the server's API key")] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="passages to retrieve")] = 5,
    max_tokens: Annotated[int, typer.Option(min=1)] = 256,
    template: Annotated[Path | None, typer.Option(help="prompt template file ({question}, {passages}, {refusal})")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Retrieve passages for QUESTION and, with --model or --url, answer citing "[đoạn k]"."""
    from rich.console import Console
    from rich.table import Table

    from vinaforge.generate.base import SamplingParams
    from vinaforge.rag.answer import ask
    from vinaforge.rag.index import RagIndex
    from vinaforge.rag.prompt import DEFAULT_TEMPLATE

    def run():
        idx = RagIndex.load(index)
        idx.check_query(question, k)
        tpl = _read_template(template) if template else DEFAULT_TEMPLATE
        backend = None
        if url:
            from vinaforge.generate.endpoint import EndpointBackend

            backend = EndpointBackend(url, model or "default", api_key_env=api_key_env, max_retries=1)
        elif model:
            from vinaforge.generate.local import LocalBackend

            backend = LocalBackend(model)
        return ask(idx, question, backend, k, SamplingParams(max_new_tokens=max_tokens), tpl)

    result = _guard(run)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        _fail_generation(result.error, url or model)
        return
    out = Console(highlight=False)
    table = Table(title=f"passages for: {question}", show_lines=True)
    for col in ("đoạn", "score", "document", "text"):
        table.add_column(col, overflow="fold")
    for i, h in enumerate(result.hits):
        table.add_row(str(i), f"{h.score:.3f}", h.passage.title or h.passage.doc, h.passage.text)
    out.print(table)
    if result.error:
        _fail_generation(result.error, url or model)
    elif result.text is not None:
        out.print("[bold]answer:[/] ", end="")
        out.print(result.text, markup=False)
        flag = result.check.flag if result.check else None
        out.print(f"[yellow]⚠ {flag}[/]" if flag else f"[green]citations ok[/] {result.check.cited}")


@app.command("eval")
def eval_cmd(
    docs: Annotated[list[Path], typer.Argument(help="documents (e.g. ../shared/data/vi_text/viwiki_undertheseanlp.jsonl.gz)")],
    queries: Annotated[int, typer.Option(min=1, help="held-out sentences to use as queries")] = 200,
    k: Annotated[str, typer.Option("-k", help="comma-separated k values")] = "1,5,10",
    tokens: Annotated[str, typer.Option(help="syllables | words")] = "syllables",
    embedding_model: Annotated[Path | None, typer.Option(help="local embedding model: hybrid retrieval")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="use the first N documents")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    out: Annotated[Path | None, typer.Option("-o", help="write the report as JSON")] = None,
) -> None:
    """Recall@k: each query is a sentence removed from its document; a hit finds that document."""
    from vinaforge.logs import setup_console
    from vinaforge.rag.evaluate import evaluate

    setup_console()

    def run():
        ks = _parse_ks(k)
        if out:
            from vinaforge.checks import check_output_file

            check_output_file(out, "report", "-o")
        return evaluate(_docs(docs, limit), queries, ks, tokens, str(embedding_model) if embedding_model else None,
                        seed)  # type: ignore[arg-type]  # fmt: skip

    report = _guard(run)
    typer.echo(report.markdown())
    if out:
        from vinaforge.io import atomic_write_json

        atomic_write_json(out, report.to_dict())
