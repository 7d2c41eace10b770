"""``vinaforge text``: Unix-style commands that survive bad input and say what they did."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from vinaforge.text.cli import app
from vinaforge.text.legacy import encode_legacy

runner = CliRunner()

BAD_INPUT = (
    "Hoà bình và khoẻ mạnh\n".encode()
    + b"bad \xff\xfe bytes \xc3 here\n"
    + b"NUL\x00inside\x00\n"
    + b"\n"
    + "中文 và tiếng Việt trộn lẫn 汉语\n".encode()
    + encode_legacy("Trường Đại học Bách khoa", "tcvn3").encode("latin-1")
    + b"\r\n"
    + b"last line without newline"
)
N_LINES = 7


def _run(args: list[str], data: bytes):
    result = runner.invoke(app, args, input=data)
    assert result.exit_code == 0, result.output
    return result


def test_normalize_keeps_one_line_per_input_line() -> None:
    result = _run(["normalize"], BAD_INPUT)
    lines = result.stdout_bytes.decode("utf-8").split("\n")
    assert lines[-1] == "" and len(lines) - 1 == N_LINES
    assert lines[0] == "Hòa bình và khỏe mạnh"
    assert "\ufffd" in lines[1]
    assert lines[2] == "NULinside"
    assert lines[3] == ""
    assert lines[4] == "中文 và tiếng Việt trộn lẫn 汉语"
    assert lines[5] == "Trường Đại học Bách khoa"
    assert lines[6] == "last line without newline"
    err = result.stderr
    assert "normalized 7 lines" in err
    assert "1 line had invalid UTF-8 (replaced)" in err
    assert "1 line had NUL bytes" in err
    assert "1 empty line (kept)" in err
    assert "read as tcvn3 bytes" in err


def test_normalize_options() -> None:
    out = _run(["normalize", "--tone-style", "new", "--from-legacy", "none"], "hòa thủy\n".encode())
    assert out.stdout_bytes.decode() == "hoà thuỷ\n"
    vni = encode_legacy("Việt Nam", "vni").encode("latin-1")
    assert _run(["normalize", "--from-legacy", "vni"], vni).stdout_bytes.decode() == "Việt Nam\n"
    bad = runner.invoke(app, ["normalize", "--tone-style", "modern"], input=b"x\n")
    assert bad.exit_code != 0
    assert "tone-style" in bad.output


def test_empty_input() -> None:
    for cmd in (["normalize"], ["langid"]):
        result = _run(cmd, b"")
        assert result.stdout_bytes == b""
        assert "input was empty" in result.stderr
    stats = json.loads(_run(["stats"], b"").stdout)
    assert stats["total"]["docs"] == 0


def test_langid_one_label_per_line() -> None:
    result = _run(["langid"], BAD_INPUT)
    rows = result.stdout_bytes.decode().splitlines()
    assert len(rows) == N_LINES
    labels = [r.split("\t")[0] for r in rows]
    assert labels[0] == "vi" and labels[3] == "other" and labels[5] == "vi"  # TCVN3 bytes decoded
    assert all(0.0 <= float(r.split("\t")[1]) <= 1.0 for r in rows)
    assert "identified 7 lines" in result.stderr


def test_stats_json(tmp_path) -> None:
    txt = tmp_path / "a.txt"
    txt.write_bytes(BAD_INPUT)
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text(
        "\n".join(
            json.dumps({"text": t}, ensure_ascii=False)
            for t in ["Xin chào Việt Nam", "Hello there my friend"]
        ),
        encoding="utf-8",
    )
    result = _run(["stats", str(txt), str(jsonl)], b"")
    stats = json.loads(result.stdout)
    assert stats["files"][str(txt)]["docs"] == N_LINES
    assert stats["files"][str(jsonl)]["docs"] == 2
    assert stats["total"]["docs"] == N_LINES + 2
    assert stats["input"]["invalid_utf8_lines"] == 1
    assert set(stats["total"]) >= {"chars", "syllables", "valid_syllable_ratio", "language_shares"}


def test_missing_file_and_bad_jsonl(tmp_path) -> None:
    result = runner.invoke(app, ["normalize", str(tmp_path / "nope.txt")])
    assert result.exit_code != 0 and "no such file" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{broken\n', encoding="utf-8")
    result = runner.invoke(app, ["stats", str(bad)])
    assert result.exit_code != 0 and "bad.jsonl:2" in result.output


@pytest.mark.slow
def test_50_mb_single_line(tmp_path) -> None:
    """A 50 MB line goes through the real command line (stdin to stdout) without trouble."""
    unit = "Hoà bình và khoẻ mạnh cho mọi người dân Việt Nam. "
    line = (unit * (50_000_000 // len(unit.encode()) + 1)).encode()
    path = tmp_path / "big.txt"
    path.write_bytes(line + b"\nsecond\n")
    with open(path, "rb") as fh:
        proc = subprocess.run(
            [sys.executable, "-m", "vinaforge", "text", "normalize"],
            stdin=fh,
            capture_output=True,
            timeout=300,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.split(b"\n")
    assert len(out) == 3 and out[1] == b"second"
    assert len(out[0]) >= 50_000_000 - 2
    assert out[0].startswith("Hòa bình và khỏe mạnh".encode())
    assert b"normalized 2 lines" in proc.stderr
