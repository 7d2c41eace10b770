"""One conversation type for every stage: OpenAI-style ``messages`` (system / user / assistant).

SFT, preference tuning, serving, translation, synthesis, the judge and the collection app all
exchange conversations in this shape, so a record read once is valid everywhere. Validation is
strict and explains itself: a record with a bad role order, an empty turn, no final assistant
turn or non-text content is rejected with a reason, never silently repaired.

Hand-written: the shape is OpenAI's; the validation rules are the ones our trainers need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant")


class ConversationError(ValueError):
    """A record that is not a valid conversation; the message says why."""


@dataclass
class Conversation:
    """A list of ``{"role", "content"}`` messages plus the record's id and pass-through fields."""

    messages: list[dict[str, str]]
    id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def system(self) -> str | None:
        return self.messages[0]["content"] if self.messages and self.messages[0]["role"] == "system" else None

    @property
    def turns(self) -> list[dict[str, str]]:
        """Messages without the system prompt."""
        return self.messages[1:] if self.system is not None else list(self.messages)

    @property
    def prompt_messages(self) -> list[dict[str, str]]:
        """Everything before the final assistant reply: what a model is asked to continue."""
        if self.messages and self.messages[-1]["role"] == "assistant":
            return self.messages[:-1]
        return list(self.messages)

    @property
    def last_reply(self) -> str | None:
        return self.messages[-1]["content"] if self.messages and self.messages[-1]["role"] == "assistant" else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"messages": self.messages}
        if self.id is not None:
            out["id"] = self.id
        out.update({k: v for k, v in self.meta.items() if k not in out})
        return out


@dataclass
class Preference:
    """A prompt (messages ending with a user turn) with a preferred and a dispreferred reply.

    ``chosen`` and ``rejected`` are assistant message lists (usually one message each), the
    conversational form TRL's DPO/ORPO/reward trainers take.
    """

    prompt: list[dict[str, str]]
    chosen: list[dict[str, str]]
    rejected: list[dict[str, str]]
    id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        if self.id is not None:
            out["id"] = self.id
        out.update({k: v for k, v in self.meta.items() if k not in out})
        return out


@dataclass
class Rejected:
    """A record that could not be used, kept with where it came from and why."""

    source: str  # "file:line" or "hf:name[split]#index"
    reason: str
    record: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "reason": self.reason, "record": self.record}


def _check_message(msg: Any, index: int) -> dict[str, str]:
    if not isinstance(msg, dict):
        raise ConversationError(f"message {index} is {type(msg).__name__}, not an object with role/content")
    role, content = msg.get("role"), msg.get("content")
    if role not in ROLES:
        raise ConversationError(f"message {index} has role {role!r}; expected one of {', '.join(ROLES)}")
    if not isinstance(content, str):
        raise ConversationError(
            f"message {index} ({role}) has non-text content ({type(content).__name__}); only text is supported"
        )
    if not content.strip():
        raise ConversationError(f"message {index} ({role}) is empty")
    return {"role": role, "content": content}


def validate_messages(messages: Any, *, require_reply: bool = True) -> list[dict[str, str]]:
    """Return clean ``{"role", "content"}`` dicts or raise :class:`ConversationError`.

    Rules: an optional system message first; then user and assistant strictly alternating,
    starting with user; with ``require_reply`` the last message is an assistant reply, otherwise
    the last message is a user turn (a prompt awaiting a reply) or an assistant turn.
    """
    if not isinstance(messages, list) or not messages:
        raise ConversationError("no messages")
    clean = [_check_message(m, i) for i, m in enumerate(messages)]
    body = clean[1:] if clean[0]["role"] == "system" else clean
    if not body:
        raise ConversationError("only a system message")
    for i, msg in enumerate(body):
        expected = "user" if i % 2 == 0 else "assistant"
        if msg["role"] != expected:
            offset = len(clean) - len(body)
            raise ConversationError(
                f"bad role order: message {i + offset} is {msg['role']!r} where {expected!r} was expected"
            )
    if require_reply and body[-1]["role"] != "assistant":
        raise ConversationError("no final assistant turn")
    return clean


def validate_preference(pref: Preference) -> Preference:
    """Check a preference pair: a prompt ending in a user turn and two different replies."""
    prompt = validate_messages(pref.prompt, require_reply=False)
    if prompt[-1]["role"] != "user":
        raise ConversationError("preference prompt must end with a user turn")
    chosen = [_check_message(m, i) for i, m in enumerate(pref.chosen)]
    rejected = [_check_message(m, i) for i, m in enumerate(pref.rejected)]
    for name, reply in (("chosen", chosen), ("rejected", rejected)):
        if not reply or any(m["role"] != "assistant" for m in reply):
            raise ConversationError(f"{name} must be assistant message(s)")
    if [m["content"].strip() for m in chosen] == [m["content"].strip() for m in rejected]:
        raise ConversationError("chosen == rejected")
    return Preference(prompt, chosen, rejected, pref.id, pref.meta)
