"""English↔Vietnamese translation: generate with :mod:`vinaforge.generate`, score with sacrebleu.

Parallel data comes as JSONL ``{"en": ..., "vi": ...}`` (``.jsonl.gz`` too), as a TSV whose first
two columns are English and Vietnamese (Tatoeba's export), or as two line-aligned text files.
Generation goes through a :class:`vinaforge.generate.Backend` (a local model, batched and
left-padded, or an OpenAI-compatible endpoint), greedy or sampled with a seed and stopped at the
end of the line; ``--shots K`` puts the first K pairs in the prompt as examples and scores the
rest. Scores are sacrebleu's corpus chrF++ and BLEU with their signatures recorded.

Hypotheses are appended to a JSONL file batch by batch, so an interrupted run resumes where it
stopped. Hand-written: the prompt wording and file handling; generation and metrics are the
libraries'.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from vinaforge.generate import Backend, GenRequest, SamplingParams
from vinaforge.io import atomic_write_json, atomic_write_text, open_text
from vinaforge.logs import progress_bar

log = logging.getLogger(__name__)

DIRECTIONS = ("en-vi", "vi-en")
LABELS = {"en": "Tiếng Anh", "vi": "Tiếng Việt"}  # the prompt is in Vietnamese both ways


class ParallelDataError(ValueError):
    """A parallel file that cannot be used; the message names the file and line."""


class TranslationError(RuntimeError):
    """The model produced no text for a sentence (prompt over its context, endpoint down)."""


@dataclass
class Pair:
    en: str
    vi: str
    where: str


def _pair_from_json(rec, where: str) -> Pair:
    if not isinstance(rec, dict):
        raise ParallelDataError(f"{where}: expected a JSON object with 'en' and 'vi'")
    for key in ("en", "vi"):
        if not isinstance(rec.get(key), str) or not rec[key].strip():
            raise ParallelDataError(f"{where}: record has no text in field {key!r}")
    return Pair(rec["en"].strip(), rec["vi"].strip(), where)


def read_pairs(path: str | os.PathLike) -> list[Pair]:
    """Pairs of a JSONL ``{en, vi}`` file or a TSV ``en<TAB>vi[<TAB>...]`` file."""
    p = Path(path)
    pairs: list[Pair] = []
    with open_text(p) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{p}:{lineno}"
            if p.name.endswith((".tsv", ".tsv.gz")):
                cols = line.rstrip("\n").split("\t")
                if len(cols) < 2 or not cols[0].strip() or not cols[1].strip():
                    raise ParallelDataError(f"{where}: expected 'English<TAB>Vietnamese'")
                pairs.append(Pair(cols[0].strip(), cols[1].strip(), where))
            else:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ParallelDataError(f"{where}: not valid JSON ({err.msg})") from None
                pairs.append(_pair_from_json(rec, where))
    if not pairs:
        raise ParallelDataError(f"{p}: no sentence pairs")
    return pairs


def read_aligned(en_file: str | os.PathLike, vi_file: str | os.PathLike) -> list[Pair]:
    """Pairs from two line-aligned files (same number of lines, no empty line on one side only)."""
    with open_text(en_file) as fh:
        en = fh.read().splitlines()
    with open_text(vi_file) as fh:
        vi = fh.read().splitlines()
    if len(en) != len(vi):
        raise ParallelDataError(
            f"{en_file} has {len(en)} lines but {vi_file} has {len(vi)}: the files are not aligned"
        )
    pairs = []
    for i, (a, b) in enumerate(zip(en, vi, strict=True), 1):
        if not a.strip() and not b.strip():
            continue
        if not a.strip() or not b.strip():
            empty = en_file if not a.strip() else vi_file
            raise ParallelDataError(f"{empty}:{i}: empty line where the other file has text")
        pairs.append(Pair(a.strip(), b.strip(), f"{en_file}:{i}"))
    if not pairs:
        raise ParallelDataError(f"{en_file}, {vi_file}: no sentence pairs")
    return pairs


def sides(pair: Pair, direction: str) -> tuple[str, str]:
    """(source, reference) of a pair for ``direction``."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    return (pair.en, pair.vi) if direction == "en-vi" else (pair.vi, pair.en)


def build_prompt(source: str, direction: str, examples: list[tuple[str, str]] = ()) -> str:
    """A completion prompt: an instruction in Vietnamese, optional examples, the source line."""
    src_label, tgt_label = (LABELS[lang] for lang in direction.split("-"))
    head = f"Dịch câu sau từ t{src_label[1:]} sang t{tgt_label[1:]}.\n\n"
    shots = "".join(f"{src_label}: {s}\n{tgt_label}: {t}\n\n" for s, t in examples)
    return f"{head}{shots}{src_label}: {source}\n{tgt_label}:"


