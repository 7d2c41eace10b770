"""Credential redaction for everything vinaforge records or prints.

An endpoint URL such as ``http://user:sk-abc@host/v1`` or ``https://host/v1?api_key=...``
carries its secret inside the string; once it reaches a manifest, a report or a log line
the key is leaked. Every writer of recorded or printed text (manifest, summary, report,
stage logs, console errors) passes it through :func:`redact_text` / :func:`redact_obj`.

Hand-written: a few regular expressions over the standard library's URL rules. Logging
libraries redact by field name, not inside free text, and no well-kept package covers
"credentials embedded in URLs anywhere in a string".
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

# Query parameters whose value is a credential (compared lower-case, '-' treated as '_').
SECRET_PARAMS = frozenset(
    {
        "key", "api_key", "apikey", "token", "access_token", "auth", "auth_token",
        "secret", "client_secret", "password", "passwd", "pwd", "sig", "signature",
        "x_api_key", "code", "refresh_token", "id_token",
    }
)  # fmt: skip

# scheme://userinfo@ ... : the userinfo part holds credentials.
_URL_RE = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>`]+")
# Bare keys in free text, in the shapes the big providers issue (OpenAI sk-, HF hf_, GitHub ghp_ ...).
_BARE_KEY_RE = re.compile(
    r"\b(sk-(?:proj-|ant-)?|hf_|ghp_|gho_|ghs_|github_pat_|xox[abpr]-|AKIA)[A-Za-z0-9_\-]{12,}"
)
# A bearer token: long, and with a digit (so that "bearer instruments" in prose is left alone).
_BEARER_RE = re.compile(r"(?i)\b(bearer|authorization:)\s+(?=[A-Za-z._~+/=\-]*\d)[A-Za-z0-9._~+/=\-]{12,}")


def _redact_netloc(netloc: str) -> str:
    if "@" not in netloc:
        return netloc
    userinfo, _, host = netloc.rpartition("@")
    user, sep, _password = userinfo.partition(":")
    # A user name with a password is usually harmless; a lone user part is often the token itself.
    return f"{user}:{MASK}@{host}" if sep and user else f"{MASK}@{host}"


def _redact_query(query: str) -> str:
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(k.lower().replace("-", "_") in SECRET_PARAMS for k, _ in pairs):
        return query
    cleaned = [(k, MASK if k.lower().replace("-", "_") in SECRET_PARAMS else v) for k, v in pairs]
    return urlencode(cleaned, safe="*")


def redact_url(url: str) -> str:
    """``url`` with any password/userinfo and secret query values replaced by ``***``.

    >>> redact_url("http://user:sk-abc@host:8000/v1")
    'http://user:***@host:8000/v1'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return _BARE_KEY_RE.sub(lambda m: m.group(1) + MASK, url)
    netloc = _redact_netloc(parts.netloc)
    query = _redact_query(parts.query)
    if netloc == parts.netloc and query == parts.query:
        out = url
    else:
        out = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return _BARE_KEY_RE.sub(lambda m: m.group(1) + MASK, out)


def redact_text(text: str) -> str:
    """``text`` with every URL credential, bare provider key and bearer token masked."""
    if not isinstance(text, str) or not text:
        return text
    out = _URL_RE.sub(lambda m: redact_url(m.group(0)), text)
    out = _BARE_KEY_RE.sub(lambda m: m.group(1) + MASK, out)
    return _BEARER_RE.sub(lambda m: f"{m.group(1)} {MASK}", out)


def redact_obj(obj: Any) -> Any:
    """A copy of a JSON-like structure (dicts, lists, strings) with every string redacted."""
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    return obj
