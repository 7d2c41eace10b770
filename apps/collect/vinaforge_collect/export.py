"""The contract with the rest of vinaforge: JSONL in ``vinaforge.chat`` formats.

Four files, each record carrying ``license`` and ``consent``:

- ``sft.jsonl``: one conversation per tree, OpenAI ``messages``, along the best-ranked path
  (consensus Ranked Pairs where a parent has enough rankings, else the best mean quality label,
  else the earliest reply): what ``vinaforge tune sft`` reads;
- ``preferences.jsonl``: ``{prompt, chosen, rejected}`` in TRL's conversational form, every pair
  ordered by a counted consensus ranking: what DPO and reward-model training read;
- ``trees.jsonl``: every tree with all its visible messages, labels and ranking aggregates
  (Ranked Pairs and Bradley–Terry side by side);
- ``rankings.jsonl``: every rater's raw ranking, with the rater replaced by a keyed pseudonym.

Records are validated with :mod:`vinaforge.chat.conversation` before they are written; a record
that fails goes to ``rejected.jsonl`` with its reason, and ``export.json`` counts in = kept +
rejected per file.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.orm import Session

from vinaforge_collect.config import Settings
from vinaforge_collect.models import FLAG_FIELDS, Label, Message, Ranking
from vinaforge_collect.security import anonymous_id
from vinaforge_collect.stats import consensus

CHAT_ROLE = {"prompter": "user", "assistant": "assistant"}


def _provenance(settings: Settings) -> dict:
    return {
        "license": settings.license,
        "consent": {
            "terms_version": settings.terms_version,
            "contributors_consented": True,
            "note": "every contributor accepted these terms at sign-up; model replies are marked origin=model",
        },
    }


class _Trees:
    """All visible messages of the database, indexed by parent."""

    def __init__(self, s: Session, settings: Settings):
        self.settings = settings
        self.cons = consensus(s, settings)
        visible = (Message.review_state == "accepted") & (Message.hidden.is_(False))
        self.msgs = {m.id: m for m in s.scalars(select(Message).where(visible).order_by(Message.id))}
        self.children: dict[int | None, list[int]] = defaultdict(list)
        for m in self.msgs.values():
            if m.parent_id is None or m.parent_id in self.msgs:
                self.children[m.parent_id].append(m.id)
        self.labels: dict[int, dict] = {}
        q = select(
            Label.message_id,
            func.count(),
            func.avg(Label.quality),
            *[func.sum(cast(getattr(Label, f), Integer)) for f in FLAG_FIELDS],
        ).group_by(Label.message_id)
        for mid, n, quality, *flags in s.execute(q):
            self.labels[mid] = {
                "n": int(n),
                "quality_mean": round(float(quality), 3) if quality is not None else None,
                **{f: int(v or 0) for f, v in zip(FLAG_FIELDS, flags, strict=True)},
            }

    def best_child(self, parent_id: int) -> int | None:
        kids = self.children.get(parent_id, [])
        if not kids:
            return None
        agg = self.cons.parents.get(parent_id)
        if agg is not None and agg.counted:
            for mid in agg.ranked_pairs:
                if mid in kids:
                    return mid
        return max(kids, key=lambda k: ((self.labels.get(k) or {}).get("quality_mean") or 0.0, -k))

    def best_path(self, root: int) -> list[int]:
        path = [root]
        while (nxt := self.best_child(path[-1])) is not None:
            path.append(nxt)
        while path and self.msgs[path[-1]].role != "assistant":
            path.pop()
        return path

    def as_messages(self, ids: list[int]) -> list[dict[str, str]]:
        return [{"role": CHAT_ROLE[self.msgs[i].role], "content": self.msgs[i].text} for i in ids]

    def thread(self, mid: int) -> list[int]:
        out = [mid]
        while self.msgs[out[-1]].parent_id is not None:
            out.append(self.msgs[out[-1]].parent_id)
        return out[::-1]

    def node(self, mid: int) -> dict:
        m = self.msgs[mid]
        agg = self.cons.parents.get(mid)
        return {
            "id": m.id,
            "role": CHAT_ROLE[m.role],
            "content": m.text,
            "origin": m.origin,
            "model_name": m.model_name,
            "lang": m.lang,
            "created_at": m.created_at.isoformat(timespec="seconds"),
            "labels": self.labels.get(mid),
            "ranking": None
            if agg is None
            else {
                "n_rankings": agg.n_rankings,
                "counted": agg.counted,
                "ranked_pairs": agg.ranked_pairs,
                "bradley_terry": {str(k): v for k, v in agg.bradley_terry.items()},
                "krippendorff_alpha": agg.alpha,
            },
            "children": [self.node(c) for c in self.children.get(mid, [])],
        }


def sft_records(t: _Trees, prov: dict):
    for root in t.children.get(None, []):
        path = t.best_path(root)
        if not path:
            continue
        yield {
            "id": f"tree{root}",
            "messages": t.as_messages(path),
            "tree_id": root,
            "message_ids": path,
            "origins": [t.msgs[i].origin for i in path],
            **prov,
        }


def preference_records(t: _Trees, prov: dict):
    for pid, agg in sorted(t.cons.parents.items()):
        if not agg.counted or pid not in t.msgs or t.msgs[pid].role != "prompter":
            continue
        order = [m for m in agg.ranked_pairs if m in t.msgs and t.msgs[m].parent_id == pid]
        prompt = t.as_messages(t.thread(pid))
        for i, chosen in enumerate(order):
            for rejected in order[i + 1 :]:
                yield {
                    "id": f"pref{pid}-{chosen}-{rejected}",
                    "prompt": prompt,
                    "chosen": t.as_messages([chosen]),
                    "rejected": t.as_messages([rejected]),
                    "parent_id": pid,
                    "chosen_id": chosen,
                    "rejected_id": rejected,
                    "n_rankings": agg.n_rankings,
                    "bt_margin": round(
                        agg.bradley_terry.get(chosen, 0) - agg.bradley_terry.get(rejected, 0), 1
                    ),
                    "krippendorff_alpha": agg.alpha,
                    "origins": {"chosen": t.msgs[chosen].origin, "rejected": t.msgs[rejected].origin},
                    **prov,
                }


def tree_records(t: _Trees, prov: dict):
    for root in t.children.get(None, []):
        yield {"id": f"tree{root}", "tree_id": root, "message_tree": t.node(root), **prov}


def ranking_records(s: Session, t: _Trees, secret: str, prov: dict):
    for r in s.scalars(select(Ranking).order_by(Ranking.id)):
        agg = t.cons.parents.get(r.parent_id)
        yield {
            "id": f"ranking{r.id}",
            "rater": anonymous_id(secret, r.user_id),
            "parent_id": r.parent_id,
            "order": r.order,
            "date": r.created_at.date().isoformat(),
            "counted": bool(agg and agg.counted),
            **prov,
        }


def _validate(kind: str, rec: dict) -> str | None:
    from vinaforge.chat.conversation import (
        ConversationError,
        Preference,
        validate_messages,
        validate_preference,
    )

    try:
        if kind == "sft":
            validate_messages(rec["messages"])
        elif kind == "preferences":
            validate_preference(Preference(rec["prompt"], rec["chosen"], rec["rejected"]))
    except ConversationError as err:
        return str(err)
    return None


def export_all(s: Session, settings: Settings, secret: str, out_dir: str | Path) -> dict:
    """Write the four JSONL files, ``rejected.jsonl`` and ``export.json``; returns the counts."""
    from vinaforge.chat.readers import write_jsonl

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t = _Trees(s, settings)
    prov = _provenance(settings)
    sources = {
        "sft": sft_records(t, prov),
        "preferences": preference_records(t, prov),
        "trees": tree_records(t, prov),
        "rankings": ranking_records(s, t, secret, prov),
    }
    counts: dict = {}
    rejected: list[dict] = []
    for kind, records in sources.items():
        kept, n_in = [], 0
        for rec in records:
            n_in += 1
            reason = _validate(kind, rec)
            if reason is None:
                kept.append(rec)
            else:
                rejected.append(
                    {"file": f"{kind}.jsonl", "id": rec.get("id"), "reason": reason, "record": rec}
                )
        write_jsonl(out / f"{kind}.jsonl", kept)
        counts[kind] = {"in": n_in, "kept": len(kept), "rejected": n_in - len(kept)}
    write_jsonl(out / "rejected.jsonl", rejected)
    summary = {"counts": counts, "settings": {"min_rankings": settings.min_rankings, **prov}}
    tmp = out / ".export.json.tmp"
    tmp.write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(out / "export.json")
    return summary
