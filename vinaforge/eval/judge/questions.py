"""The open-question set: loading, validation and selection.

Hand-written: the question set itself (``questions_vi.jsonl``, written for this project in
Vietnamese, MT-bench style: eight categories, reference answers where a correct answer exists)
and a strict reader that names the file and line of the first bad record, so that a typo in a
custom question file never silently drops questions from an evaluation.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from vinaforge.eval.judge import QUESTIONS_FILE

CATEGORIES = (
    "writing",
    "reasoning",
    "math",
    "coding",
    "culture_history",
    "roleplay",
    "extraction",
    "safety",
)
"""Categories of the shipped set; a custom file may use others."""


class QuestionFileError(ValueError):
    """A question file that cannot be used; the message names the file and line."""


class Question(BaseModel):
    """One open question; ``reference`` is a correct answer or grading note, when one exists."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    category: str
    question: str
    reference: str | None = None

    @field_validator("id", "category", "question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("question", "reference")
    @classmethod
    def _nfc(cls, value: str | None) -> str | None:
        # Vietnamese text in decomposed form (NFD) tokenizes differently; store one form.
        return None if value is None else unicodedata.normalize("NFC", value)


def load_questions(path: str | os.PathLike | None = None) -> list[Question]:
    """Questions of a JSONL file (default: the shipped Vietnamese set), in file order."""
    p = Path(path) if path is not None else QUESTIONS_FILE
    if not p.is_file():
        raise QuestionFileError(f"{p}: question file not found")
    questions: list[Question] = []
    seen: dict[str, int] = {}
    with open(p, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as err:
                raise QuestionFileError(f"{p}:{lineno}: not valid JSON ({err.msg})") from err
            if not isinstance(raw, dict):
                raise QuestionFileError(f"{p}:{lineno}: expected a JSON object with id, category, question")
            try:
                q = Question.model_validate(raw)
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(x) for x in first["loc"]) or "record"
                raise QuestionFileError(f"{p}:{lineno}: field {where!r}: {first['msg']}") from None
            if q.id in seen:
                raise QuestionFileError(f"{p}:{lineno}: duplicate id {q.id!r} (first on line {seen[q.id]})")
            seen[q.id] = lineno
            questions.append(q)
    if not questions:
        raise QuestionFileError(f"{p}: no questions in file")
    return questions


def select_questions(
    questions: list[Question], categories: list[str] | None = None, limit: int | None = None
) -> list[Question]:
    """Questions of the given categories; with ``limit``, the first ``limit`` of each category.

    Taking the first few of *each* category keeps a small run balanced across categories.
    """
    if categories:
        known = {q.category for q in questions}
        unknown = sorted(set(categories) - known)
        if unknown:
            raise QuestionFileError(
                f"unknown categories {', '.join(unknown)}; the question set has {', '.join(sorted(known))}"
            )
        questions = [q for q in questions if q.category in set(categories)]
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        taken: Counter[str] = Counter()
        kept = []
        for q in questions:
            if taken[q.category] < limit:
                taken[q.category] += 1
                kept.append(q)
        questions = kept
    return questions


def category_counts(questions: list[Question]) -> dict[str, int]:
    """Number of questions per category, in order of first appearance."""
    return dict(Counter(q.category for q in questions))
