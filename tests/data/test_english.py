"""The ``english`` stage on files we write: every reader, every check, and counts that add up."""

from __future__ import annotations

import json
import logging

from vinaforge.data.english import Config, detokenize, run
from vinaforge.stage import StageContext

NEWS = [
    {"doc": "d1", "en": "The city council met on Monday to discuss the new budget for public schools .", "vi": "x"},
    {"doc": "d1", "en": "Members said that the plan would \" improve \" the lives of many families .", "vi": "y"},
    {"doc": "d2", "en": "Hôm nay trời đẹp và mọi người đi dạo trong công viên rất vui vẻ.", "vi": "z"},
    {"doc": "d3", "en": "Open file", "vi": "Mở tệp"},
    {"doc": "d4", "en": "%s: %d", "vi": "%s: %d"},
]
HTML = """<html><body>
<p>Debian is a free operating system, developed by volunteers who work together over the Internet.</p>
<div class="para">The package manager installs, upgrades and removes software <a href="x">safely</a> for the
administrator, keeping track of every file it installs.</div>
<div class="para">Short one.</div>
<p>Run <code>apt-get update</code> and then the upgrade command to bring the whole system up to date.</p>
<pre>apt-get install --yes something-long that-is-code and-not prose at all here</pre>
</body></html>"""
FORTUNES = """A journey of a thousand miles begins with a single step, as the old saying goes.
%
Q: Why did the chicken cross the road?
A: To get to the other side, of course.
%
ok
%
A journey of a thousand miles begins with a single step, as the old saying goes.
%
"""


def _ctx(tmp_path) -> StageContext:
    work = tmp_path / "run" / ".english.partial"
    work.mkdir(parents=True)
    return StageContext("english", "english", tmp_path / "run", work, tmp_path / "run" / "english", {},
                        logging.getLogger("vinaforge.test"))  # fmt: skip


def _inputs(tmp_path):
    (tmp_path / "news.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in NEWS))
    (tmp_path / "html").mkdir()
    (tmp_path / "html" / "guide.html").write_text(HTML)
    (tmp_path / "fortunes").mkdir()
    (tmp_path / "fortunes" / "wisdom").write_text(FORTUNES)
    (tmp_path / "fortunes" / "wisdom.dat").write_bytes(b"\x00\x01binary index")


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_english_stage_keeps_prose_rejects_the_rest_with_reasons_and_counts_add_up(tmp_path):
    _inputs(tmp_path)
    cfg = Config(
        sources={
            "news": {"paths": [str(tmp_path / "news.jsonl")]},
            "docs": {"paths": [str(tmp_path / "html")], "format": "html"},
            "fortunes": {"paths": [str(tmp_path / "fortunes")], "format": "fortune"},
        },
        heldout_fraction=0.0,
    )
    ctx = _ctx(tmp_path)
    result = run(cfg, ctx)
    kept = _read(ctx.work_dir / "kept" / "en.jsonl")
    rejected = _read(ctx.work_dir / "rejected.jsonl")
    texts = [r["text"] for r in kept]
    # the two sentences of document d1 are one paragraph again, with Moses spacing undone
    assert any(t.startswith("The city council met") and 'would "improve" the lives' in t for t in texts)
    assert any(t.startswith("The package manager installs") for t in texts)
    assert "Run and then the upgrade command to bring the whole system up to date." in texts  # <code> dropped
    assert not any("that-is-code" in t for t in texts)  # <pre> is not prose
    assert any(t.startswith("Q: Why did the chicken") for t in texts)
    reasons = {r["reason"].split(":")[0] for r in rejected}
    assert {"not_english", "untranslated", "too_short", "duplicate"} <= reasons
    assert any(r["reason"] == "not_english:vi" for r in rejected)
    m = result.metrics
    assert m["read"] == m["kept"] + m["heldout"] + m["rejected"] == len(kept) + len(rejected)
    assert not any("binary index" in r["text"] for r in kept + rejected)  # strfile's .dat is skipped
    stats = json.loads((ctx.work_dir / "stats.json").read_text())
    assert stats["total"]["rejected"] == len(rejected)
    assert "| news |" in result.report


def test_heldout_split_is_by_text_hash_and_stable(tmp_path):
    _inputs(tmp_path)
    src = {"fortunes": {"paths": [str(tmp_path / "fortunes")], "format": "fortune"},
           "news": {"paths": [str(tmp_path / "news.jsonl")]}}  # fmt: skip
    runs = []
    for i in range(2):
        ctx = _ctx(tmp_path / f"r{i}")
        run(Config(sources=src, heldout_fraction=0.5, min_words=3), ctx)
        runs.append(_read(ctx.work_dir / "heldout" / "en.jsonl"))
    assert runs[0] == runs[1]
    assert runs[0], "half of the texts should be held out"


def test_detokenize_undoes_moses_spacing():
    assert detokenize("It 's a \" big \" deal , isn 't it ?") == "It's a \"big\" deal, isn't it?"
    assert detokenize("costs ( about ) 5 % more") == "costs (about) 5% more"
