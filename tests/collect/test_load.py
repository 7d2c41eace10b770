"""50 simulated contributors writing, replying, ranking and labelling at once, on SQLite and PostgreSQL.

A bounded run against ``vinaforge collect serve`` in its own process: each user logs in, then
all start together (a barrier) and each sends a prompt, a reply, a ranking and a label. Every
submission must be accepted and stored exactly once (in = stored), and p50/p99 latencies are
reported (``-s`` shows them; they are also written to ``bench/out/collect_load_<db>.json`` when
``VINAFORGE_LOAD_REPORT=1``).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select
from vinaforge_collect.db import Database
from vinaforge_collect.export import export_all
from vinaforge_collect.models import Base, Label, Message, Ranking, User
from vinaforge_collect.seed import load_seed

from .conftest import fresh_postgres_db, live_server
from .helpers import add_user, csrf_of, make_settings, vi_text

N_USERS = 50
SERVER = {"reviews_needed": 0, "max_replies_per_parent": 1000}


def _run_users(base: str, n: int, ids: dict) -> dict:
    barrier = threading.Barrier(n, timeout=120)
    latencies: dict[str, list[float]] = {"prompt": [], "reply": [], "rank": [], "label": [], "page": []}
    submitted = {"prompt": 0, "reply": 0, "rank": 0, "label": 0}
    errors: list[str] = []
    lock = threading.Lock()

    def timed(kind: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        r = fn(*args, **kwargs)
        with lock:
            latencies[kind].append(time.perf_counter() - t0)
        return r

    def submit(client: httpx.Client, kind: str, page: str, action: str, data: dict, ok) -> None:
        token = csrf_of(timed("page", client.get, page).text)
        r = timed(kind, client.post, action, data={"csrf": token, **data})
        with lock:
            if r.status_code == 303 and ok(r.headers.get("location", "")):
                submitted[kind] += 1
            else:
                errors.append(f"{kind}: {r.status_code} {r.text[-300:]}")

    def user(k: int) -> None:
        rng = random.Random(k)
        with httpx.Client(base_url=base, timeout=60, follow_redirects=False) as client:
            token = csrf_of(client.get("/login").text)
            r = client.post(
                "/login", data={"csrf": token, "username": f"load{k:02d}", "password": "mat-khau-123"}
            )
            assert r.status_code == 303, r.text[-300:]
            barrier.wait()
            submit(client, "prompt", "/tasks/prompt", "/tasks/prompt",
                   {"text": vi_text(rng, 16), "action": "send"}, lambda loc: "/messages/" in loc)  # fmt: skip
            submit(client, "reply", f"/tasks/assistant_reply?message={ids['reply_to']}", "/tasks/reply",
                   {"parent_id": ids["reply_to"], "kind": "assistant_reply", "text": vi_text(rng, 20, question=False),
                    "action": "send"}, lambda loc: "/messages/" in loc)  # fmt: skip
            order = ids["replies"][:]
            rng.shuffle(order)
            submit(client, "rank", f"/tasks/rank?message={ids['rank_parent']}", "/tasks/rank",
                   {"parent_id": ids["rank_parent"], "reply": [str(x) for x in order],
                    "rank": [str(i + 1) for i in range(len(order))]}, lambda loc: "ok=ranked" in loc)  # fmt: skip
            submit(client, "label", f"/tasks/label?message={ids['label']}", "/tasks/label",
                   {"message_id": ids["label"], "quality": str(rng.randint(1, 5))}, lambda loc: "ok=labelled" in loc)  # fmt: skip

    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        for f in [pool.submit(user, k) for k in range(n)]:
            f.result()
    wall = time.perf_counter() - t0
    posts = [x for k in ("prompt", "reply", "rank", "label") for x in latencies[k]]
    return {
        "users": n,
        "wall_s": round(wall, 2),
        "submitted": submitted,
        "errors": errors[:5],
        "requests": len(posts) + len(latencies["page"]),
        "submit_p50_ms": round(float(np.percentile(posts, 50)) * 1000, 1),
        "submit_p99_ms": round(float(np.percentile(posts, 99)) * 1000, 1),
        "page_p50_ms": round(float(np.percentile(latencies["page"], 50)) * 1000, 1),
        "page_p99_ms": round(float(np.percentile(latencies["page"], 99)) * 1000, 1),
    }


def _load_run(url: str, label: str, out_dir: Path) -> None:
    db = Database(url)
    db.migrate()
    with db.engine.connect() as conn:  # the Alembic schema is the models' schema on this database too
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    settings = make_settings(url, **SERVER)
    load_seed(db, settings)
    with db.write() as s:
        for k in range(N_USERS):
            add_user(s, settings, f"load{k:02d}")
        roots = {m.text[:20]: m for m in s.scalars(select(Message).where(Message.parent_id.is_(None)))}
        pho = next(m for t, m in roots.items() if t.startswith("Làm thế nào"))
        ids = {
            "reply_to": next(m.id for t, m in roots.items() if t.startswith("Tóm tắt")),
            "rank_parent": pho.id,
            "replies": list(
                s.scalars(select(Message.id).where(Message.parent_id == pho.id).order_by(Message.id))
            ),
            "label": pho.id,
        }
    with db.read() as s:
        before = {"messages": s.scalar(select(func.count(Message.id))), "rankings": s.scalar(select(func.count(Ranking.id))),
                  "labels": s.scalar(select(func.count(Label.id)))}  # fmt: skip
    with live_server(url, **SERVER) as base:
        report = _run_users(base, N_USERS, ids)
    with db.read() as s:
        load_users = select(User.id).where(User.username.like("load%"))
        stored = {
            "prompt": s.scalar(
                select(func.count()).where(Message.author_id.in_(load_users), Message.parent_id.is_(None))
            ),
            "reply": s.scalar(
                select(func.count()).where(Message.author_id.in_(load_users), Message.parent_id.is_not(None))
            ),
            "rank": s.scalar(select(func.count()).where(Ranking.user_id.in_(load_users))),
            "label": s.scalar(select(func.count()).where(Label.user_id.in_(load_users))),
        }
        total_messages = s.scalar(select(func.count(Message.id)))
        exported = export_all(s, settings, "k", out_dir)["counts"]
    db.dispose()
    report.update(database=label, stored=stored)
    print(f"\ncollect load test ({label}): {json.dumps(report, ensure_ascii=False)}")
    if os.environ.get("VINAFORGE_LOAD_REPORT") == "1":
        out = Path(__file__).resolve().parents[2] / "bench" / "out" / f"collect_load_{label}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
    assert not report["errors"], report["errors"]
    assert report["submitted"] == {k: N_USERS for k in ("prompt", "reply", "rank", "label")}
    assert stored == report["submitted"]  # in = stored, nothing lost, nothing doubled
    assert total_messages == before["messages"] + 2 * N_USERS
    # the rankings export as they were sent; the ranked parent now has 52 rankings: 3 preference pairs
    assert exported["rankings"]["kept"] == before["rankings"] + N_USERS
    assert exported["preferences"]["kept"] >= 3


def test_load_sqlite(sqlite_url, tmp_path):
    _load_run(sqlite_url, "sqlite", tmp_path / "export")


@pytest.mark.slow
def test_load_postgres(postgres_url, tmp_path):
    _load_run(fresh_postgres_db(postgres_url, "collect_load"), "postgresql", tmp_path / "export")
