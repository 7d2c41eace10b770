"""Settings of the collection app: one pydantic model, read from ``VINAFORGE_COLLECT_*`` env vars.

Secrets (the database password inside ``database_url``, ``secret_key``) come only from the
environment and are never logged: :meth:`Settings.public` is what logs and pages may show.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

ENV_PREFIX = "VINAFORGE_COLLECT_"


class Settings(BaseModel):
    """Everything an operator may tune; defaults give a working app with no set-up (SQLite)."""

    database_url: str = Field(
        "sqlite:///collect.db", description="SQLAlchemy URL (sqlite or postgresql+psycopg)"
    )
    secret_key: str | None = Field(None, description="HMAC key; generated and kept in the database if unset")
    cookie_secure: bool = Field(False, description="mark cookies Secure (set true behind HTTPS)")
    session_days: int = Field(14, ge=1)
    # passwords (argon2id; OWASP's minimum is m=19 MiB, t=2, p=1; argon2-cffi's default is stronger)
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(65536, ge=8)
    min_password_len: int = Field(8, ge=1)
    # brute force: failed logins per account / per client address within the window
    login_max_failures: int = Field(5, ge=1)
    login_max_failures_per_ip: int = Field(20, ge=1)
    login_window_s: int = Field(900, ge=1)
    # rate limits per user, per hour
    max_messages_per_hour: int = Field(40, ge=1)
    max_rankings_per_hour: int = Field(60, ge=1)
    max_labels_per_hour: int = Field(120, ge=1)
    max_signups_per_ip_hour: int = Field(20, ge=1)
    # the JSON API of the community loop (bearer tokens): calls per token per hour, prompts per push
    max_api_calls_per_hour: int = Field(600, ge=1)
    max_api_items: int = Field(500, ge=1)
    # review and moderation
    reviews_needed: int = Field(
        2, ge=0, description="accepting reviews before a message joins its tree (0: none)"
    )
    hide_after_flags: int = Field(3, ge=1, description="red flags from distinct users that hide a message")
    min_rankings: int = Field(3, ge=1, description="independent rankings before a parent's ranking counts")
    max_replies_per_parent: int = Field(4, ge=2)
    # automatic checks
    min_chars: int = Field(8, ge=1)
    max_chars: int = Field(6000, ge=10)
    language: str = "vi"
    min_language_score: float = Field(0.5, ge=0, le=1)
    max_flagged_ratio: float = Field(0.02, ge=0, le=1)
    near_dup_threshold: float = Field(0.6, ge=0, le=1, description="estimated Jaccard of 3-syllable shingles")
    # export
    license: str = "CC-BY-4.0"
    terms_version: str = "2026-11"
    low_agreement_tau: float = Field(0.2, description="moderator view: raters below this mean tau")
    stats_refresh_s: float = Field(
        5.0, ge=0, description="leaderboard/consensus recomputed at most this often"
    )

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Defaults, then ``VINAFORGE_COLLECT_<FIELD>`` env vars, then explicit overrides."""
        values: dict = {}
        for name in cls.model_fields:
            env = os.environ.get(ENV_PREFIX + name.upper())
            if env is not None:
                values[name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    def public(self) -> dict:
        """Settings safe to show: no secret key, no database password."""
        out = self.model_dump(exclude={"secret_key"})
        out["database_url"] = redact_url(self.database_url)
        return out


def redact_url(url: str) -> str:
    """``postgresql+psycopg://u:***@host/db``: a database URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show nothing of it
        return "<invalid database url>"


def sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return (
        Path(u.database)
        if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:")
        else None
    )
