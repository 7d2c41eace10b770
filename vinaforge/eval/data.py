"""Local benchmark files: where they live, how each public format reads, and what is wrong with them.

Every benchmark reads its public format from a data folder laid out like
``../shared/data/benchmarks`` (``vmlu/dev.jsonl``, ``okapi_vi/m_arc_vi_test.json``...). The
folder comes from, in order: an explicit ``data_dir`` (``--data-dir``, a recipe key, or
``--metadata '{"data_dir": ...}'`` under plain ``lm_eval``), the ``VINAFORGE_EVAL_DATA``
environment variable, then ``../shared/data/benchmarks`` from the working directory.

A bad record stops the run with the file and line of the first one (missing field, answer
letter outside the choices, duplicate id...); so does a split with no records. Hand-written:
the formats are the benchmarks' own, and no library validates them with line numbers.
"""

from __future__ import annotations

import bisect
import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vinaforge.eval import vmlu
from vinaforge.io import open_text

DATA_ENV = "VINAFORGE_EVAL_DATA"
DEFAULT_DATA_DIR = Path("..") / "shared" / "data" / "benchmarks"
LETTERS = "ABCDEFGHIJ"


class TaskDataError(ValueError):
    """A benchmark file that cannot be used; the message names the file (and line)."""


@dataclass(frozen=True)
class SplitSpec:
    """One evaluated split of a benchmark and the lm-eval task that scores it."""

    split: str
    task: str
    labeled: bool = True
    optional: bool = False  # skipped, not an error, when its file is absent
    variant: str = ""  # e.g. "mc1" / "mc2" for TruthfulQA


@dataclass(frozen=True)
class Benchmark:
    name: str
    fmt: str
    folder: str
    files: dict[str, tuple[str, ...]]  # split -> candidate file names, first found wins
    eval_splits: tuple[SplitSpec, ...]
    fewshot_split: str | None = None
    vmlu_subjects: bool = False  # ids start with VMLU's subject numbers (category breakdown)


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "vmlu",
            "vmlu",
            "vmlu",
            {"dev": ("dev.jsonl",), "valid": ("valid.jsonl",), "test": ("test.jsonl",)},
            (
                SplitSpec("dev", "vf_vmlu_dev"),
                SplitSpec("valid", "vf_vmlu_valid", optional=True),
                SplitSpec("test", "vf_vmlu_test", labeled=False, optional=True),
            ),
            fewshot_split="dev",
            vmlu_subjects=True,
        ),
        Benchmark(
            # our own 40 questions in VMLU's format (examples/eval/vmlu_mini, data dir examples/eval);
            # their id prefixes are the set's own subjects, not VMLU's, so no category breakdown
            "vmlu_mini",
            "vmlu",
            "vmlu_mini",
            {"dev": ("dev.jsonl",)},
            (SplitSpec("dev", "vf_vmlu_mini"),),
            fewshot_split="dev",
        ),
        Benchmark(
            "arc_vi",
            "okapi_mc",
            "okapi_vi",
            {
                "train": ("m_arc_vi_train.json", "m_arc_vi_train.jsonl"),
                "validation": ("m_arc_vi_validation.json", "m_arc_vi_validation.jsonl"),
                "test": ("m_arc_vi_test.json", "m_arc_vi_test.jsonl"),
            },
            (SplitSpec("test", "vf_arc_vi", variant="text"),),
            fewshot_split="train",
        ),
        Benchmark(
            "mmlu_vi",
            "okapi_mc",
            "okapi_vi",
            {
                "dev": ("m_mmlu_vi_dev.json", "m_mmlu_vi_dev.jsonl"),
                "val": ("m_mmlu_vi_val.json", "m_mmlu_vi_val.jsonl"),
            },
            (SplitSpec("val", "vf_mmlu_vi"),),
            fewshot_split="dev",
        ),
        Benchmark(
            "hellaswag_vi",
            "hellaswag",
            "okapi_vi",
            {
                "validation": (
                    "m_hellaswag_vi_validation.json",
                    "m_hellaswag_vi_val.json",
                    "m_hellaswag_vi_validation.jsonl",
                ),
            },
            (SplitSpec("validation", "vf_hellaswag_vi"),),
            fewshot_split="validation",
        ),
        Benchmark(
            "truthfulqa_vi",
            "truthfulqa",
            "okapi_vi",
            {
                "validation": (
                    "m_truthfulqa_vi_validation.json",
                    "m_truthfulqa_vi_val.json",
                    "m_truthfulqa_vi_validation.jsonl",
                ),
            },
            (
                SplitSpec("validation", "vf_truthfulqa_vi_mc1", variant="mc1"),
                SplitSpec("validation", "vf_truthfulqa_vi_mc2", variant="mc2"),
            ),
        ),
        Benchmark(
            "belebele_vie",
            "belebele",
            "belebele",
            {"test": ("vie_Latn.jsonl", "vie_Latn.json")},
            (SplitSpec("test", "vf_belebele_vie"),),
            fewshot_split="test",
        ),
        Benchmark(
            "xnli_vi",
            "xnli",
            "xnli",
            {
                "test": ("xnli.test.tsv", "vi_test.jsonl", "test.vi.jsonl"),
                "validation": ("xnli.dev.tsv", "vi_validation.jsonl", "dev.vi.jsonl"),
            },
            (SplitSpec("test", "vf_xnli_vi"),),
        ),
        Benchmark(
            "xcopa_vi",
            "xcopa",
            "xcopa",
            {
                "test": ("test.vi.jsonl", "vi/test.vi.jsonl"),
                "validation": ("val.vi.jsonl", "vi/val.vi.jsonl"),
            },
            (SplitSpec("test", "vf_xcopa_vi"),),
            fewshot_split="validation",
        ),
    )
}

