"""Pairwise judging with position swap → ``judgments.jsonl``, and the games they decide.

Every pair of models is judged on every question twice, once in each order (MT-bench's remedy
for position bias). A game counts as a win only when both orders name the same winner; when
they disagree it is a tie ("inconsistent", as MT-bench counts it). A game in which either order
gave no verdict tag ("unparseable") or no output at all ("failed": endpoint down after retries,
prompt over the context) is left out of the ratings and counted, never guessed. Resumable: each
finished call is appended as it completes; on resume, calls with a verdict (or an unparseable
one) are kept, failed calls are retried, and calls whose answers changed since are redone.
Hand-written: the protocol is a few dozen lines, and FastChat's version is tied to its web app.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from vinaforge.eval.judge.backends import accepts_system, chunk_size, complete, describe
from vinaforge.eval.judge.prompts import Lang, judge_prompt, parse_verdict
from vinaforge.eval.judge.questions import Question
from vinaforge.eval.judge.store import append_jsonl, latest_by_key, read_jsonl
from vinaforge.generate import Backend, SamplingParams
from vinaforge.logs import progress_bar

log = logging.getLogger(__name__)

JUDGMENTS_FILE = "judgments.jsonl"
DONE_STATUSES = ("ok", "unparseable")


class JudgingError(ValueError):
    """Judging that cannot start or continue (too few models, a different judge in the file)."""


def call_key(rec: dict[str, Any]) -> tuple[str, str, str]:
    return (rec["question_id"], rec["first"], rec["second"])


def answer_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def judge_identity(desc: dict[str, Any]) -> dict[str, Any]:
    """The part of a judge's description that must not change within one judgments file."""
    return {k: desc.get(k) for k in ("kind", "model", "base_url")}


def plan_calls(questions: list[Question], models: list[str]) -> list[tuple[Question, str, str]]:
    """(question, first, second) for every question, unordered pair and both orders."""
    if len(set(models)) < 2:
        raise JudgingError(f"pairwise judging needs at least two models, got {sorted(set(models))}")
    pairs = list(combinations(sorted(set(models)), 2))
    return [(q, x, y) for q in questions for a, b in pairs for x, y in ((a, b), (b, a))]


def run_judging(
    questions: list[Question],
    answers: dict[str, dict[str, str]],
    backend: Backend,
    out_dir: str | Path,
    lang: Lang = "vi",
    max_answer_chars: int | None = 6000,
    progress: bool = True,
    params: SamplingParams | None = None,
) -> dict[str, int]:
    """Judge every planned call not done yet; returns counts of this run's calls by status.

    The judge decodes greedily unless ``params`` say otherwise.
    """
    params = params or SamplingParams(max_new_tokens=512)
    path = Path(out_dir) / JUDGMENTS_FILE
    desc = describe(backend, params)
    existing = latest_by_key(read_jsonl(path, repair=True), key=call_key)
    for rec in existing.values():
        if rec.get("status") in DONE_STATUSES and (
            judge_identity(rec.get("judge", {})) != judge_identity(desc) or rec.get("lang") != lang
        ):
            raise JudgingError(
                f"{path} holds verdicts of judge {judge_identity(rec.get('judge', {}))} (prompt {rec.get('lang')!r}); "
                f"this run uses {judge_identity(desc)} (prompt {lang!r}). Use another output folder."
            )
    calls = plan_calls(questions, list(answers))
    todo = []
    for q, first, second in calls:
        hashes = [answer_hash(answers[first][q.id]), answer_hash(answers[second][q.id])]
        rec = existing.get((q.id, first, second))
        if rec and rec.get("status") in DONE_STATUSES and rec.get("answer_hashes") == hashes:
            continue
        if rec and rec.get("status") in DONE_STATUSES:
            log.info(
                "answers for %s (%s vs %s) changed since they were judged; judging again", q.id, first, second
            )
        todo.append((q, first, second, hashes))
    log.info(
        "judging %d models on %d questions: %d calls (both orders), %d done before, %d to go -> %s",
        len(answers),
        len(questions),
        len(calls),
        len(calls) - len(todo),
        len(todo),
        path,
    )
    counts: Counter[str] = Counter()
    system_ok = accepts_system(backend) if todo else True
    step = chunk_size(backend)
    with progress_bar(disable=not progress) as bar:
        task = bar.add_task("judging", total=len(todo))
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            prompts = [
                judge_prompt(
                    q.question,
                    answers[first][q.id],
                    answers[second][q.id],
                    reference=q.reference,
                    lang=lang,
                    max_answer_chars=max_answer_chars,
                )
                for q, first, second, _ in chunk
            ]
            completions = complete(backend, prompts, params, system_ok)
            records = []
            for (q, first, second, hashes), prompt, c in zip(chunk, prompts, completions, strict=True):
                rec = judgment_record(q, first, second, c.to_dict(), desc, lang, hashes, prompt.meta)
                counts[rec["status"]] += 1
                if rec["status"] == "failed":
                    log.warning("judge failed on %s (%s first, %s second): %s", q.id, first, second, c.error)
                records.append(rec)
            append_jsonl(path, records)
            bar.advance(task, len(chunk))
    return {
        "calls": len(calls),
        "done_before": len(calls) - len(todo),
        **{s: counts[s] for s in ("ok", "unparseable", "failed")},
    }


