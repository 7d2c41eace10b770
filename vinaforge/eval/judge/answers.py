"""Answer generation: each model under test answers the questions → ``answers/<name>.jsonl``.

Resumable: questions already answered are skipped; failed calls (endpoint down, prompt over the
context) are recorded with their error and retried on the next run. Hand-written glue over
:mod:`vinaforge.generate` (through :mod:`vinaforge.eval.judge.backends`).
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from vinaforge.eval.judge.backends import accepts_system, chunk_size, complete, describe
from vinaforge.eval.judge.prompts import answer_prompt
from vinaforge.eval.judge.questions import Question
from vinaforge.eval.judge.store import append_jsonl, latest_by_key, read_jsonl
from vinaforge.generate import Backend, SamplingParams
from vinaforge.logs import progress_bar

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
    backend: Backend,
    name: str,
    answers_dir: str | Path,
    params: SamplingParams | None = None,
    system: str | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Answer every question not yet answered; returns counts (``done``, ``new``, ``failed``)."""
    params = params or SamplingParams(max_new_tokens=512)
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
    desc = describe(backend, params)
    system_ok = accepts_system(backend) if system and todo else True
    new = failed = 0
    step = chunk_size(backend)
    with progress_bar(disable=not progress) as bar:
        task = bar.add_task(f"answers {name}", total=len(todo))
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            prompts = [answer_prompt(q.question, system=system) for q in chunk]
            completions = complete(backend, prompts, params, system_ok)
            records = []
            for q, c in zip(chunk, completions, strict=True):
                records.append(answer_record(q, name, c.to_dict(), desc))
                if c.ok:
                    new += 1
                else:
                    failed += 1
                    log.warning("%s: no answer to %s: %s", name, q.id, c.error)
            append_jsonl(path, records)
            bar.advance(task, len(chunk))
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
        "answer": completion["text"].strip() if completion["text"] is not None else None,
        "status": "ok" if completion["error"] is None else "failed",
        "error": completion["error"],
        "finish_reason": completion["finish_reason"],
        "new_tokens": completion["completion_tokens"],
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