def chat_messages(source: str, direction: str, examples: list[tuple[str, str]] = ()) -> list[dict[str, str]]:
    """The same request as one user turn; the backend applies the model's chat template."""
    text = build_prompt(source, direction, examples).rsplit("\n", 1)[0]
    return [{"role": "user", "content": text}]


def first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


def translate_texts(
    backend: Backend,
    requests: list[GenRequest],
    params: SamplingParams,
    on_batch: Callable[[dict[int, str]], None] | None = None,
) -> list[str]:
    """First lines of the backend's continuations, chunk by chunk (shortest prompts together)."""
    order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt or str(requests[i].messages)))
    outputs = [""] * len(requests)
    step = max(1, int(getattr(backend, "batch_size", 0) or 8))
    with progress_bar() as bar:
        task = bar.add_task("translating", total=len(requests))
        for start in range(0, len(order), step):
            idx = order[start : start + step]
            done = backend.generate([requests[i] for i in idx], params)
            for i, c in zip(idx, done, strict=True):
                if not c.ok:
                    raise TranslationError(f"generation failed: {c.error}")
                outputs[i] = first_line(c.text or "")
            if on_batch:
                on_batch({i: outputs[i] for i in idx})
            bar.advance(task, len(idx))
    return outputs


def score(hypotheses: list[str], references: list[str]) -> dict:
    """Corpus chrF++ and BLEU (sacrebleu), with their signatures."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu, chrf = BLEU(), CHRF(word_order=2)
    b = bleu.corpus_score(hypotheses, [references])
    c = chrf.corpus_score(hypotheses, [references])
    return {
        "chrf++": c.score,
        "bleu": b.score,
        "n": len(hypotheses),
        "chrf++_signature": str(chrf.get_signature()),
        "bleu_signature": str(bleu.get_signature()),
    }


def _load_done(path: Path) -> dict[int, str]:
    done: dict[int, str] = {}
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    break  # a line cut by an interruption: redo from there
                done[int(rec["i"])] = rec["hyp"]
    return done


def translate_pairs(
    backend: Backend,
    pairs: list[Pair],
    direction: str,
    out_dir: str | os.PathLike,
    *,
    shots: int = 0,
    chat: bool = False,
    max_pairs: int | None = None,
    params: SamplingParams | None = None,
) -> dict:
    """Translate, score and write ``<direction>.hyps.jsonl`` + ``<direction>.json`` in ``out_dir``.

    Finished hypotheses are kept in ``<direction>.partial.jsonl`` as they come, and reused when
    the same call is repeated after an interruption. Completion prompts stop at the end of the
    line; chat requests go through the model's chat template (``vi_qa`` when it has none).
    """
    params = params or SamplingParams(max_new_tokens=128)
    if not chat and "\n" not in params.stop:
        params = replace(params, stop=[*params.stop, "\n"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if shots >= len(pairs):
        raise ParallelDataError(f"--shots {shots} leaves no pair to score ({len(pairs)} pairs)")
    examples = [sides(p, direction) for p in pairs[:shots]]
    scored = pairs[shots:][:max_pairs] if max_pairs else pairs[shots:]
    src_ref = [sides(p, direction) for p in scored]
    prompts = [
        GenRequest(messages=chat_messages(s, direction, examples)) if chat
        else GenRequest(prompt=build_prompt(s, direction, examples))
        for s, _ in src_ref
    ]  # fmt: skip
    partial = out / f"{direction}.partial.jsonl"
    done = _load_done(partial)
    todo = [i for i in range(len(prompts)) if i not in done]
    if done:
        log.info("%s: %d of %d hypotheses already done, resuming", direction, len(done), len(prompts))
    with open(partial, "a", encoding="utf-8") as fh:

        def keep(batch: dict[int, str]) -> None:
            for j, hyp in batch.items():
                fh.write(json.dumps({"i": todo[j], "hyp": hyp}, ensure_ascii=False) + "\n")
            fh.flush()

        if todo:
            new = translate_texts(backend, [prompts[i] for i in todo], params, on_batch=keep)
            done.update({todo[j]: h for j, h in enumerate(new)})
    hyps = [done[i] for i in range(len(prompts))]
    result = score(hyps, [r for _, r in src_ref])
    result.update(direction=direction, shots=shots, chat=chat, sampled=not params.greedy,
                  generator=backend.describe())  # fmt: skip
    rows = [
        {"source": s, "reference": r, "hypothesis": h, "where": p.where}
        for (s, r), h, p in zip(src_ref, hyps, scored, strict=True)
    ]
    atomic_write_text(
        out / f"{direction}.hyps.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    )
    atomic_write_json(out / f"{direction}.json", result)
    partial.unlink(missing_ok=True)
    log.info(
        "%s: chrF++ %.2f, BLEU %.2f on %d pairs", direction, result["chrf++"], result["bleu"], result["n"]
    )
    return result
