"""Leaderboard, consensus rankings and rater reliability, computed from the database.

The scoring formula is published on the leaderboard page (:data:`SCORING`) and computed here
term by term, so the page shows each contributor's parts, not just a total.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from vinaforge_collect.aggregate import ParentResult, aggregate_parent, rater_agreement
from vinaforge_collect.config import Settings
from vinaforge_collect.models import Label, Message, Ranking, Review, User

POINTS = {"prompt": 10, "reply": 10, "top_reply": 5, "ranking": 3, "label": 1, "review": 1, "removed": -20}
SCORING = (
    "điểm = 10 × câu hỏi được chấp nhận + 10 × câu trả lời được chấp nhận "
    "+ 5 × câu trả lời đứng đầu một bảng xếp hạng đã tính (≥ {min_rankings} lượt xếp hạng) "
    "+ 3 × lượt xếp hạng × (1 + τ̄/2) + 1 × nhãn + 1 × lượt duyệt − 20 × tin nhắn bị ẩn hoặc bị từ chối; "
    "τ̄ là Kendall τ trung bình giữa thứ hạng của bạn và đồng thuận của những người khác (1 khi chưa đo được)"
)


@dataclass
class Consensus:
    parents: dict[int, ParentResult]
    taus: dict[int, list[float]]

    def mean_tau(self, user_id: int) -> float | None:
        t = self.taus.get(user_id)
        return round(sum(t) / len(t), 4) if t else None


_cache_lock = threading.Lock()
_cache: dict[str, tuple[tuple, float, Consensus]] = {}  # database URL -> (key, when, result)


def consensus(s: Session, settings: Settings) -> Consensus:
    """Aggregates of every ranked parent plus each rater's τ.

    Recomputed only when the rankings or the set of hidden/unaccepted messages change, and
    then at most every ``stats_refresh_s`` seconds (about 2 s of CPU per 15,000 rankings).
    """
    n, last = s.execute(select(func.count(Ranking.id), func.max(Ranking.id))).one()
    not_visible = (Message.hidden.is_(True)) | (Message.review_state != "accepted")
    n_off, sum_off = s.execute(select(func.count(Message.id), func.sum(Message.id)).where(not_visible)).one()
    key = (str(s.get_bind().url), n, last, n_off, sum_off, settings.min_rankings)
    with _cache_lock:
        hit = _cache.get(key[0])
        if hit is not None and (hit[0] == key or time.monotonic() - hit[1] < settings.stats_refresh_s):
            return hit[2]
    by_parent: dict[int, list[tuple[int, list[int]]]] = defaultdict(list)
    hidden = set(
        s.scalars(select(Message.id).where((Message.hidden.is_(True)) | (Message.review_state != "accepted")))
    )
    for parent_id, user_id, order in s.execute(
        select(Ranking.parent_id, Ranking.user_id, Ranking.order).order_by(Ranking.id)
    ):
        by_parent[parent_id].append((user_id, [m for m in order if m not in hidden]))
    parents = {
        pid: aggregate_parent(pid, [o for _, o in rows], settings.min_rankings)
        for pid, rows in by_parent.items()
    }
    result = Consensus(parents, rater_agreement(by_parent, settings.min_rankings))
    with _cache_lock:
        _cache[key[0]] = (key, time.monotonic(), result)
    return result


@dataclass
class Row:
    user_id: int
    username: str
    parts: dict[str, int] = field(default_factory=dict)
    tau: float | None = None
    score: float = 0.0


def leaderboard(s: Session, settings: Settings, limit: int = 100) -> list[Row]:
    cons = consensus(s, settings)
    rows: dict[int, Row] = {
        uid: Row(uid, name)
        for uid, name in s.execute(select(User.id, User.username).where(User.banned.is_(False)))
    }

    def add(uid: int | None, part: str, n: int) -> None:
        if uid in rows and n:
            rows[uid].parts[part] = rows[uid].parts.get(part, 0) + int(n)

    visible = (Message.review_state == "accepted") & (Message.hidden.is_(False))
    removed = (Message.review_state == "rejected") | (Message.hidden.is_(True))
    q = (
        select(
            Message.author_id,
            func.sum(
                case((visible & (Message.role == "prompter") & (Message.parent_id.is_(None)), 1), else_=0)
            ),
            func.sum(case((visible & (Message.parent_id.is_not(None)), 1), else_=0)),
            func.sum(case((removed, 1), else_=0)),
        )
        .where(Message.author_id.is_not(None))
        .group_by(Message.author_id)
    )
    for uid, prompts, replies, n_removed in s.execute(q):
        add(uid, "prompt", prompts)
        add(uid, "reply", replies)
        add(uid, "removed", n_removed)
    for uid, n in s.execute(select(Ranking.user_id, func.count()).group_by(Ranking.user_id)):
        add(uid, "ranking", n)
    for uid, n in s.execute(select(Label.user_id, func.count()).group_by(Label.user_id)):
        add(uid, "label", n)
    for uid, n in s.execute(select(Review.user_id, func.count()).group_by(Review.user_id)):
        add(uid, "review", n)
    tops = [p.ranked_pairs[0] for p in cons.parents.values() if p.counted and p.ranked_pairs]
    if tops:
        for uid, n in s.execute(
            select(Message.author_id, func.count()).where(Message.id.in_(tops)).group_by(Message.author_id)
        ):
            add(uid, "top_reply", n)
    for row in rows.values():
        row.tau = cons.mean_tau(row.user_id)
        weight = 1.0 + (row.tau / 2 if row.tau is not None else 0.0)
        row.score = round(
            sum(POINTS[k] * v for k, v in row.parts.items() if k != "ranking")
            + POINTS["ranking"] * row.parts.get("ranking", 0) * weight,
            1,
        )
    ranked = sorted((r for r in rows.values() if r.parts), key=lambda r: (-r.score, r.username))
    return ranked[:limit]


@dataclass
class RaterRow:
    user_id: int
    username: str
    rankings: int
    tau: float | None
    flags_received: int
    hidden_messages: int


def rater_report(s: Session, settings: Settings) -> list[RaterRow]:
    """Every rater/author with their agreement and the red flags their messages got (moderator view)."""
    cons = consensus(s, settings)
    n_rank = dict(s.execute(select(Ranking.user_id, func.count()).group_by(Ranking.user_id)).all())
    flags = dict(
        s.execute(select(Message.author_id, func.sum(Message.red_flags)).where(Message.author_id.is_not(None))
                  .group_by(Message.author_id)).all()
    )  # fmt: skip
    hidden = dict(
        s.execute(select(Message.author_id, func.count()).where(Message.hidden.is_(True), Message.author_id.is_not(None))
                  .group_by(Message.author_id)).all()
    )  # fmt: skip
    out = []
    for uid, name in s.execute(select(User.id, User.username)):
        row = RaterRow(uid, name, int(n_rank.get(uid, 0)), cons.mean_tau(uid), int(flags.get(uid) or 0),
                       int(hidden.get(uid, 0)))  # fmt: skip
        if row.rankings or row.flags_received or row.hidden_messages:
            out.append(row)
    return out


def suspicious(rows: list[RaterRow], settings: Settings) -> list[RaterRow]:
    """Low agreement with the consensus, or many red flags: worst first."""
    bad = [
        r
        for r in rows
        if (r.tau is not None and r.tau < settings.low_agreement_tau)
        or r.flags_received >= settings.hide_after_flags
    ]
    return sorted(bad, key=lambda r: (r.tau if r.tau is not None else 1.0, -r.flags_received))
