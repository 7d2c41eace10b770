"""Credential redaction (vinaforge.redact): every shape of key issue 10.8 and issue 9 care about."""

from __future__ import annotations

import logging

import pytest

from vinaforge.redact import redact_obj, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("http://user:sk-abc123@host:8000/v1", "http://user:***@host:8000/v1"),
        ("https://ghp_abcdefghijklmnop1234@github.com/o/r.git", "https://***@github.com/o/r.git"),
        ("https://h.example/v1?api_key=XYZ&model=m", "https://h.example/v1?api_key=***&model=m"),
        ("https://h.example/v1?X-Api-Key=XYZ", "https://h.example/v1?X-Api-Key=***"),
        ("http://localhost:8000/v1", "http://localhost:8000/v1"),  # nothing secret: unchanged
        ("postgresql://app:pw@db:5432/collect", "postgresql://app:***@db:5432/collect"),
    ],
)
def test_redact_url(url, want):
    assert redact_url(url) == want


def test_redact_text_finds_urls_and_bare_keys_in_prose():
    text = (
        "cannot reach http://alice:s3cret@llm:8000/v1 (key sk-proj-ABCDEFGHIJKLMNOPQRST, "
        "hf_abcdefghijklmnopqrstu); Authorization: Bearer eyJ0eXAiOiJKV1QiLCJh0"
    )
    out = redact_text(text)
    for secret in ("s3cret", "ABCDEFGHIJKLMNOPQRST", "abcdefghijklmnopqrstu", "eyJ0eXAiOiJKV1QiLCJh0"):
        assert secret not in out
    assert "http://alice:***@llm:8000/v1" in out and "sk-proj-***" in out
    prose = "Người bán buôn bearer instruments; see https://vi.wikipedia.org/wiki/Hà_Nội"
    assert redact_text(prose) == prose


def test_redact_obj_keeps_structure():
    obj = {"a": ["http://u:p@h/x", 3, {"b": "sk-abcdefghijklmnop"}], "n": 1.5, "t": ("x",)}
    assert redact_obj(obj) == {"a": ["http://u:***@h/x", 3, {"b": "sk-***"}], "n": 1.5, "t": ["x"]}


def test_log_files_are_redacted(tmp_path):
    from vinaforge.logs import log_to_file

    log = logging.getLogger("vinaforge.test_redact")
    with log_to_file(tmp_path / "log.txt"):
        log.warning("endpoint %s is slow", "http://bob:hunter2@api:9/v1")
    assert "hunter2" not in (tmp_path / "log.txt").read_text()
    assert "bob:***@api" in (tmp_path / "log.txt").read_text()
