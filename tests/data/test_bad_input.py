"""Bad input never crashes the run or loses a record; wrong paths and fields fail at once."""

from __future__ import annotations

import gzip
import json
import random

import pytest

from vinaforge.data.config import Config
from vinaforge.data.curate import curate
from vinaforge.data.readers import InputError, check_fields, plan_inputs
from vinaforge.text.legacy import encode_legacy

from .helpers import read_folder, read_jsonl, write_jsonl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory, example_docs):
    root = tmp_path_factory.mktemp("bad")
    inp = root / "in"
    good = [{"id": d["id"], "text": d["text"]} for d in example_docs[:20]]
    write_jsonl(inp / "good.jsonl", good)
    body = example_docs[20]["text"]
    rng = random.Random(0)
    lines = [
        json.dumps({"id": "ok", "text": example_docs[21]["text"]}, ensure_ascii=False).encode(),
        b'{"id": "malformed", "text": "unterminated',
        json.dumps({"id": "no-text", "body": "the text is under another key"}).encode(),
        json.dumps({"id": "not-string", "text": 12345}).encode(),
        b'["not", "an", "object"]',
        b'{"id": "bad-utf8", "text": "'
        + json.dumps(body, ensure_ascii=False)[1:-1].encode()
        + b' \xff\xfe\xfd tail"}',
        json.dumps({"id": "empty", "text": ""}).encode(),
        json.dumps({"id": "huge", "text": ("Một đoạn văn rất dài. " * 1_000_000)[:20_000_000]}).encode(),
        json.dumps({"id": "junk", "text": "".join(chr(rng.randrange(0, 256)) for _ in range(3000))}).encode(),
        json.dumps(
            {"id": "tcvn3", "text": encode_legacy(example_docs[22]["text"], "tcvn3")}, ensure_ascii=False
        ).encode(),
    ]
    (inp / "bad.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (inp / "binary.txt").write_bytes(bytes(rng.randrange(256) for _ in range(5000)))
    blob = gzip.compress(
        "".join(
            json.dumps({"id": f"gz{i}", "text": d["text"]}, ensure_ascii=False) + "\n"
            for i, d in enumerate(example_docs[30:40])
        ).encode()
    )
    (inp / "truncated.jsonl.gz").write_bytes(blob[: len(blob) * 2 // 3])
    out = root / "out"
    stats = curate(Config(inputs=[str(inp)], input_check={"max_chars": 1_000_000}), out)
    return out, stats


def test_nothing_lost(bad_run):
    out, stats = bad_run
    kept = read_folder(out / "kept")
    rejected = read_folder(out / "rejected")
    assert stats["funnel_balanced"], stats["funnel_problems"]
    assert len(kept) == stats["kept"]
    assert len(rejected) == sum(stats["rejected"].values())
    assert stats["input"] == len(kept) + len(rejected)
    ids = {r["id"] for r in kept} | {r["id"] for r in rejected}
    for needed in ("ok", "no-text", "not-string", "bad-utf8", "empty", "huge", "junk", "tcvn3"):
        assert needed in ids or any(i.endswith(needed) for i in ids), needed


def test_each_bad_record_has_a_reason(bad_run):
    out, _ = bad_run
    by_id = {r["id"]: r for r in read_folder(out / "rejected" / "input")}
    reasons = {r["reason"] for r in by_id.values()}
    assert by_id["no-text"]["reason"] == "missing_text_field"
    assert "body" in by_id["no-text"]["value"]
    assert by_id["not-string"]["reason"] == "text_not_string"
    assert by_id["empty"]["reason"] == "empty"
    assert by_id["huge"]["reason"] == "too_long" and by_id["huge"]["value"] == 20_000_000
    assert len(by_id["huge"]["text"]) == 20_000_000  # kept whole in rejected/, not truncated
    assert by_id["junk"]["reason"] == "not_text"
    assert {"malformed_json", "not_an_object", "corrupt_file"} <= reasons
    malformed = next(r for r in by_id.values() if r["reason"] == "malformed_json")
    assert malformed["text"].startswith('{"id": "malformed"') and malformed["line"] == 2
    binary = [r for r in read_folder(out / "rejected") if r.get("source", "").endswith("binary.txt")]
    assert len(binary) == 1 and binary[0]["reason"] in ("not_text", "language_other")


def test_repaired_records(bad_run):
    out, stats = bad_run
    everything = {r["id"]: r for r in read_folder(out / "kept") + read_folder(out / "rejected")}
    assert everything["bad-utf8"]["repaired"] == "invalid_utf8"
    assert "\ufffd" in everything["bad-utf8"]["text"]
    tcvn3 = everything["tcvn3"]
    assert tcvn3["repaired"] == "legacy_tcvn3"
    assert stats["repaired"] == {"legacy_tcvn3": 1}
    assert "Việt" in tcvn3["text"] or "ệ" in tcvn3["text"]  # decoded back to Unicode


def test_wrong_path_fails_at_once(tmp_path):
    with pytest.raises(InputError, match="matches no file"):
        plan_inputs([str(tmp_path / "nope" / "*.jsonl")])
    with pytest.raises(InputError, match="no input"):
        plan_inputs([])
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="unsupported file type"):
        plan_inputs([str(tmp_path / "x.csv")])


def test_wrong_field_fails_at_once(tmp_path, example_docs):
    f = write_jsonl(tmp_path / "a.jsonl", [{"id": "1", "content": example_docs[0]["text"]}])
    plan = plan_inputs([str(f)])
    with pytest.raises(
        InputError, match=r"a\.jsonl: no record has the text field 'text' \(fields: content, id\)"
    ):
        check_fields(plan, "text", "id", id_key_explicit=False)
    check_fields(plan, "content", "id", id_key_explicit=False)
    with pytest.raises(InputError, match="id field 'doc_id'"):
        check_fields(plan, "content", "doc_id", id_key_explicit=True)
    (tmp_path / "b.jsonl").write_text("this is not json\nnor this\n")
    with pytest.raises(InputError, match="is it JSON Lines"):
        check_fields(plan_inputs([str(tmp_path / "b.jsonl")]), "text", "id", id_key_explicit=False)


def test_readers_roundtrip(tmp_path, example_docs):
    """A parquet file, a text folder, a save_to_disk dataset and a streamed dataset are read like JSONL."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    docs = example_docs[:6]
    pq.write_table(
        pa.table({"id": [d["id"] for d in docs], "text": [d["text"] for d in docs[:5]] + [None]}),
        tmp_path / "p.parquet",
    )
    txt = tmp_path / "txt"
    txt.mkdir()
    for d in docs[:3]:
        (txt / f"{d['id']}.txt").write_text(d["text"], encoding="utf-8")
    Dataset.from_dict(
        {"id": [d["id"] for d in docs[:4]], "text": [d["text"] for d in docs[:4]]}
    ).save_to_disk(str(tmp_path / "hfds"))
    # a dataset read through the hub code path (load_dataset, streamed), here from a local folder
    write_jsonl(
        tmp_path / "hub" / "data" / "train.jsonl", [{"id": d["id"], "text": d["text"]} for d in docs[:2]]
    )
    out = tmp_path / "out"
    stats = curate(
        Config(
            inputs=[str(tmp_path / "p.parquet"), str(txt), str(tmp_path / "hfds"), f"hf:{tmp_path / 'hub'}"],
            dedup={"exact": False, "minhash": {"enabled": False}},
            output_format="parquet",
        ),
        out,
    )
    assert stats["input"] == 6 + 3 + 4 + 2
    rejected = read_folder(out / "rejected")
    assert [r["reason"] for r in rejected if r["reason"] == "missing_text_field"] == ["missing_text_field"]
    kept = pq.read_table(sorted(out.glob("kept/*/*/*.parquet"))).to_pylist()
    assert len(kept) == stats["kept"] == stats["input"] - len(rejected)
    assert set(kept[0]) == {
        "id",
        "text",
        "language",
        "language_score",
        "quality_score",
        "tier",
        "source",
        "metadata",
    }
    assert json.loads(kept[0]["metadata"])["quality_signals"]


def test_read_jsonl_helper_reads_gz(tmp_path):
    p = tmp_path / "a.jsonl.gz"
    with gzip.open(p, "wt", encoding="utf-8") as fh:
        fh.write('{"a": 1}\n')
    assert read_jsonl(p) == [{"a": 1}]
