"""Seed data we wrote (``seed_vi.json``): a few Vietnamese prompts, replies and rankings.

Loaded once (skipped when its users exist), accepted as they are: it is the demo's content
and the browser test's starting point. Signatures are stored so that near-duplicate checks
know the seed texts too.
"""

from __future__ import annotations

import json
from importlib import resources

from sqlalchemy import select

from vinaforge_collect.checks import minhash_signature, store_signature
from vinaforge_collect.config import Settings
from vinaforge_collect.db import Database
from vinaforge_collect.models import Message, Ranking, User
from vinaforge_collect.security import Passwords


def seed_data() -> dict:
    return json.loads((resources.files("vinaforge_collect") / "seed_vi.json").read_text(encoding="utf-8"))


def load_seed(db: Database, settings: Settings) -> dict:
    data = seed_data()
    with db.read() as s:
        if s.scalar(select(User.id).where(User.username == data["users"][0]["username"])):
            return {"loaded": False, "reason": "seed users already exist"}
    pw = Passwords(settings).hash(data["demo_password"])
    counts = {"users": 0, "messages": 0, "rankings": 0}
    with db.write() as s:
        users = {}
        for u in data["users"]:
            users[u["username"]] = User(username=u["username"], password_hash=pw, role=u["role"],
                                        terms_version=settings.terms_version)  # fmt: skip
            s.add(users[u["username"]])
        s.flush()
        counts["users"] = len(users)

        def add(text: str, author: str, parent: Message | None) -> Message:
            m = Message(
                parent_id=parent.id if parent else None, tree_id=parent.tree_id if parent else None,
                depth=parent.depth + 1 if parent else 0, role="assistant" if parent else "prompter",
                text=text, author_id=users[author].id, origin="human", lang="vi", review_state="accepted",
                checks={"seed": True},
            )  # fmt: skip
            s.add(m)
            s.flush()
            m.tree_id = m.tree_id or m.id
            store_signature(s, m, minhash_signature(text))
            counts["messages"] += 1
            return m

        for tree in data["trees"]:
            root = add(tree["text"], tree["author"], None)
            replies = [add(r["text"], r["author"], root) for r in tree["replies"]]
            for r in tree["rankings"]:
                if r["by"] not in users or not r["order"]:
                    continue
                s.add(
                    Ranking(
                        parent_id=root.id,
                        user_id=users[r["by"]].id,
                        order=[replies[k].id for k in r["order"]],
                    )
                )
                counts["rankings"] += 1
    return {"loaded": True, **counts}
