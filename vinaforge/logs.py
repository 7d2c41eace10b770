"""Logging: rich on the terminal, plain text in each stage's ``log.txt``.

Everything logs through the ``vinaforge`` logger tree, so one handler per stage captures it.
Tracebacks go to the stage log only (the terminal gets the one-line error), and every line,
on the terminal or in a file, has credentials in URLs masked (:mod:`vinaforge.redact`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vinaforge.redact import redact_text

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

LOGGER_NAME = "vinaforge"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """A formatter whose output has credentials masked; ``tracebacks=False`` leaves them out."""

    def __init__(self, fmt: str | None = None, tracebacks: bool = True):
        super().__init__(fmt)
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        if self.tracebacks or not (record.exc_info or record.exc_text):
            return redact_text(super().format(record))
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return redact_text(super().format(record))
        finally:
            record.exc_info, record.exc_text = saved


@functools.cache
def console() -> Console:
    """The one rich console (stderr) that logs, progress bars and errors share."""
    from rich.console import Console

    return Console(stderr=True)


def progress_bar(*columns: Any, disable: bool = False, transient: bool = True) -> Progress:
    """A rich progress display on :func:`console`, so log lines print above the bar, never through it."""
    from rich.progress import Progress

    return Progress(*columns, console=console(), disable=disable, transient=transient)


def setup_console(level: int = logging.INFO) -> logging.Logger:
    """Route ``vinaforge`` logs to stderr through rich (idempotent).

    Hugging Face's own tqdm bars ("Loading weights", "Writing model shards") would write through
    the rich display from another stream; they are switched off (read when transformers loads).
    """
    import os

    from rich.logging import RichHandler

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not any(getattr(h, "_vinaforge_console", False) for h in logger.handlers):
        handler = RichHandler(console=console(), show_path=False, rich_tracebacks=False)
        # one line per event on the terminal; a traceback is kept in the stage log (or --verbose)
        handler.setFormatter(RedactingFormatter("%(message)s", tracebacks=level <= logging.DEBUG))
        handler._vinaforge_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        warnings_logger = logging.getLogger("py.warnings")  # warnings can quote a URL with its key
        warnings_logger.addHandler(handler)
        warnings_logger.propagate = False
    logger.propagate = False
    logging.captureWarnings(True)
    return logger


@contextlib.contextmanager
def log_to_file(path: Path, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Also write ``vinaforge`` logs (and Python warnings) to ``path`` while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(RedactingFormatter(_FORMAT))
    handler.setLevel(level)
    targets = [logging.getLogger(LOGGER_NAME), logging.getLogger("py.warnings")]
    old_levels = [t.level for t in targets]
    for t in targets:
        t.addHandler(handler)
        if t.level == logging.NOTSET or t.level > level:
            t.setLevel(level)
    try:
        yield logging.getLogger(LOGGER_NAME)
    finally:
        for t, old in zip(targets, old_levels, strict=True):
            t.removeHandler(handler)
            t.setLevel(old)
        handler.close()


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error for a CLI user (no traceback) and exit."""
    from rich.markup import escape

    console().print(
        f"[bold red]error:[/] {escape(redact_text(message))}", highlight=False, markup=True, soft_wrap=True
    )
    sys.exit(code)
