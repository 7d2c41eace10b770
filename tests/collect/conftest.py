"""Fixtures for the collection app: real SQLite files, a throwaway PostgreSQL server, live servers.

PostgreSQL and Chromium tests skip cleanly when their binaries are absent (``.ci/run`` installs
them). The PostgreSQL server is started as the ``postgres`` user when the tests run as root
(``initdb`` refuses root), exactly as ``../shared/notes/components.md`` describes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("vinaforge_collect", reason="apps/collect is not installed (make setup installs it)")

from vinaforge_collect.db import Database  # noqa: E402

from .helpers import FAST_HASH, free_port  # noqa: E402

PG_BIN = Path(os.environ.get("VINAFORGE_PG_BIN", "/usr/lib/postgresql/15/bin"))
CHROMIUM = Path(os.environ.get("VINAFORGE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'collect.db'}"


@pytest.fixture
def db(sqlite_url: str) -> Database:
    database = Database(sqlite_url)
    database.migrate()
    yield database
    database.dispose()


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory) -> str:
    """A throwaway PostgreSQL server for the whole session; skipped when PostgreSQL is absent."""
    initdb, pg_ctl = PG_BIN / "initdb", PG_BIN / "pg_ctl"
    if not initdb.exists() or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN} (apt-get install postgresql)")
    pytest.importorskip("psycopg")
    root = Path(f"/tmp/vf-collect-pg-{os.getpid()}")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(mode=0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    for cmd in (
        [str(initdb), "-D", str(data), "-A", "trust", "-U", "vf", "--no-sync"],
        [str(pg_ctl), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"],
    ):
        done = subprocess.run(_as_postgres(cmd), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            pytest.fail(f"{cmd[0]} failed ({done.returncode}): {(done.stderr or done.stdout)[-800:]}")
    try:
        yield f"postgresql+psycopg://vf@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([str(pg_ctl), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def fresh_postgres_db(base_url: str, name: str) -> str:
    """A new empty database on the session's server (each test gets its own)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return base_url.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def live_server(url: str, **overrides):
    """``vinaforge collect serve`` in a subprocess on a free port; yields its base URL; always stopped."""
    port = free_port()
    env = {**os.environ, "VINAFORGE_COLLECT_SECRET_KEY": "test-secret-key"}
    for key, value in {**FAST_HASH, **overrides}.items():
        env[f"VINAFORGE_COLLECT_{key.upper()}"] = str(value)
    log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty server can never block on it
    proc = subprocess.Popen(
        [sys.executable, "-m", "vinaforge", "collect", "serve", "--db", url, "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError("server exited: " + log.read().decode(errors="replace")[-2000:])
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start in 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip(
        "playwright.sync_api", reason="playwright (the collect app's test extra) is not installed"
    )
    return str(CHROMIUM)
