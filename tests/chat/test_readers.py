"""Conversation readers on realistic files of every format, bad records, folders and hf: ids."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from vinaforge.chat import (
    ChatFormatError,
    Conversation,
    Preference,
    read_conversations,
    read_preferences,
    read_prompts,
    write_jsonl,
)


def _write(path: Path, records: list, gz: bool = False) -> Path:
    lines = "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(lines)
    else:
        path.write_text(lines, encoding="utf-8")
    return path


MULTI = [
    {"role": "system", "content": "Bạn là trợ lý hữu ích."},
    {"role": "user", "content": "Phở là gì?"},
    {"role": "assistant", "content": "Phở là món ăn truyền thống của Việt Nam."},
    {"role": "user", "content": "Nấu phở bò cần gì?"},
    {"role": "assistant", "content": "Cần xương bò, bánh phở, hành, gừng và quế hồi."},
]


def test_openai_messages_jsonl(tmp_path):
    f = _write(tmp_path / "m.jsonl", [{"id": "a1", "messages": MULTI, "source": "tự viết"}])
    res = read_conversations(f)
    (conv,) = res.kept
    assert isinstance(conv, Conversation)
    assert conv.messages == MULTI and conv.id == "a1" and conv.meta == {"source": "tự viết"}
    assert conv.system == "Bạn là trợ lý hữu ích." and len(conv.turns) == 4
    assert conv.prompt_messages == MULTI[:-1] and conv.last_reply == MULTI[-1]["content"]


def test_sharegpt(tmp_path):
    rec = {"conversations": [
        {"from": "system", "value": "Trả lời ngắn gọn."},
        {"from": "human", "value": "Hà Nội có bao nhiêu quận?"},
        {"from": "gpt", "value": "Hà Nội có 12 quận."},
    ]}  # fmt: skip
    (conv,) = read_conversations(_write(tmp_path / "s.jsonl", [rec]), format="sharegpt").kept
    assert [m["role"] for m in conv.messages] == ["system", "user", "assistant"]
    assert conv.messages[2]["content"] == "Hà Nội có 12 quận."


def test_alpaca_with_and_without_input(tmp_path):
    recs = [
        {"instruction": "Dịch sang tiếng Anh.", "input": "Xin chào", "output": "Hello"},
        {"instruction": "Kể tên ba loài hoa.", "input": "", "output": "Hoa sen, hoa mai, hoa đào."},
    ]
    kept = read_conversations(_write(tmp_path / "a.json", [json.dumps(recs, ensure_ascii=False)])).kept
    assert kept[0].messages[0]["content"] == "Dịch sang tiếng Anh.\n\nXin chào"
    assert kept[1].messages == [
        {"role": "user", "content": "Kể tên ba loài hoa."},
        {"role": "assistant", "content": "Hoa sen, hoa mai, hoa đào."},
    ]


def test_prompt_response_gz(tmp_path):
    f = _write(tmp_path / "pr.jsonl.gz", [{"prompt": "1 + 1 bằng mấy?", "response": "Bằng 2."}], gz=True)
    (conv,) = read_conversations(f).kept
    assert conv.messages[-1] == {"role": "assistant", "content": "Bằng 2."}


def test_invalid_records_are_kept_with_reason_and_line(tmp_path):
    good = {"messages": MULTI[1:3]}
    recs = [
        good,
        {"messages": [{"role": "assistant", "content": "Chào"}, {"role": "user", "content": "Hỏi"}]},
        {"messages": [{"role": "user", "content": "Hỏi"}, {"role": "assistant", "content": "   "}]},
        {"messages": [{"role": "user", "content": "Hỏi gì đó"}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url"}]}, {"role": "assistant", "content": "x"}]},
        "{not json",
        {"foo": "bar"},
        good,
    ]
    f = _write(tmp_path / "bad.jsonl", recs)
    res = read_conversations(f)
    assert len(res.kept) == 2 and len(res.rejected) == 6 and res.n_in == 8
    by_line = {r.source.rsplit(":", 1)[1]: r.reason for r in res.rejected}
    assert "bad role order" in by_line["2"]
    assert "empty" in by_line["3"]
    assert "no final assistant turn" in by_line["4"]
    assert "non-text content" in by_line["5"]
    assert "not valid JSON" in by_line["6"]
    assert "unknown format" in by_line["7"]
    assert all(r.source.startswith(str(f)) for r in res.rejected)


def test_prompts_accept_records_without_reply(tmp_path):
    f = _write(tmp_path / "p.jsonl", [{"messages": MULTI[:2]}, {"messages": MULTI}, {"instruction": "Viết thơ."}])
    kept = read_prompts(f).kept
    assert [c.messages[-1]["role"] for c in kept] == ["user", "user", "user"]
    assert kept[1].messages == MULTI[:4]


def test_preferences_plain_conversational_and_implicit(tmp_path):
    recs = [
        {"prompt": "Thủ đô Việt Nam?", "chosen": "Hà Nội.", "rejected": "Paris."},
        {"prompt": [{"role": "user", "content": "Chào"}], "chosen": [{"role": "assistant", "content": "Xin chào!"}],
         "rejected": [{"role": "assistant", "content": "Hello!"}]},
        {"chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "Tốt"}],
         "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "Tệ"}]},
        {"prompt": "Giống nhau", "chosen": "A", "rejected": "A"},
    ]  # fmt: skip
    res = read_preferences(_write(tmp_path / "pref.jsonl", recs))
    assert len(res.kept) == 3 and len(res.rejected) == 1
    assert "chosen == rejected" in res.rejected[0].reason
    implicit = res.kept[2]
    assert isinstance(implicit, Preference)
    assert implicit.prompt == [{"role": "user", "content": "Q"}]
    assert implicit.chosen == [{"role": "assistant", "content": "Tốt"}]
    # preference records read as conversations train on the chosen reply
    conv = read_conversations(_write(tmp_path / "p2.jsonl", recs[:1])).kept[0]
    assert conv.last_reply == "Hà Nội."


def test_conversation_records_are_not_preferences(tmp_path):
    res = read_preferences(_write(tmp_path / "c.jsonl", [{"messages": MULTI}]), allow_empty=True)
    assert not res.kept and "not a preference pair" in res.rejected[0].reason


def test_folder_and_errors(tmp_path):
    d = tmp_path / "folder"
    d.mkdir()
    _write(d / "a.jsonl", [{"messages": MULTI}])
    _write(d / "b.jsonl", [{"prompt": "Hỏi", "response": "Đáp"}])
    (d / "notes.txt").write_text("ignored", encoding="utf-8")
    assert read_conversations(d).n_in == 2
    with pytest.raises(ChatFormatError, match="no such file"):
        read_conversations(tmp_path / "missing.jsonl")
    with pytest.raises(ChatFormatError, match="unknown format 'csv'"):
        read_conversations(d, format="csv")
    empty = _write(tmp_path / "empty.jsonl", [])
    with pytest.raises(ChatFormatError, match="no usable conversation records"):
        read_conversations(empty)


def test_invalid_utf8_and_truncated_gzip(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(json.dumps({"messages": MULTI}).encode() + b"\n\xff\xfe\n")
    res = read_conversations(bad, allow_empty=True)
    assert res.rejected and "invalid UTF-8" in res.rejected[-1].reason
    gz = _write(tmp_path / "t.jsonl.gz", [{"messages": MULTI}] * 200, gz=True)
    gz.write_bytes(gz.read_bytes()[:-40])
    res = read_conversations(gz, allow_empty=True)
    assert res.rejected and "truncated" in res.rejected[-1].reason


def test_hf_local_dataset_folder(tmp_path):
    from datasets import Dataset

    Dataset.from_list([{"messages": MULTI}, {"messages": MULTI[:2]}]).save_to_disk(str(tmp_path / "ds"))
    res = read_conversations(f"hf:{tmp_path / 'ds'}", allow_empty=True)
    assert len(res.kept) == 1 and len(res.rejected) == 1
    assert res.rejected[0].source.startswith(f"hf:{tmp_path / 'ds'}[train]#1")


def test_write_jsonl_round_trip(tmp_path):
    res = read_conversations(_write(tmp_path / "m.jsonl", [{"id": 7, "messages": MULTI}]))
    out = tmp_path / "out" / "x.jsonl"
    assert write_jsonl(out, res.kept) == 1
    again = read_conversations(out).kept[0]
    assert again.messages == MULTI and again.id == "7"


@pytest.mark.shared_data
def test_real_instruct_files(shared_data):
    """The {prompt, response} files of shared/data/instruct read whole; counts add up."""
    for name in ("gpt4vn_sample.jsonl", "phogpt_sample_prompt_response_pairs.jsonl"):
        res = read_conversations(shared_data / "instruct" / name, allow_empty=True)
        lines = sum(1 for line in open(shared_data / "instruct" / name, encoding="utf-8") if line.strip())
        assert res.n_in == lines
        assert len(res.kept) >= 0.9 * lines
        for r in res.rejected:
            assert r.reason and ":" in r.source
    res = read_conversations(shared_data / "instruct" / "vi_alpaca_reduced.jsonl.gz", allow_empty=True)
    assert res.n_in == 51092 and len(res.kept) > 50000


def test_damaged_json_parquet_and_hf_sources(tmp_path):
    """Issue 22: a damaged .json, .json.gz or .parquet file is one rejected record naming the file
    (as a bad JSONL line is), and an hf: dataset that cannot be loaded is a one-line error."""
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    recs = [{"messages": MULTI}] * 3
    whole = json.dumps(recs).encode()
    (tmp_path / "bytes.json").write_bytes(whole[:40] + b"\xff" + whole[40:])
    packed = gzip.compress(whole)
    (tmp_path / "cut.json.gz").write_bytes(packed[: len(packed) // 2])
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "ok.parquet")
    (tmp_path / "cut.parquet").write_bytes((tmp_path / "ok.parquet").read_bytes()[:200])
    reasons = {
        name: read_conversations(tmp_path / name, allow_empty=True).rejected
        for name in ("bytes.json", "cut.json.gz", "cut.parquet")
    }
    assert "not valid UTF-8" in reasons["bytes.json"][0].reason
    assert "truncated or damaged file" in reasons["cut.json.gz"][0].reason
    assert "damaged or not a parquet file" in reasons["cut.parquet"][0].reason
    assert all(len(r) == 1 and r[0].source.startswith(str(tmp_path)) for r in reasons.values())
    assert len(read_conversations(tmp_path / "ok.parquet").kept) == 3
    Dataset.from_list(recs).save_to_disk(str(tmp_path / "ds"))
    next((tmp_path / "ds").glob("*.arrow")).write_bytes(b"\x00" * 64)
    with pytest.raises(ChatFormatError, match=r"hf:.*ds: cannot load the dataset"):
        read_conversations(f"hf:{tmp_path / 'ds'}")
    with pytest.raises(ChatFormatError, match=r"hf:no-such-org/no-such-set: cannot load the dataset"):
        read_conversations("hf:no-such-org/no-such-set")
