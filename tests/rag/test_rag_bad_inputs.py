"""Issue 22: wrong inputs to ``vinaforge rag index|ask|eval`` are one-line errors naming the file or
option, and nothing of the user's is overwritten."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from vinaforge.cli import app

DOCS = Path(__file__).resolve().parents[2] / "examples" / "corpus" / "vi_docs.jsonl"


def run(*args: str):
    result = CliRunner().invoke(app, ["rag", *args])
    assert "Traceback" not in result.output
    return result


def test_index_refuses_a_folder_that_is_not_an_index(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine", encoding="utf-8")
    r = run("index", str(DOCS), "-o", str(precious))
    assert r.exit_code != 0 and (precious / "notes.txt").read_text(encoding="utf-8") == "mine"
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    r = run("index", str(DOCS), "-o", str(tmp_path / "afile" / "idx"))
    assert r.exit_code != 0 and "afile" in r.output


def test_invalid_utf8_past_8kb_names_the_line(tmp_path):
    lines = [f'{{"text": "Câu số {i} nói về Hà Nội và phở bò của người Việt."}}' for i in range(300)]
    data = ("\n".join(lines[:200]) + "\n").encode("utf-8") + b'{"text": "h\xffng"}\n'
    data += ("\n".join(lines[200:]) + "\n").encode("utf-8")
    assert len(data) > 8192
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(data)
    r = run("index", str(bad), "-o", str(tmp_path / "idx"))
    assert r.exit_code != 0 and "bad.jsonl:201" in r.output and "UTF-8" in r.output


def test_ask_and_eval_refuse_nonsense_options(tmp_path):
    idx = tmp_path / "idx"
    assert run("index", str(DOCS), "-o", str(idx)).exit_code == 0
    assert "empty" in run("ask", str(idx), "   ").output
    assert run("ask", str(idx), "Phở bò?", "-k", "0").exit_code != 0
    keep = tmp_path / "keep"
    keep.mkdir()
    r = run("eval", str(DOCS), "--queries", "5", "-k", "1,5", "-o", str(keep))
    assert r.exit_code != 0 and keep.is_dir()
    assert run("eval", str(DOCS), "--queries", "5", "-k", "a,b").exit_code != 0


def test_a_damaged_index_is_named(tmp_path):
    idx = tmp_path / "idx"
    assert run("index", str(DOCS), "-o", str(idx)).exit_code == 0
    (idx / "passages.jsonl").unlink()
    r = run("ask", str(idx), "Phở bò?")
    assert r.exit_code != 0 and "passages.jsonl" in r.output
