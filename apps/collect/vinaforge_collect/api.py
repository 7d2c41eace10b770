"""The JSON API of the community loop: ``POST /api/loop/replies`` and ``GET /api/loop/rankings``.

Bearer tokens only (``Authorization: Bearer vfc_…``, made by ``vinaforge collect token create``).
Cookies are never read here, so a logged-in browser cannot be made to call the API on someone's
behalf; that is why these routes need no CSRF token. Every route needs a live token of a
moderator or admin: 401 without one, 403 for other roles or banned users, 429 past the
per-token hourly limit (``max_api_calls_per_hour``, counted in ``api_calls`` like the app's
other rate limits) or after too many bad tokens from one address (the login brute-force
counters). Errors are JSON ``{"error": "..."}``.

The client is :mod:`vinaforge.loop.app`; the request and response shapes are documented in
``docs/collect.md`` and kept in sync with it. FastAPI routes and validates (pydantic models,
422 naming the field); the database work is :mod:`vinaforge_collect.loop`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vinaforge_collect import loop
from vinaforge_collect.config import Settings
from vinaforge_collect.db import Database
from vinaforge_collect.models import ApiCall, ApiToken, LoginAttempt, utcnow
from vinaforge_collect.security import api_token_of, record_login

API_PREFIX = "/api/"
BAD_TOKEN_KEY = "+api"  # failed token attempts share the login attempts table, per client address
MAX_PARENT_IDS = 1000


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class PushItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: list[dict[str, Any]] = Field(
        ..., min_length=1, description="OpenAI-style messages ending with a user turn"
    )
    replies: list[str] = Field(..., min_length=1, max_length=64)


class PushRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        ..., min_length=1, max_length=200, description="the policy's name, kept with each reply"
    )
    items: list[PushItem] = Field(..., min_length=1)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _bad_tokens_from(s: Session, settings: Settings, client: str) -> int:
    """Bad tokens sent from this address lately (per address only: a shared counter would let
    anyone lock the API for everybody)."""
    since = utcnow() - timedelta(seconds=settings.login_window_s)
    return (
        s.scalar(
            select(func.count()).where(
                LoginAttempt.username == BAD_TOKEN_KEY, LoginAttempt.client == client,
                LoginAttempt.ok.is_(False), LoginAttempt.created_at >= since,
            )
        )
        or 0
    )  # fmt: skip


def mount_api(app: FastAPI, db: Database, settings: Settings) -> None:
    """Add the ``/api`` routes and their JSON error handler to the web app."""

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        if not request.url.path.startswith(API_PREFIX):  # the pages keep FastAPI's own answer
            return await request_validation_exception_handler(request, exc)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}",
                             "detail": jsonable_encoder(exc.errors())}, status_code=422)  # fmt: skip

    def api_caller(request: Request) -> ApiToken:
        """The token of the request, after the authentication, role and rate-limit checks."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        client = _client(request)
        with db.read() as s:
            if _bad_tokens_from(s, settings, client) >= settings.login_max_failures_per_ip:
                raise ApiError(429, "too many bad API tokens from this address; try again later")
            row = api_token_of(s, token.strip()) if scheme.lower() == "bearer" else None
        if row is None:
            if token:
                with db.write() as s:
                    record_login(s, BAD_TOKEN_KEY, client, False)
            raise ApiError(401, "a valid API token is needed: Authorization: Bearer <token> "
                                "(vinaforge collect token create --user NAME)")  # fmt: skip
        if row.user.banned or not row.user.is_moderator:
            raise ApiError(403, "the loop API is for moderators and admins")
        with db.write() as s:
            since = utcnow() - timedelta(hours=1)
            n = (
                s.scalar(select(func.count()).where(ApiCall.token_id == row.id, ApiCall.created_at >= since))
                or 0
            )
            if n >= settings.max_api_calls_per_hour:
                raise ApiError(429, f"{n} API calls in the last hour with this token (limit "
                                    f"{settings.max_api_calls_per_hour}); try again later")  # fmt: skip
            s.add(ApiCall(token_id=row.id, route=request.url.path[:64]))
            s.get(ApiToken, row.id).last_used_at = utcnow()
        return row

    router = APIRouter(prefix="/api/loop")

    @router.post("/replies")
    def push_replies(body: PushRequest, _caller: ApiToken = Depends(api_caller)) -> dict:
        if len(body.items) > settings.max_api_items:
            raise ApiError(413, f"{len(body.items)} items in one push; at most {settings.max_api_items}")
        items = [{"prompt": it.prompt, "replies": it.replies} for it in body.items]
        return loop.push_replies(db, settings, body.model, items)

    @router.get("/rankings")
    def rankings(
        parent_ids: str = Query(..., description="comma-separated message ids"),
        min_rankings: int | None = Query(None, ge=1),
        _caller: ApiToken = Depends(api_caller),
    ) -> dict:
        try:
            ids = [int(x) for x in parent_ids.split(",") if x.strip()]
        except ValueError:
            raise ApiError(400, "parent_ids: expected comma-separated message ids, e.g. 12,13") from None
        if not ids or len(ids) > MAX_PARENT_IDS:
            raise ApiError(400, f"parent_ids: give 1 to {MAX_PARENT_IDS} ids")
        with db.read() as s:
            return loop.ranked_lists(s, settings, ids, min_rankings or settings.min_rankings)

    app.include_router(router)
