"""Client of the collection app's loop API: push model replies to be ranked, fetch the rankings.

The app (``apps/collect``, a separate deployable) exposes, for a moderator's or admin's API token:

- ``POST /api/loop/replies`` ``{"model", "items": [{"prompt": [messages], "replies": [...]}]}`` →
  ``{"items": [{"parent_id", "reply_ids": [...], "rejected": [{"reply", "reasons"}], "error"}],
  "counts": {...}}``, one result per item in order: each prompt becomes (or is matched to) a
  prompt message with the replies as model-origin children, ready for ranking; replies refused
  by the app's checks are listed with their reasons; a refused prompt has ``parent_id: null``
  and an ``error``;
- ``GET /api/loop/rankings?parent_ids=1,2&min_rankings=3`` → ``{"items": [{"parent_id",
  "prompt", "replies", "ranks", "reply_ids", "n_rankings", ...}], "waiting": [{"parent_id",
  "n_rankings"}], "missing": [...], "min_rankings"}``: ranked lists (best first, ties share a
  rank) for parents with enough independent rankings (consensus by Ranked Pairs).

The server side is the collection app's ``api.py`` (``apps/collect``); docs/collect.md documents both.

vinaforge never imports the app: this module speaks HTTP only. Hand-written glue over ``httpx``.
"""

from __future__ import annotations

from typing import Any

import httpx

from vinaforge.redact import redact_url


class AppError(RuntimeError):
    """The collection app refused or could not be reached; the message names the URL (redacted)."""


def _client(url: str, token: str) -> httpx.Client:
    if not token:
        raise AppError("the collection app needs an API token: set the variable named by ranker.app_token_env")
    return httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=30.0)


def _check(resp: httpx.Response, url: str) -> dict[str, Any]:
    if resp.status_code in (401, 403):
        raise AppError(f"{redact_url(url)} refused the API token (HTTP {resp.status_code})")
    if resp.status_code >= 400:
        raise AppError(f"{redact_url(url)}: HTTP {resp.status_code}: {resp.text[:200]}")
    return resp.json()


def push_replies(url: str, token: str, samples: list[dict], model: str) -> dict[str, Any]:
    """Create (or match) each prompt in the app with the sampled replies as model replies."""
    items = [{"prompt": s["messages"], "replies": s["replies"]} for s in samples]
    try:
        with _client(url, token) as c:
            pushed = _check(c.post("/api/loop/replies", json={"model": model, "items": items}), url)
    except httpx.HTTPError as err:
        raise AppError(f"cannot reach the collection app at {redact_url(url)}: {err}") from err
    results = pushed.get("items", [])
    if not any(r.get("parent_id") is not None for r in results):
        first = next((r.get("error") for r in results if r.get("error")), "no item stored")
        raise AppError(f"{redact_url(url)} refused every prompt (first reason: {first})")
    return pushed


def fetch_rankings(url: str, token: str, pushed: dict[str, Any], min_rankings: int) -> list[dict]:
    """Ranked lists of the pushed prompts that people have ranked often enough."""
    ids = ",".join(str(i["parent_id"]) for i in pushed.get("items", []) if i.get("parent_id") is not None)
    try:
        with _client(url, token) as c:
            data = _check(c.get("/api/loop/rankings", params={"parent_ids": ids, "min_rankings": min_rankings}), url)
    except httpx.HTTPError as err:
        raise AppError(f"cannot reach the collection app at {redact_url(url)}: {err}") from err
    return [{"prompt": it["prompt"], "replies": it["replies"], "ranks": it["ranks"], "ranked_by": "people",
             "parent_id": it["parent_id"], "n_rankings": it.get("n_rankings")}
            for it in data.get("items", [])]  # fmt: skip