TASK_PREFIX = "vf_"
"""Our lm-eval task names start with ``vf_``, so that ``lm_eval --include_path vinaforge/eval/tasks``
never replaces a built-in task of the same name (lm-eval ships Okapi's ``arc_vi``,
``hellaswag_vi``, ``truthfulqa_vi_mc1/2`` and ``xnli_vi``/``xcopa_vi``, which read other data)."""

TASK_INDEX: dict[str, tuple[Benchmark, SplitSpec]] = {
    s.task: (b, s) for b in BENCHMARKS.values() for s in b.eval_splits
}


def task_name(name: str) -> str:
    """Our lm-eval task for ``name``, which may omit the ``vf_`` prefix (``vmlu_dev`` → ``vf_vmlu_dev``)."""
    return TASK_PREFIX + name if name not in TASK_INDEX and TASK_PREFIX + name in TASK_INDEX else name


# ----------------------------------------------------------------------------- data folder


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The benchmark folder: explicit value, then ``$VINAFORGE_EVAL_DATA``, then the default."""
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_dir():
            raise TaskDataError(f"data dir {p} does not exist (given as data_dir / --data-dir)")
        return p
    env = os.environ.get(DATA_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise TaskDataError(f"data dir {p} does not exist (given as ${DATA_ENV})")
        return p
    return DEFAULT_DATA_DIR


def split_file(bench: Benchmark, split: str, data_dir: Path) -> Path | None:
    """The first existing candidate file of ``split``, or None."""
    for name in bench.files.get(split, ()):
        p = data_dir / bench.folder / name
        if p.is_file():
            return p
    return None


def expected_paths(bench: Benchmark, split: str, data_dir: Path) -> str:
    return " or ".join(str(data_dir / bench.folder / n) for n in bench.files.get(split, ()))


def require_split_file(bench: Benchmark, split: str, data_dir: Path) -> Path:
    p = split_file(bench, split, data_dir)
    if p is None:
        raise TaskDataError(
            f"{bench.name}: no {split} file; expected {expected_paths(bench, split, data_dir)} "
            f"(set --data-dir or ${DATA_ENV} to a folder laid out like ../shared/data/benchmarks)"
        )
    return p


# ----------------------------------------------------------------------------- raw readers


def _line_finder(text: str):
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]
    return lambda pos: bisect.bisect_right(newlines, pos - 1) + 1


def _json_array_records(text: str, path: Path) -> list[tuple[int, Any]]:
    """Elements of a top-level JSON array, each with the line where it starts."""
    line_of = _line_finder(text)
    dec = json.JSONDecoder()
    ws = re.compile(r"\s*")
    i = ws.match(text, 0).end() + 1  # past "["
    out: list[tuple[int, Any]] = []
    while True:
        i = ws.match(text, i).end()
        if i >= len(text):
            raise TaskDataError(f"{path}:{line_of(i)}: JSON array is not closed")
        if text[i] == "]" and not out:
            break
        try:
            obj, end = dec.raw_decode(text, i)
        except json.JSONDecodeError as err:
            raise TaskDataError(f"{path}:{line_of(err.pos)}: not valid JSON ({err.msg})") from None
        out.append((line_of(i), obj))
        i = ws.match(text, end).end()
        if i < len(text) and text[i] == ",":
            i += 1
        elif i < len(text) and text[i] == "]":
            break
        else:
            raise TaskDataError(f"{path}:{line_of(i)}: expected ',' or ']' in the JSON array")
    return out


def _jsonl_records(path: Path) -> list[tuple[int, Any]]:
    out = []
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append((lineno, json.loads(line)))
            except json.JSONDecodeError as err:
                raise TaskDataError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
    return out


def _tsv_records(path: Path) -> list[tuple[int, Any]]:
    with open_text(path) as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(reader.line_num, dict(row)) for row in reader]


def read_records(path: str | os.PathLike) -> list[tuple[int, dict]]:
    """Records of a JSONL, JSON-array or TSV file, each with its 1-based line number."""
    p = Path(path)
    if p.name.endswith(".tsv"):
        records = _tsv_records(p)
    elif p.name.endswith(".json"):
        with open_text(p) as fh:
            text = fh.read()
        records = _json_array_records(text, p) if text.lstrip().startswith("[") else _jsonl_records(p)
    else:
        records = _jsonl_records(p)
    for lineno, rec in records:
        if not isinstance(rec, dict):
            raise TaskDataError(f"{p}:{lineno}: expected a JSON object, got {type(rec).__name__}")
    return records


# ----------------------------------------------------------------------------- field checks


def _where(path: Path, line: int) -> str:
    return f"{path}:{line}"


def _text(rec: dict, key: str, where: str, *, allow_empty: bool = False) -> str:
    if key not in rec or rec[key] is None:
        raise TaskDataError(f"{where}: record has no field {key!r}")
    value = rec[key]
    if not isinstance(value, str):
        raise TaskDataError(f"{where}: field {key!r} should be text, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise TaskDataError(f"{where}: field {key!r} is empty")
    return value


def _text_list(rec: dict, key: str, where: str, min_len: int = 2) -> list[str]:
    if key not in rec or rec[key] is None:
        raise TaskDataError(f"{where}: record has no field {key!r}")
    value = rec[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TaskDataError(f"{where}: field {key!r} should be a list of texts")
    if len(value) < min_len:
        raise TaskDataError(f"{where}: field {key!r} has {len(value)} entries; at least {min_len} needed")
    return value


def _letter_index(answer: Any, n_choices: int, where: str) -> int:
    letters = LETTERS[:n_choices]
    letter = answer.strip().upper() if isinstance(answer, str) else ""
    if len(letter) != 1 or letter not in letters:
        raise TaskDataError(
            f"{where}: answer {answer!r} is not one of the choices {letters[0]}-{letters[-1]}"
        )
    return letters.index(letter)


def _int_label(value: Any, n: int, where: str, key: str, base: int = 0) -> int:
    try:
        idx = int(str(value).strip()) - base
    except (TypeError, ValueError):
        raise TaskDataError(f"{where}: field {key!r} should be a number, got {value!r}") from None
    if not 0 <= idx < n:
        raise TaskDataError(
            f"{where}: field {key!r} = {value!r} is outside the {n} choices ({base}..{base + n - 1})"
        )
    return idx


_CHOICE_PREFIX = re.compile(r"^\s*([A-J])\s*[.)]\s?")


# ----------------------------------------------------------------------------- formats


def parse_vmlu(rec: dict, where: str, labeled: bool) -> dict:
    qid = rec.get("id")
    if qid is None:
        raise TaskDataError(f"{where}: record has no field 'id'")
    question = _text(rec, "question", where)
    choices = _text_list(rec, "choices", where)
    if len(choices) > len(LETTERS):
        raise TaskDataError(f"{where}: {len(choices)} choices; at most {len(LETTERS)} supported")
    options = []
    for k, choice in enumerate(choices):
        m = _CHOICE_PREFIX.match(choice)
        if m and m.group(1) != LETTERS[k]:
            raise TaskDataError(
                f"{where}: choice {k + 1} is labelled {m.group(1)!r}, expected {LETTERS[k]!r}"
            )
        options.append(choice[m.end() :] if m else choice)
    answer = rec.get("answer")
    if labeled and answer is None:
        raise TaskDataError(f"{where}: record has no field 'answer'")
    gold = _letter_index(answer, len(options), where) if answer is not None else -1
    return {
        "id": str(qid),
        "question": question,
        "options": options,
        "gold": gold,
        "subject": vmlu.subject_of(str(qid)) or "",
        "category": vmlu.category_of(str(qid)) or "",
    }


def parse_okapi_mc(rec: dict, where: str, labeled: bool) -> dict:
    question = _text(rec, "instruction", where)
    options: list[str] = []
    gap = None
    for letter in "abcde":
        key = f"option_{letter}"
        value = rec.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            gap = gap or key
            continue
        if gap:
            raise TaskDataError(f"{where}: {key} is given but {gap} is missing")
        if not isinstance(value, str):
            raise TaskDataError(f"{where}: field {key!r} should be text, got {type(value).__name__}")
        options.append(value)
    if len(options) < 2:
        raise TaskDataError(f"{where}: record has fewer than two options (option_a, option_b...)")
    if "answer" not in rec:
        raise TaskDataError(f"{where}: record has no field 'answer'")
    return {
        "id": str(rec.get("id", where)),
        "question": question,
        "options": options,
        "gold": _letter_index(rec["answer"], len(options), where),
    }


def parse_hellaswag(rec: dict, where: str, labeled: bool) -> dict:
    endings = _text_list(rec, "endings", where)
    ctx_a = rec.get("ctx_a")
    if ctx_a is None:
        ctx_a = _text(rec, "ctx", where)
    elif not isinstance(ctx_a, str):
        raise TaskDataError(f"{where}: field 'ctx_a' should be text")
    ctx_b = rec.get("ctx_b") or ""
    if "label" not in rec:
        raise TaskDataError(f"{where}: record has no field 'label'")
    return {
        "id": str(rec.get("ind", rec.get("id", where))),
        "activity_label": str(rec.get("activity_label") or ""),
        "ctx_a": ctx_a,
        "ctx_b": str(ctx_b),
        "endings": endings,
        "gold": _int_label(rec["label"], len(endings), where, "label"),
    }


def _tqa_targets(rec: dict, name: str, where: str) -> tuple[list[str], list[int]]:
    """TruthfulQA targets in any of its public shapes.

    ``{"mc1_targets": {"answer": 1, ...}}`` (original), ``{"mc1_targets": {"choices": [...],
    "labels": [...]}}`` (HF ``truthful_qa``), ``mc1_targets_choices`` + ``mc1_targets_labels``
    (flattened Okapi/m_truthfulqa).
    """
    nested = rec.get(f"{name}_targets")
    if isinstance(nested, dict) and "choices" in nested:
        choices, labels = nested.get("choices"), nested.get("labels")
    elif isinstance(nested, dict):
        choices, labels = list(nested.keys()), list(nested.values())
    elif f"{name}_targets_choices" in rec:
        choices, labels = rec.get(f"{name}_targets_choices"), rec.get(f"{name}_targets_labels")
    else:
        raise TaskDataError(f"{where}: record has no field '{name}_targets' (or '{name}_targets_choices')")
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices) or len(choices) < 2:
        raise TaskDataError(f"{where}: {name} choices should be a list of at least two texts")
    if not isinstance(labels, list) or len(labels) != len(choices):
        raise TaskDataError(f"{where}: {name} labels should be a list as long as its choices")
    try:
        labels = [int(x) for x in labels]
    except (TypeError, ValueError):
        raise TaskDataError(f"{where}: {name} labels should be 0 or 1") from None
    if any(x not in (0, 1) for x in labels) or 1 not in labels:
        raise TaskDataError(f"{where}: {name} labels should be 0/1 with at least one true answer")
    if name == "mc1" and labels.count(1) != 1:
        raise TaskDataError(f"{where}: mc1 needs exactly one true answer, got {labels.count(1)}")
    return choices, labels


def parse_truthfulqa(rec: dict, where: str, labeled: bool) -> dict:
    question = _text(rec, "question", where)
    mc1, mc1_labels = _tqa_targets(rec, "mc1", where)
    mc2, mc2_labels = _tqa_targets(rec, "mc2", where)
    return {
        "id": str(rec.get("id", where)),
        "question": question,
        "mc1_choices": mc1,
        "mc1_labels": mc1_labels,
        "mc2_choices": mc2,
        "mc2_labels": mc2_labels,
        "gold": mc1_labels.index(1),
    }


def parse_belebele(rec: dict, where: str, labeled: bool) -> dict:
    options = [_text(rec, f"mc_answer{k}", where, allow_empty=True) for k in range(1, 5)]
    if "correct_answer_num" not in rec:
        raise TaskDataError(f"{where}: record has no field 'correct_answer_num'")
    return {
        "id": f"{rec.get('link', '')}#{rec.get('question_number', where)}",
        "passage": _text(rec, "flores_passage", where),
        "question": _text(rec, "question", where),
        "options": options,
        "gold": _int_label(rec["correct_answer_num"], 4, where, "correct_answer_num", base=1),
    }


XNLI_LABELS = ("entailment", "neutral", "contradiction")


def parse_xnli(rec: dict, where: str, labeled: bool) -> dict:
    premise_key = "premise" if "premise" in rec else "sentence1"
    hypothesis_key = "hypothesis" if "hypothesis" in rec else "sentence2"
    label_key = "label" if "label" in rec else "gold_label"
    if label_key not in rec:
        raise TaskDataError(f"{where}: record has no field 'label' (or 'gold_label')")
    label = rec[label_key]
    if isinstance(label, str) and label.strip() in XNLI_LABELS:
        gold = XNLI_LABELS.index(label.strip())
    else:
        gold = _int_label(label, 3, where, label_key)
    return {
        "id": str(rec.get("pairID", rec.get("id", where))),
        "premise": _text(rec, premise_key, where),
        "hypothesis": _text(rec, hypothesis_key, where),
        "gold": gold,
    }


def parse_xcopa(rec: dict, where: str, labeled: bool) -> dict:
    question = _text(rec, "question", where)
    if question not in ("cause", "effect"):
        raise TaskDataError(f"{where}: field 'question' should be 'cause' or 'effect', got {question!r}")
    if "label" not in rec:
        raise TaskDataError(f"{where}: record has no field 'label'")
    return {
        "id": str(rec.get("idx", where)),
        "premise": _text(rec, "premise", where),
        "choice1": _text(rec, "choice1", where),
        "choice2": _text(rec, "choice2", where),
        "question": question,
        "gold": _int_label(rec["label"], 2, where, "label"),
    }


PARSERS = {
    "vmlu": parse_vmlu,
    "okapi_mc": parse_okapi_mc,
    "hellaswag": parse_hellaswag,
    "truthfulqa": parse_truthfulqa,
    "belebele": parse_belebele,
    "xnli": parse_xnli,
    "xcopa": parse_xcopa,
}


def _keep_record(fmt: str, path: Path, rec: dict) -> bool:
    """XNLI's public TSV holds all 15 languages; only the Vietnamese rows belong to xnli_vi."""
    if fmt == "xnli" and path.name.endswith(".tsv") and "language" in rec:
        return rec["language"] == "vi"
    return True


