"""The community loop's side of the app: model replies pushed in to be ranked, rankings read back.

vinaforge's loop (``vinaforge.loop``) samples replies from its policy, pushes them here through
the JSON API (:mod:`vinaforge_collect.api`), waits for people to rank them with the ordinary
rank task, then reads the consensus back to train a reward model. This module does the
database work:

- a pushed prompt is matched to the identical conversation already in the app, turn by turn,
  or created (``origin="import"``), so pushing twice is harmless;
- every reply goes through the same automatic checks as a person's; one that fails is stored
  as ``rejected`` with its reasons and reported back, so in = stored + existing + rejected;
- the push is made with a moderator's or admin's token, and a moderator's review decides alone
  in this app, so what passes the checks joins its tree at once, ready to be ranked;
- a parent's ranked list counts only the rankings that cover all of its current replies (a
  reply added later was never seen by earlier raters), ordered by Ranked Pairs as the export.

Hand-written glue over the app's own services, checks and aggregation.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vinaforge_collect.aggregate import krippendorff_alpha, ranked_pairs, ranks_with_ties
from vinaforge_collect.checks import CheckResult, analyse_text, check_text, store_signature
from vinaforge_collect.config import Settings
from vinaforge_collect.db import Database
from vinaforge_collect.models import Message, Ranking
from vinaforge_collect.services import MAX_DEPTH, normalise_text, thread_of, visible_children

CHAT_ROLE = {"prompter": "user", "assistant": "assistant"}
APP_ROLE = {"user": "prompter", "assistant": "assistant"}
STATE_REASON = {"rejected": "refused earlier by the checks or a moderator", "pending": "waiting for review"}


class ItemRefused(Exception):
    """A pushed prompt that cannot be stored; its replies are reported as rejected with this reason."""


def prompt_turns(prompt: Any) -> list[dict[str, str]]:
    """The prompt as app turns (user/assistant alternating, ending with a user turn), or ItemRefused."""
    from vinaforge.chat.conversation import ConversationError, validate_messages

    try:
        turns = validate_messages(prompt, require_reply=False)
    except ConversationError as err:
        raise ItemRefused(f"bad prompt: {err}") from None
    if turns[0]["role"] == "system":
        raise ItemRefused(
            "bad prompt: the app's conversation trees have no system turn; push the prompt without it"
        )
    if turns[-1]["role"] != "user":
        raise ItemRefused("bad prompt: it must end with a user turn (the replies answer it)")
    if len(turns) > MAX_DEPTH:
        raise ItemRefused(
            f"bad prompt: {len(turns)} turns, the app keeps conversations of at most {MAX_DEPTH}"
        )
    return [{"role": APP_ROLE[t["role"]], "content": normalise_text(t["content"])} for t in turns]


def _child_with_text(s: Session, parent_id: int | None, role: str, text: str) -> Message | None:
    parent = Message.parent_id.is_(None) if parent_id is None else Message.parent_id == parent_id
    stmt = select(Message).where(parent, Message.role == role, Message.text == text).order_by(Message.id)
    return s.scalars(stmt.limit(1)).first()


def _new_message(parent: Message | None, role: str, text: str, checks: CheckResult, **fields) -> Message:
    return Message(
        parent_id=parent.id if parent else None, tree_id=parent.tree_id if parent else None,
        depth=parent.depth + 1 if parent else 0, role=role, text=text, author_id=None,
        lang=checks.info.get("lang"), lang_score=checks.info.get("lang_score"),
        checks={**checks.info, "warnings": checks.warnings, "errors": checks.errors}, **fields,
    )  # fmt: skip


def _thread_in_db(
    s: Session, settings: Settings, turns: list[dict], pre: list[CheckResult]
) -> tuple[Message, bool]:
    """Walk the prompt's turns down from a root, matching identical visible messages, creating the rest."""
    parent: Message | None = None
    created = False
    for i, (turn, checks) in enumerate(zip(turns, pre, strict=True)):
        found = _child_with_text(s, parent.id if parent else None, turn["role"], turn["content"])
        if found is not None:
            if not found.visible:
                why = "hidden by moderators" if found.hidden else STATE_REASON.get(found.review_state, "")
                raise ItemRefused(f"prompt turn {i} is message #{found.id}, which is {why}")
            parent = found
            continue
        checks = check_text(s, settings, turn["content"], checks)
        if checks.errors:
            raise ItemRefused(f"prompt turn {i} refused by the checks: " + " ".join(checks.errors))
        msg = _new_message(
            parent, turn["role"], turn["content"], checks, origin="import", review_state="accepted"
        )
        s.add(msg)
        s.flush()
        if msg.tree_id is None:
            msg.tree_id = msg.id
        store_signature(s, msg, checks.signature)
        parent, created = msg, True
    assert parent is not None
    return parent, created


