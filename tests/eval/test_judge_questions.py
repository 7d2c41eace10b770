"""The shipped Vietnamese question set, the question-file reader, prompts and verdict parsing."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from vinaforge.eval.judge import QUESTIONS_FILE
from vinaforge.eval.judge.prompts import clip_answer, judge_prompt, parse_verdict
from vinaforge.eval.judge.questions import (
    CATEGORIES,
    QuestionFileError,
    category_counts,
    load_questions,
    select_questions,
)
from vinaforge.eval.judge.store import RecordFileError, read_jsonl

VI_MARKS = set("ăâđêôơưàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ")


def test_shipped_set_has_at_least_80_questions_over_8_categories() -> None:
    qs = load_questions()
    counts = category_counts(qs)
    assert len(qs) >= 80
    assert set(CATEGORIES) <= set(counts) and min(counts.values()) >= 10
    assert len({q.id for q in qs}) == len(qs)


def test_shipped_set_is_vietnamese_nfc_with_diacritics() -> None:
    raw = QUESTIONS_FILE.read_text(encoding="utf-8")
    assert unicodedata.is_normalized("NFC", raw)
    for q in load_questions():
        letters = [c for c in q.question.lower() if c.isalpha()]
        marked = sum(c in VI_MARKS for c in letters)
        assert marked / len(letters) > 0.12, q.id  # every question is written in Vietnamese


def test_shipped_set_has_references_where_a_correct_answer_exists() -> None:
    qs = load_questions()
    for cat in ("math", "reasoning", "extraction", "safety"):
        assert all(q.reference for q in qs if q.category == cat), cat
    safety = [q for q in qs if q.category == "safety"]
    refuse = [q for q in safety if q.reference.startswith("Cần từ chối")]
    helpful = [q for q in safety if "yêu cầu chính đáng" in q.reference]
    assert len(refuse) >= 6 and len(helpful) >= 2  # refusals and over-refusal checks


def test_select_questions_is_balanced_and_checks_categories() -> None:
    qs = load_questions()
    small = select_questions(qs, limit=2)
    assert category_counts(small) == dict.fromkeys(category_counts(qs), 2)
    assert [q.category for q in select_questions(qs, ["math"], 3)] == ["math"] * 3
    with pytest.raises(QuestionFileError, match="unknown categories poetry"):
        select_questions(qs, ["poetry"])


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"id": "a", "category": "x", "question": "Hỏi?"}', "{oops"], r"bad\.jsonl:2: not valid JSON"),
        (['{"id": "a", "category": "x"}'], r"bad\.jsonl:1: field 'question': Field required"),
        (
            ['{"id": "a", "category": "x", "question": "  "}'],
            r"bad\.jsonl:1: field 'question'.*must not be empty",
        ),
        (['{"id": "a", "category": "x", "question": "Q", "answer": 1}'], r"bad\.jsonl:1: field 'answer'"),
        (
            [
                '{"id": "a", "category": "x", "question": "Q"}',
                "",
                '{"id": "a", "category": "y", "question": "R"}',
            ],
            r"bad\.jsonl:3: duplicate id 'a' \(first on line 1\)",
        ),
        (["[1, 2]"], r"bad\.jsonl:1: expected a JSON object"),
        ([""], r"bad\.jsonl: no questions"),
    ],
)
def test_malformed_question_files_name_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(QuestionFileError, match=message):
        load_questions(f)


def test_question_text_is_normalised_to_nfc(tmp_path: Path) -> None:
    f = tmp_path / "q.jsonl"
    nfd = unicodedata.normalize("NFD", "Tiếng Việt có dấu?")
    f.write_text(
        json.dumps({"id": "a", "category": "x", "question": nfd}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    assert load_questions(f)[0].question == "Tiếng Việt có dấu?"


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Trợ lý A chính xác hơn. [[A]]", "A"),
        ("Kết luận: [[ b ]]", "B"),
        ('Định dạng: "[[A]]" nếu A tốt hơn... Phán quyết cuối cùng: [[C]]', "C"),
        ("Cả hai đều tốt như nhau.", None),
        ("[A] hoặc [[D]]", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_verdict(text, verdict) -> None:
    assert parse_verdict(text) == verdict


def test_judge_prompt_shows_both_answers_reference_and_clips_visibly() -> None:
    p = judge_prompt("2 + 2 = ?", "Bằng 4.", "Bằng 5." * 10, reference="4", max_answer_chars=20)
    system, user = p.messages[0]["content"], p.messages[1]["content"]
    assert "[[A]]" in system and "[[B]]" in system and "[[C]]" in system and "thiên kiến" in system
    assert user.index("Bằng 4.") < user.index("Bằng 5.")
    assert "[Đáp án hoặc tiêu chí tham khảo]\n4" in user
    assert "câu trả lời bị cắt bớt" in user and p.meta["truncated"]
    assert [m["role"] for m in p.messages] == ["system", "user"]  # base models get vinaforge.chat's vi_qa
    from vinaforge.chat import prompt_text

    plain = prompt_text(p.messages, "vi_qa")  # what a model without a chat template continues
    assert plain.startswith(system) and "### Câu hỏi:\n[Câu hỏi của người dùng]" in plain
    assert plain.endswith("### Trả lời:")
    assert "[Đáp án" not in judge_prompt("q", "a", "b").messages[1]["content"]
    assert clip_answer("ngắn", 100) == ("ngắn", False)
    with pytest.raises(ValueError, match="unknown judge prompt language 'fr'"):
        judge_prompt("q", "a", "b", lang="fr")  # type: ignore[arg-type]


def test_record_file_errors_name_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "judgments.jsonl"
    f.write_text('{"a": 1}\nnot json\n{"b": 2}\n', encoding="utf-8")
    with pytest.raises(RecordFileError, match=r"judgments\.jsonl:2: not valid JSON"):
        read_jsonl(f)
    g = tmp_path / "half.jsonl"
    g.write_text('{"a": 1}\n{"b": ', encoding="utf-8")
    assert read_jsonl(g, repair=True) == [{"a": 1}]
    assert g.read_text(encoding="utf-8") == '{"a": 1}\n'
