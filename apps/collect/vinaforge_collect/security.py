"""Passwords, login sessions, API tokens, CSRF tokens, brute-force and rate limits.

Libraries: ``argon2-cffi`` hashes passwords (argon2id, with rehash-on-login when the cost
settings change). Hand-written, because they are a few lines over the database: sessions
(a random 256-bit token in an HttpOnly, SameSite=Lax cookie; only its SHA-256 is stored, so a
leaked table opens no session), API bearer tokens (the same scheme, shown once at creation),
CSRF tokens (HMAC of the visitor's cookie, the "signed double
submit" pattern: no server state, bound to one browser, rotated at login), and the counters for
brute force and rate limits (rows counted in a time window, so they hold across workers).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vinaforge_collect.config import Settings
from vinaforge_collect.models import AuthSession, LoginAttempt, User, utcnow

SESSION_COOKIE = "vf_session"
VISITOR_COOKIE = "vf_visitor"
USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")

# A valid hash to verify against when the user does not exist, so that "no such user" and
# "wrong password" take the same time.
_DUMMY_PASSWORD = "not-a-real-password"


class Passwords:
    def __init__(self, settings: Settings):
        self.hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib
        )
        self._dummy = self.hasher.hash(_DUMMY_PASSWORD)

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        try:
            return self.hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self.hasher.check_needs_rehash(stored)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def create_session(s: Session, user: User, days: int) -> str:
    token = new_token()
    s.add(
        AuthSession(token_hash=token_hash(token), user_id=user.id, expires_at=utcnow() + timedelta(days=days))
    )
    return token


def session_user(s: Session, token: str | None) -> User | None:
    if not token or len(token) > 100:
        return None
    row = s.get(AuthSession, token_hash(token))
    if row is None or row.expires_at < utcnow() or row.user.banned:
        return None
    return row.user


def end_session(s: Session, token: str | None) -> None:
    if token:
        row = s.get(AuthSession, token_hash(token))
        if row is not None:
            s.delete(row)


API_TOKEN_PREFIX = "vfc_"


def create_api_token(s: Session, user: User, name: str = "") -> str:
    """A new bearer token for ``user``; returned once, only its SHA-256 is stored.

    SHA-256 rather than argon2: the token is 256 random bits, so there is nothing to guess
    and a slow hash would only slow every API call down.
    """
    from vinaforge_collect.models import ApiToken

    token = API_TOKEN_PREFIX + new_token()
    s.add(ApiToken(token_hash=token_hash(token), user_id=user.id, name=name[:80]))
    return token


def api_token_of(s: Session, token: str | None):
    """The live :class:`ApiToken` row of a bearer token (not revoked), or None."""
    from vinaforge_collect.models import ApiToken

    if not token or len(token) > 100 or not token.startswith(API_TOKEN_PREFIX):
        return None
    row = s.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    return None if row is None or row.revoked else row


def csrf_token(secret: str, cookie_value: str) -> str:
    return hmac.new(secret.encode(), b"csrf:" + cookie_value.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: str, cookie_value: str | None, submitted: str | None) -> bool:
    if not cookie_value or not submitted:
        return False
    return hmac.compare_digest(csrf_token(secret, cookie_value), submitted)


def anonymous_id(secret: str, user_id: int) -> str:
    """A stable pseudonym for exports: not reversible without the deployment's secret."""
    return "r_" + hmac.new(secret.encode(), f"rater:{user_id}".encode(), hashlib.sha256).hexdigest()[:16]


def valid_username(name: str) -> str | None:
    """The reason a username is refused, or None."""
    if not 3 <= len(name) <= 40:
        return "Tên đăng nhập cần 3–40 ký tự."
    if not set(name) <= USERNAME_CHARS:
        return "Tên đăng nhập chỉ gồm chữ thường không dấu, số và . _ -"
    return None


def login_blocked(s: Session, settings: Settings, username: str, client: str) -> bool:
    """Too many recent failures for this account, or from this client address."""
    since = utcnow() - timedelta(seconds=settings.login_window_s)
    failures = (
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.ok.is_(False), LoginAttempt.created_at >= since)
    )
    by_user = s.scalar(failures.where(LoginAttempt.username == username)) or 0
    by_client = s.scalar(failures.where(LoginAttempt.client == client)) or 0
    return by_user >= settings.login_max_failures or by_client >= settings.login_max_failures_per_ip


def record_login(s: Session, username: str, client: str, ok: bool) -> None:
    s.add(LoginAttempt(username=username[:40], client=client[:64], ok=ok))


def count_since(s: Session, column, owner_column, owner_id: int, since: datetime) -> int:
    return s.scalar(select(func.count()).where(owner_column == owner_id, column >= since)) or 0
