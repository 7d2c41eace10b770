"""Answer generation: each model under test answers the questions → ``answers/<name>.jsonl``.

Resumable: questions already answered are skipped; failed calls (endpoint down, prompt over the
context) are recorded with their error and retried on the next run. Hand-written glue over the
backends in :mod:`vinaforge.eval.judge.backends`.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from vinaforge.eval.judge.backends import ChatBackend
from vinaforge.eval.judge.prompts import Lang, answer_prompt
from vinaforge.eval.judge.questions import Question
from vinaforge.eval.judge.store import append_jsonl, latest_by_key, read_jsonl

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class AnswersError(ValueError):
    """Answers that cannot be judged (missing file, missing or failed answers)."""


def check_model_name(name: str) -> str:
    """Model names become file names and table rows: letters, digits, ``.``, ``_``, ``-``."""
    if not NAME_RE.match(name):
        raise ValueError(
            f"model name {name!r} must start with a letter or digit and contain only letters, digits, '.', '_', '-'"
        )
    return name


def answers_path(answers_dir: str | Path, name: str) -> Path:
    return Path(answers_dir) / f"{check_model_name(name)}.jsonl"


def generate_answers(
    questions: list[Question],
    backend: ChatBackend,
    name: str,
    answers_dir: str | Path,
    system: str | None = None,
    lang: Lang = "vi",
    progress: bool = True,
) -> dict[str, int]:
    """Answer every question not yet answered; returns counts (``done``, ``new``, ``failed``)."""
    from tqdm.auto import tqdm

    path = answers_path(answers_dir, name)
    existing = latest_by_key(read_jsonl(path, repair=True), key=lambda r: r.get("question_id"))
    todo = [q for q in questions if existing.get(q.id, {}).get("status") != "ok"]
    log.info(
        "%s: %d of %d questions already answered, %d to go -> %s",
        name,
        len(questions) - len(todo),
        len(questions),
        len(todo),
        path,
    )
    desc = backend.describe()
    new = failed = 0
    bar = tqdm(total=len(todo), desc=f"answers {name}", unit="q", disable=not progress)
    try:
        for start in range(0, len(todo), backend.batch_size):
            chunk = todo[start : start + backend.batch_size]
            completions = backend.complete(
                [answer_prompt(q.question, system=system, lang=lang) for q in chunk]
            )
            records = []
            for q, c in zip(chunk, completions, strict=True):
                records.append(answer_record(q, name, c.to_dict(), desc))
                if c.ok:
                    new += 1
                else:
                    failed += 1
                    log.warning("%s: no answer to %s: %s", name, q.id, c.error)
            append_jsonl(path, records)
            bar.update(len(chunk))
    finally:
        bar.close()
    return {
        "questions": len(questions),
        "done_before": len(questions) - len(todo),
        "new": new,
        "failed": failed,
    }


def answer_record(
    q: Question, name: str, completion: dict[str, Any], generator: dict[str, Any]
) -> dict[str, Any]:
    return {
        "question_id": q.id,
        "category": q.category,
        "model": name,
        "answer": completion["text"],
        "status": "ok" if completion["error"] is None else "failed",
        "error": completion["error"],
        "finish_reason": completion["finish_reason"],
        "new_tokens": completion["new_tokens"],
        "attempts": completion["attempts"],
        "seconds": round(completion["seconds"], 3),
        "generator": generator,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def list_answer_models(answers_dir: str | Path) -> list[str]:
    """Names of the models with an answers file in the folder."""
    d = Path(answers_dir)
    if not d.is_dir():
        raise AnswersError(f"answers folder {d} does not exist")
    return sorted(p.stem for p in d.glob("*.jsonl") if NAME_RE.match(p.stem))


def load_answers(
    answers_dir: str | Path, models: list[str], questions: list[Question], skip_missing: bool = False
) -> tuple[dict[str, dict[str, str]], list[str]]:
    """``{model: {question_id: answer}}`` for the questions, and the ids skipped for lack of answers.

    Without ``skip_missing`` a model lacking an answer (absent, or its generation failed) is an
    error naming the file and the first missing ids; with it, such questions are left out for
    all models (and reported), so every pair is judged on the same questions.
    """
    out: dict[str, dict[str, str]] = {}
    missing: dict[str, list[str]] = {}
    for name in models:
        path = answers_path(answers_dir, name)
        if not path.is_file():
            raise AnswersError(
                f"no answers for model {name!r}: {path} not found "
                f"(generate them with `vinaforge eval judge answer --name {name}`)"
            )
    for name in models:
        path = answers_path(answers_dir, name)
        recs = latest_by_key(read_jsonl(path), key=lambda r: r.get("question_id"))
        answers = {
            qid: r["answer"]
            for qid, r in recs.items()
            if r.get("status") == "ok" and r.get("answer") is not None
        }
        gaps = [q.id for q in questions if q.id not in answers]
        if gaps and not skip_missing:
            failed = [qid for qid in gaps if qid in recs]
            detail = f"; {len(failed)} of them failed to generate" if failed else ""
            raise AnswersError(
                f"{path}: no answer for {len(gaps)} of {len(questions)} questions "
                f"(first: {', '.join(gaps[:5])}){detail}. Re-run `vinaforge eval judge answer` for it, "
                "restrict the questions (--categories/--limit), or pass --skip-missing"
            )
        missing[name] = gaps
        out[name] = answers
    skipped = sorted({qid for gaps in missing.values() for qid in gaps})
    if skipped:
        log.warning(
            "skipping %d questions that not every model answered: %s", len(skipped), ", ".join(skipped[:10])
        )
    return out, skipped
