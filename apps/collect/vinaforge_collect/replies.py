"""Model replies that join the human ones to be ranked, through ``vinaforge.generate``.

The backend is a local HF model or any OpenAI-compatible endpoint (a
:class:`vinaforge.generate.BackendConfig`). Each reply goes through the same automatic checks
as a person's and is stored with ``origin="model"`` and the model's name; one that fails a check
is kept as ``rejected`` with its reasons, so nothing is silently dropped.
"""

from __future__ import annotations

import logging

from sqlalchemy import exists, func, select
from sqlalchemy.orm import aliased

from vinaforge_collect.checks import check_text, store_signature
from vinaforge_collect.config import Settings
from vinaforge_collect.db import Database
from vinaforge_collect.models import Message
from vinaforge_collect.services import thread_of, visible_filter

log = logging.getLogger("vinaforge.collect")
CHAT_ROLE = {"prompter": "user", "assistant": "assistant"}


def prompts_needing_model_reply(db: Database, settings: Settings, model_name: str, limit: int) -> list[int]:
    """Visible user turns with room for one more reply and no reply yet from this model."""
    child = aliased(Message)
    has_model = exists().where(child.parent_id == Message.id, child.model_name == model_name)
    n_children = (
        select(func.count()).where(child.parent_id == Message.id, child.review_state != "rejected")
        .correlate(Message).scalar_subquery()
    )  # fmt: skip
    with db.read() as s:
        stmt = (
            select(Message.id)
            .where(
                visible_filter(),
                Message.role == "prompter",
                ~has_model,
                n_children < settings.max_replies_per_parent,
            )
            .order_by(Message.id)
            .limit(limit)
        )
        return list(s.scalars(stmt))


def add_model_replies(
    db: Database, settings: Settings, backend, params, model_name: str, limit: int = 100
) -> dict:
    """Generate one reply per waiting prompt; returns counts (in = stored + rejected + failed)."""
    ids = prompts_needing_model_reply(db, settings, model_name, limit)
    if not ids:
        return {"prompts": 0, "stored": 0, "rejected": 0, "failed": 0}
    with db.read() as s:
        requests = [
            [{"role": CHAT_ROLE[m.role], "content": m.text} for m in thread_of(s, s.get(Message, i))]
            for i in ids
        ]
    completions = backend.generate(requests, params)
    counts = {"prompts": len(ids), "stored": 0, "rejected": 0, "failed": 0}
    for pid, comp in zip(ids, completions, strict=True):
        if not comp.ok:
            counts["failed"] += 1
            log.warning("model reply to #%d failed: %s", pid, comp.error)
            continue
        text = (comp.text or "").strip()
        with db.write() as s:
            parent = s.get(Message, pid)
            checks = check_text(s, settings, text or " ")
            state = (
                "rejected" if checks.errors else ("accepted" if settings.reviews_needed == 0 else "pending")
            )
            msg = Message(
                parent_id=pid, tree_id=parent.tree_id, depth=parent.depth + 1, role="assistant",
                text=text, author_id=None, origin="model", model_name=model_name,
                lang=checks.info.get("lang"), lang_score=checks.info.get("lang_score"), review_state=state,
                checks={**checks.info, "warnings": checks.warnings, "errors": checks.errors,
                        "finish_reason": comp.finish_reason},
            )  # fmt: skip
            s.add(msg)
            s.flush()
            if state != "rejected":
                store_signature(s, msg, checks.signature)
        counts["rejected" if state == "rejected" else "stored"] += 1
    return counts
