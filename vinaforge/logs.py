"""Logging: rich on the terminal, plain text in each stage's ``log.txt``.

Everything logs through the ``vinaforge`` logger tree, so one handler per stage captures it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

LOGGER_NAME = "vinaforge"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_console(level: int = logging.INFO) -> logging.Logger:
    """Route ``vinaforge`` logs to stderr through rich (idempotent)."""
    from rich.console import Console
    from rich.logging import RichHandler

    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not any(getattr(h, "_vinaforge_console", False) for h in logger.handlers):
        handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
        handler._vinaforge_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False
    logging.captureWarnings(True)
    return logger


@contextlib.contextmanager
def log_to_file(path: Path, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Also write ``vinaforge`` logs (and Python warnings) to ``path`` while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
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
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    sys.exit(code)