def push_one(db: Database, settings: Settings, model: str, prompt: Any, replies: list[str]) -> dict:
    """Store one prompt and its sampled replies; the result names what was stored and what was refused."""
    texts = [normalise_text(r) for r in replies]
    out: dict[str, Any] = {"parent_id": None, "reply_ids": [], "rejected": [], "prompt_created": False,
                           "error": None, "existing": 0}  # fmt: skip
    try:
        turns = prompt_turns(prompt)
        # the checks that need no database run before the write lock is taken (as the web routes do)
        pre_turns = [analyse_text(settings, t["content"]) for t in turns]
        pre_replies = [analyse_text(settings, t) for t in texts]
        with db.write() as s:
            parent, out["prompt_created"] = _thread_in_db(s, settings, turns, pre_turns)
            out["parent_id"] = parent.id
            for text, pre in zip(texts, pre_replies, strict=True):
                _store_reply(s, settings, parent, model, text, pre, out)
    except ItemRefused as err:  # the transaction rolled back: nothing of this item is stored
        out.update(parent_id=None, reply_ids=[], existing=0, prompt_created=False, error=str(err))
        out["rejected"] = [{"reply": t, "reasons": [str(err)]} for t in texts]
    return out


def _store_reply(s: Session, settings: Settings, parent: Message, model: str, text: str, pre: CheckResult,
                 out: dict) -> None:  # fmt: skip
    found = _child_with_text(s, parent.id, "assistant", text)
    if found is not None:  # pushed before (or written by a person): never stored twice
        if found.visible:
            out["reply_ids"].append(found.id)
            out["existing"] += 1
        else:
            reasons = (found.checks or {}).get("errors") or [
                "hidden by moderators"
                if found.hidden
                else STATE_REASON.get(found.review_state, found.review_state)
            ]
            out["rejected"].append({"reply": text, "reasons": reasons, "message_id": found.id})
        return
    checks = check_text(s, settings, text, pre)
    state = "rejected" if checks.errors else "accepted"
    msg = _new_message(
        parent, "assistant", text, checks, origin="model", model_name=model[:200], review_state=state
    )
    s.add(msg)
    s.flush()
    if checks.errors:
        out["rejected"].append({"reply": text, "reasons": checks.errors, "message_id": msg.id})
    else:
        store_signature(s, msg, checks.signature)
        out["reply_ids"].append(msg.id)


def push_replies(db: Database, settings: Settings, model: str, items: list[dict]) -> dict:
    """Push every ``{"prompt", "replies"}`` item (each in its own transaction); results in input order."""
    results = [push_one(db, settings, model, it["prompt"], it["replies"]) for it in items]
    n_in = sum(len(it["replies"]) for it in items)
    counts = {
        "items": len(items),
        "items_refused": sum(r["error"] is not None for r in results),
        "prompts_created": sum(r["prompt_created"] for r in results),
        "replies_in": n_in,
        "replies_existing": sum(r["existing"] for r in results),
        "replies_stored": sum(len(r["reply_ids"]) - r["existing"] for r in results),
        "replies_rejected": sum(len(r["rejected"]) for r in results),
    }
    assert (
        counts["replies_in"]
        == counts["replies_existing"] + counts["replies_stored"] + counts["replies_rejected"]
    )
    return {"items": [{k: v for k, v in r.items() if k != "existing"} for r in results], "counts": counts}


def ranked_lists(s: Session, settings: Settings, parent_ids: list[int], min_rankings: int) -> dict:
    """The consensus order of each listed parent with at least ``min_rankings`` complete rankings.

    ``min_rankings`` cannot go below the app's own ``min_rankings`` setting. Parents not ready
    are listed under ``waiting`` (with their count so far), unknown or invisible ones under
    ``missing``.
    """
    floor = max(min_rankings, settings.min_rankings)
    ids = list(dict.fromkeys(parent_ids))
    orders: dict[int, list[list[int]]] = defaultdict(list)
    for pid, order in s.execute(
        select(Ranking.parent_id, Ranking.order).where(Ranking.parent_id.in_(ids)).order_by(Ranking.id)
    ):
        orders[pid].append(order)
    items, waiting, missing = [], [], []
    for pid in ids:
        parent = s.get(Message, pid)
        if parent is None or not parent.visible or parent.role != "prompter":
            missing.append(pid)
            continue
        children = {c.id: c for c in visible_children(s, pid)}
        complete = [
            kept for o in orders[pid] if set(kept := [m for m in o if m in children]) == set(children)
        ]
        if len(children) < 2 or len(complete) < floor:
            waiting.append({"parent_id": pid, "n_rankings": len(complete), "replies": len(children)})
            continue
        order = ranked_pairs(complete, sorted(children))
        items.append({
            "parent_id": pid,
            "prompt": [{"role": CHAT_ROLE[m.role], "content": m.text} for m in thread_of(s, parent)],
            "replies": [children[m].text for m in order],
            "ranks": ranks_with_ties(complete, order),
            "reply_ids": order,
            "origins": [children[m].origin for m in order],
            "model_names": [children[m].model_name for m in order],
            "n_rankings": len(complete),
            "krippendorff_alpha": krippendorff_alpha(complete),
        })  # fmt: skip
    return {"items": items, "waiting": waiting, "missing": missing, "min_rankings": floor}
