"""What contributors and moderators do, as functions over a database session.

The web routes and the CLI call these; every rule (roles, no self-ranking or self-labelling,
rate limits, review thresholds, auto-hiding after red flags) is enforced here, so no route can
forget one. A refused action raises :class:`Refused` with a message for the user and an HTTP
status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from vinaforge_collect.checks import CheckResult, check_text, store_signature
from vinaforge_collect.config import Settings
from vinaforge_collect.models import (
    FLAG_FIELDS,
    Draft,
    Label,
    Message,
    ModerationAction,
    Ranking,
    Review,
    User,
    utcnow,
)

TASK_KINDS = ("prompt", "assistant_reply", "prompter_reply", "rank", "label", "review")
REPLY_ROLE = {"prompter": "assistant", "assistant": "prompter"}
MAX_DEPTH = 7


class Refused(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


# --------------------------------------------------------------------------- reading trees


def visible_filter():
    return and_(Message.review_state == "accepted", Message.hidden.is_(False))


def thread_of(s: Session, message: Message) -> list[Message]:
    """The message and its ancestors, root first."""
    chain = [message]
    while chain[-1].parent_id is not None:
        parent = s.get(Message, chain[-1].parent_id)
        if parent is None:
            break
        chain.append(parent)
    return chain[::-1]


def visible_children(s: Session, parent_id: int) -> list[Message]:
    return list(
        s.scalars(
            select(Message).where(Message.parent_id == parent_id, visible_filter()).order_by(Message.id)
        )
    )


def can_view(user: User | None, m: Message) -> bool:
    """Accepted, unhidden messages are public; others only to their author and moderators."""
    if m.visible:
        return True
    if user is None:
        return False
    if user.is_moderator or m.author_id == user.id:
        return True
    return m.review_state == "pending" and not m.hidden  # reviewers see the review queue


# --------------------------------------------------------------------------- handing out tasks


def _random_one(s: Session, stmt):
    return s.scalars(stmt.order_by(func.random()).limit(1)).first()


def next_task(s: Session, settings: Settings, user: User, kind: str) -> Message | None:
    """The message a task is about (None for ``prompt``, or when nothing is available)."""
    if kind == "prompt":
        return None
    child = aliased(Message)
    if kind in ("assistant_reply", "prompter_reply"):
        parent_role = "prompter" if kind == "assistant_reply" else "assistant"
        n_children = (
            select(func.count())
            .where(child.parent_id == Message.id, child.review_state != "rejected")
            .correlate(Message)
            .scalar_subquery()
        )
        mine = exists().where(child.parent_id == Message.id, child.author_id == user.id)
        stmt = select(Message).where(
            visible_filter(),
            Message.role == parent_role,
            Message.depth < MAX_DEPTH,
            (Message.author_id.is_(None)) | (Message.author_id != user.id),
            ~mine,
            n_children < settings.max_replies_per_parent,
        )
        return _random_one(s, stmt)
    if kind == "rank":
        n_visible = (
            select(func.count())
            .where(child.parent_id == Message.id, child.review_state == "accepted", child.hidden.is_(False))
            .correlate(Message)
            .scalar_subquery()
        )
        wrote_child = exists().where(child.parent_id == Message.id, child.author_id == user.id)
        ranked = exists().where(Ranking.parent_id == Message.id, Ranking.user_id == user.id)
        n_rankings = (
            select(func.count()).where(Ranking.parent_id == Message.id).correlate(Message).scalar_subquery()
        )
        stmt = select(Message).where(visible_filter(), n_visible >= 2, ~wrote_child, ~ranked)
        # parents still short of the rankings they need to count come first (as Open-Assistant does)
        stmt = stmt.order_by((n_rankings >= settings.min_rankings).asc(), func.random()).limit(1)
        return s.scalars(stmt).first()
    if kind == "label":
        labelled = exists().where(Label.message_id == Message.id, Label.user_id == user.id)
        stmt = select(Message).where(
            visible_filter(), (Message.author_id.is_(None)) | (Message.author_id != user.id), ~labelled
        )
        return _random_one(s, stmt)
    if kind == "review":
        reviewed = exists().where(Review.message_id == Message.id, Review.user_id == user.id)
        stmt = select(Message).where(
            Message.review_state == "pending",
            Message.hidden.is_(False),
            (Message.author_id.is_(None)) | (Message.author_id != user.id),
            ~reviewed,
        )
        return _random_one(s, stmt)
    raise Refused(f"Không có loại nhiệm vụ '{kind}'.", 404)


# --------------------------------------------------------------------------- limits


def _rate_limit(s: Session, column, owner, user: User, limit: int) -> None:
    since = utcnow() - timedelta(hours=1)
    n = s.scalar(select(func.count()).where(owner == user.id, column >= since)) or 0
    if n >= limit:
        raise Refused(f"Bạn đã gửi {n} lần trong một giờ (giới hạn {limit}). Hãy nghỉ một chút.", 429)


def _require_active(user: User) -> None:
    if user.banned:
        raise Refused("Tài khoản đã bị khóa.", 403)


# --------------------------------------------------------------------------- submissions


def normalise_text(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


@dataclass
class Submission:
    message: Message | None
    checks: CheckResult


def submit_message(
    s: Session,
    settings: Settings,
    user: User,
    text: str,
    parent_id: int | None = None,
    *,
    pii_ack: bool = False,
    origin: str = "human",
    model_name: str | None = None,
    pre: CheckResult | None = None,
) -> Submission:
    """Check and store a prompt (no parent) or a reply; a PII warning needs ``pii_ack`` to pass."""
    if origin == "human":
        _require_active(user)
        _rate_limit(s, Message.created_at, Message.author_id, user, settings.max_messages_per_hour)
    parent = None
    if parent_id is not None:
        parent = s.get(Message, parent_id)
        if parent is None or not parent.visible:
            raise Refused("Tin nhắn gốc không tồn tại hoặc chưa được duyệt.", 404)
        if parent.depth + 1 > MAX_DEPTH:
            raise Refused("Cuộc hội thoại đã đủ dài.", 400)
    text = normalise_text(text)
    checks = check_text(s, settings, text, pre)
    if not checks.ok or (checks.warnings and not pii_ack and origin == "human"):
        return Submission(None, checks)
    role = REPLY_ROLE[parent.role] if parent else "prompter"
    msg = Message(
        parent_id=parent.id if parent else None,
        tree_id=parent.tree_id if parent else None,
        depth=parent.depth + 1 if parent else 0,
        role=role,
        text=text,
        author_id=user.id if origin == "human" else None,
        origin=origin,
        model_name=model_name,
        lang=checks.info.get("lang"),
        lang_score=checks.info.get("lang_score"),
        review_state="accepted" if settings.reviews_needed == 0 else "pending",
        checks={**checks.info, "warnings": checks.warnings},
    )
    s.add(msg)
    s.flush()
    if msg.tree_id is None:
        msg.tree_id = msg.id
    store_signature(s, msg, checks.signature)
    return Submission(msg, checks)


def submit_review(s: Session, settings: Settings, user: User, message_id: int, accept: bool) -> Message:
    _require_active(user)
    msg = s.get(Message, message_id)
    if msg is None or msg.review_state != "pending":
        raise Refused("Tin nhắn này không chờ duyệt.", 404)
    if msg.author_id == user.id:
        raise Refused("Bạn không thể tự duyệt tin nhắn của mình.", 403)
    if s.scalar(select(Review.id).where(Review.message_id == msg.id, Review.user_id == user.id)):
        raise Refused("Bạn đã duyệt tin nhắn này.", 409)
    _rate_limit(s, Review.created_at, Review.user_id, user, settings.max_labels_per_hour)
    s.add(Review(message_id=msg.id, user_id=user.id, accept=accept))
    s.flush()
    votes = s.execute(
        select(Review.accept, func.count()).where(Review.message_id == msg.id).group_by(Review.accept)
    )
    tally = dict(votes.all())
    needed = max(1, settings.reviews_needed)
    if user.is_moderator:  # a moderator's review decides
        msg.review_state = "accepted" if accept else "rejected"
    elif tally.get(True, 0) >= needed:
        msg.review_state = "accepted"
    elif tally.get(False, 0) >= needed:
        msg.review_state = "rejected"
    return msg


def submit_label(
    s: Session, settings: Settings, user: User, message_id: int, flags: dict, quality: int | None
) -> Message:
    _require_active(user)
    msg = s.get(Message, message_id)
    if msg is None or not can_view(user, msg) or msg.review_state == "rejected":
        raise Refused("Không tìm thấy tin nhắn.", 404)
    if msg.author_id == user.id:
        raise Refused("Bạn không thể gắn nhãn tin nhắn của chính mình.", 403)
    if quality is not None and not 1 <= quality <= 5:
        raise Refused("Chất lượng phải từ 1 đến 5.", 400)
    if s.scalar(select(Label.id).where(Label.message_id == msg.id, Label.user_id == user.id)):
        raise Refused("Bạn đã gắn nhãn tin nhắn này.", 409)
    _rate_limit(s, Label.created_at, Label.user_id, user, settings.max_labels_per_hour)
    s.add(
        Label(
            message_id=msg.id,
            user_id=user.id,
            quality=quality,
            **{f: bool(flags.get(f)) for f in FLAG_FIELDS},
        )
    )
    s.flush()
    red = Label.spam | Label.pii | Label.not_vi | Label.inappropriate
    msg.red_flags = s.scalar(select(func.count()).where(Label.message_id == msg.id, red)) or 0
    if msg.red_flags >= settings.hide_after_flags and not msg.hidden:
        msg.hidden = True
        msg.hidden_reason = f"tự động: {msg.red_flags} cờ đỏ"
        s.add(ModerationAction(moderator_id=None, action="auto_hide", target=f"message:{msg.id}",
                               note=msg.hidden_reason))  # fmt: skip
    return msg


def submit_ranking(s: Session, settings: Settings, user: User, parent_id: int, order: list[int]) -> Ranking:
    """Store ``order`` (best first), which must be every visible reply of the parent exactly once."""
    _require_active(user)
    parent = s.get(Message, parent_id)
    if parent is None or not parent.visible:
        raise Refused("Không tìm thấy tin nhắn.", 404)
    children = visible_children(s, parent_id)
    ids = {c.id for c in children}
    if len(ids) < 2:
        raise Refused("Cần ít nhất hai câu trả lời để xếp hạng.", 400)
    if any(c.author_id == user.id for c in children):
        raise Refused("Bạn không thể xếp hạng khi có câu trả lời của chính mình.", 403)
    if len(order) != len(set(order)) or set(order) != ids:
        raise Refused("Mỗi câu trả lời phải có đúng một hạng khác nhau.", 400)
    if s.scalar(select(Ranking.id).where(Ranking.parent_id == parent_id, Ranking.user_id == user.id)):
        raise Refused("Bạn đã xếp hạng các câu trả lời này.", 409)
    _rate_limit(s, Ranking.created_at, Ranking.user_id, user, settings.max_rankings_per_hour)
    ranking = Ranking(parent_id=parent_id, user_id=user.id, order=list(order))
    s.add(ranking)
    s.flush()
    return ranking


# --------------------------------------------------------------------------- drafts


def save_draft(s: Session, user: User, kind: str, text: str, parent_id: int | None) -> Draft:
    _require_active(user)
    if len(text) > 20000:
        raise Refused("Bản nháp quá dài.", 400)
    draft = Draft(user_id=user.id, kind=kind, parent_id=parent_id, text=text)
    s.add(draft)
    s.flush()
    return draft


def own_draft(s: Session, user: User, draft_id: int) -> Draft:
    """A draft of ``user``'s; another user's draft is "not found" (its existence is not revealed)."""
    draft = s.get(Draft, draft_id)
    if draft is None or draft.user_id != user.id:
        raise Refused("Không tìm thấy bản nháp.", 404)
    return draft


# --------------------------------------------------------------------------- moderation


MOD_ACTIONS = ("hide", "unhide", "accept", "reject")


def moderate_message(s: Session, moderator: User, message_id: int, action: str, note: str = "") -> Message:
    if not moderator.is_moderator:
        raise Refused("Chỉ người kiểm duyệt mới làm được việc này.", 403)
    msg = s.get(Message, message_id)
    if msg is None:
        raise Refused("Không tìm thấy tin nhắn.", 404)
    if action == "hide":
        msg.hidden, msg.hidden_reason = True, f"người kiểm duyệt: {note}"[:200]
    elif action == "unhide":
        msg.hidden, msg.hidden_reason = False, None
    elif action in ("accept", "reject"):
        msg.review_state = "accepted" if action == "accept" else "rejected"
    else:
        raise Refused(f"Không có thao tác '{action}'.", 400)
    s.add(
        ModerationAction(
            moderator_id=moderator.id, action=action, target=f"message:{msg.id}", note=note[:500]
        )
    )
    return msg


def set_user_state(
    s: Session, admin: User, user_id: int, *, role: str | None = None, banned: bool | None = None
) -> User:
    """Roles are the admin's; banning is a moderator's (but not of moderators)."""
    target = s.get(User, user_id)
    if target is None:
        raise Refused("Không tìm thấy người dùng.", 404)
    if role is not None:
        if admin.role != "admin":
            raise Refused("Chỉ quản trị viên đổi được vai trò.", 403)
        if role not in ("contributor", "moderator", "admin"):
            raise Refused("Vai trò không hợp lệ.", 400)
        target.role = role
        s.add(ModerationAction(moderator_id=admin.id, action=f"role:{role}", target=f"user:{target.id}"))
    if banned is not None:
        if not admin.is_moderator or (target.is_moderator and admin.role != "admin"):
            raise Refused("Bạn không có quyền khóa tài khoản này.", 403)
        target.banned = banned
        s.add(
            ModerationAction(
                moderator_id=admin.id, action="ban" if banned else "unban", target=f"user:{target.id}"
            )
        )
    return target
