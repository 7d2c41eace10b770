"""Per-document scores for multiple-choice tasks: ``acc``, byte-normalised ``acc_norm``, ``mc2``.

lm-eval's built-in ``acc_norm`` divides a choice's log-likelihood by its length in characters.
In Vietnamese a character may take one to four UTF-8 bytes (``a`` vs ``ặ``), and tokenizers see
bytes, so we divide by UTF-8 bytes instead (lm-eval calls that ``acc_bytes``; our tasks report
it under the usual name ``acc_norm``). The task YAMLs name these functions as
``process_results``; lm-eval aggregates them (mean) and computes the standard errors.

Hand-written: a few lines, kept in one place so that every task scores the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def byte_length(text: str) -> int:
    return len(text.encode("utf-8"))


def argmax(values: Sequence[float]) -> int:
    """Index of the largest value; the first one on ties (as numpy.argmax)."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def choice_scores(lls: Sequence[float], choices: Sequence[str]) -> tuple[int, int]:
    """Predicted index by raw log-likelihood and by log-likelihood per UTF-8 byte."""
    per_byte = [ll / max(byte_length(c), 1) for ll, c in zip(lls, choices, strict=True)]
    return argmax(lls), argmax(per_byte)


def _lls(results) -> list[float]:
    return [float(r[0]) for r in results]


def process_results(doc: dict, results) -> dict:
    """``acc`` and ``acc_norm`` (per byte) of one multiple-choice document."""
    pred, pred_norm = choice_scores(_lls(results), doc["choices"])
    gold = int(doc["gold"])
    return {"acc": float(pred == gold), "acc_norm": float(pred_norm == gold)}


def process_results_mc1(doc: dict, results) -> dict:
    """TruthfulQA MC1: the single true answer must have the highest log-likelihood."""
    pred = argmax(_lls(results))
    return {"mc1": float(doc["labels"][pred] == 1)}


def process_results_mc2(doc: dict, results) -> dict:
    """TruthfulQA MC2: normalised probability mass on the true answers."""
    lls = _lls(results)
    top = max(lls)
    probs = [math.exp(x - top) for x in lls]
    total = sum(probs)
    return {"mc2": sum(p for p, lab in zip(probs, doc["labels"], strict=True) if lab == 1) / total}


def process_results_unlabeled(doc: dict, results) -> dict:
    """A split without answers (VMLU test): nothing to score; predictions come from the samples."""
    return {"bypass": None}