def judgment_record(
    q: Question,
    first: str,
    second: str,
    completion: dict[str, Any],
    judge: dict[str, Any],
    lang: str,
    hashes: list[str],
    meta: dict[str, Any],
) -> dict[str, Any]:
    raw = completion["text"]
    verdict = parse_verdict(raw) if completion["error"] is None else None
    if completion["error"] is not None:
        status = "failed"
    elif verdict is None:
        status = "unparseable"
    else:
        status = "ok"
    winner = {"A": first, "B": second, "C": "tie"}.get(verdict) if verdict else None
    return {
        "question_id": q.id,
        "category": q.category,
        "first": first,
        "second": second,
        "verdict": verdict,
        "winner": winner,
        "status": status,
        "raw": raw,
        "error": completion["error"],
        "attempts": completion["attempts"],
        "finish_reason": completion["finish_reason"],
        "seconds": round(completion["seconds"], 3),
        "truncated": bool(meta.get("truncated", False)),
        "answer_hashes": hashes,
        "judge": judge,
        "lang": lang,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


# ----------------------------------------------------------------------------- games


@dataclass
class Game:
    """One question judged for one pair, both orders combined.

    ``winner`` is ``"model_a"``, ``"model_b"`` or ``"tie"`` for a rated game, ``None`` otherwise;
    ``status`` is ``consistent``, ``inconsistent`` (orders disagree → tie), ``unparseable``,
    ``failed`` or ``incomplete`` (an order not judged yet).
    """

    question_id: str
    category: str
    model_a: str
    model_b: str
    winner: str | None
    status: str
    verdict_ab: str | None
    verdict_ba: str | None

    @property
    def rated(self) -> bool:
        return self.winner is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def combine_orders(qid: str, category: str, a: str, b: str, ab: dict | None, ba: dict | None) -> Game:
    """The game decided by judgment ``ab`` (a shown first) and ``ba`` (b shown first)."""
    v_ab = ab.get("verdict") if ab else None
    v_ba = ba.get("verdict") if ba else None
    if ab is None or ba is None:
        return Game(qid, category, a, b, None, "incomplete", v_ab, v_ba)
    statuses = {ab.get("status"), ba.get("status")}
    if "failed" in statuses:
        return Game(qid, category, a, b, None, "failed", v_ab, v_ba)
    if "unparseable" in statuses:
        return Game(qid, category, a, b, None, "unparseable", v_ab, v_ba)
    label = {a: "model_a", b: "model_b", "tie": "tie"}
    w1, w2 = label[ab["winner"]], label[ba["winner"]]
    if w1 == w2:
        return Game(qid, category, a, b, w1, "consistent", v_ab, v_ba)
    return Game(qid, category, a, b, "tie", "inconsistent", v_ab, v_ba)


def games_from_judgments(records: list[dict[str, Any]], models: list[str] | None = None) -> list[Game]:
    """Games of a judgments file (latest record per call), optionally restricted to ``models``."""
    latest = latest_by_key(records, key=call_key)
    keep = set(models) if models else None
    seen: dict[tuple[str, str, str], str] = {}
    for (qid, first, second), rec in latest.items():
        if keep is not None and not {first, second} <= keep:
            continue
        a, b = sorted((first, second))
        seen.setdefault((qid, a, b), rec.get("category", ""))
    return [
        combine_orders(qid, cat, a, b, latest.get((qid, a, b)), latest.get((qid, b, a)))
        for (qid, a, b), cat in seen.items()
    ]


def judge_stats(records: list[dict[str, Any]], games: list[Game]) -> dict[str, Any]:
    """Call and game counts, and the judge's position bias (share of wins for the first slot)."""
    latest = list(latest_by_key(records, key=call_key).values())
    calls = Counter(r.get("status") for r in latest)
    verdicts = Counter(r.get("verdict") for r in latest if r.get("status") == "ok")
    statuses = Counter(g.status for g in games)
    decided = verdicts["A"] + verdicts["B"]
    both = statuses["consistent"] + statuses["inconsistent"]
    return {
        "judge_calls": len(latest),
        "calls_ok": calls["ok"],
        "calls_unparseable": calls["unparseable"],
        "calls_failed": calls["failed"],
        "verdict_first": verdicts["A"],
        "verdict_second": verdicts["B"],
        "verdict_tie": verdicts["C"],
        "first_position_share": round(verdicts["A"] / decided, 4) if decided else None,
        "games": len(games),
        "games_rated": sum(g.rated for g in games),
        **{
            f"games_{s}": statuses[s]
            for s in ("consistent", "inconsistent", "unparseable", "failed", "incomplete")
        },
        "consistency": round(statuses["consistent"] / both, 4) if both else None,
    }