def load_items(bench: Benchmark, path: str | os.PathLike, labeled: bool = True) -> list[dict]:
    """Parse and check every record of one split file; the first bad one raises with file:line."""
    p = Path(path)
    parse = PARSERS[bench.fmt]
    items: list[dict] = []
    seen: dict[str, int] = {}
    for lineno, rec in read_records(p):
        if not _keep_record(bench.fmt, p, rec):
            continue
        where = _where(p, lineno)
        item = parse(rec, where, labeled)
        if bench.fmt == "vmlu" and not bench.vmlu_subjects:
            item.update(subject="", category="")
        if item["id"] in seen and item["id"] != where:
            raise TaskDataError(f"{where}: duplicate id {item['id']!r} (first at line {seen[item['id']]})")
        seen[item["id"]] = lineno
        items.append(item)
    if not items:
        raise TaskDataError(f"{p}: the split is empty (no {bench.name} records)")
    return items


def load_split(benchmark: str, split: str, data_dir: str | os.PathLike | None = None) -> list[dict]:
    """Checked records of ``benchmark``'s ``split`` from the data folder."""
    bench = BENCHMARKS[benchmark]
    root = resolve_data_dir(data_dir)
    labeled = all(s.labeled for s in bench.eval_splits if s.split == split)
    return load_items(bench, require_split_file(bench, split, root), labeled=labeled)
