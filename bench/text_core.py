"""Throughput of the Vietnamese text core vs ftfy, on the same text in the same run.

Measures, on one core (this process is single-threaded), MB/s of UTF-8 input for:

- ``vinaforge``: ``normalize_text`` (default config: legacy detection, NFC, invisible
  characters, punctuation, whitespace, ``old`` tone style) followed by the syllable statistics
  (syllable count, valid-syllable and diacritic counts) on the normalized text;
- ``baseline``: ``ftfy.fix_text`` followed by ``unicodedata.normalize("NFC")``.

Both use CPU time of this process (``time.process_time``), which a busy shared machine
disturbs less than wall time; wall time is printed too. Prints one JSON line.

With ``--quality DATA_ROOT`` (the shared data folder) it also prints the quality figures of
the text core, one JSON line each: syllable-validator acceptance and rejection, language-ID
accuracy (ours, and py3langid alone with its full and restricted label sets), and legacy
encoding detection.

    .venv/bin/python bench/text_core.py --data ../shared/data/vi_text/news_baomoi_magizbox.jsonl.gz --limit 0
    .venv/bin/python bench/text_core.py --data ../shared/data/vi_text/news_baomoi_magizbox.jsonl.gz \
        --limit 2000 --quality ../shared/data
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import time
import unicodedata
from pathlib import Path


def load_texts(path: Path, field: str, limit: int | None) -> list[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        lines = itertools.islice(fh, limit) if limit else fh
        return [json.loads(line)[field] for line in lines if line.strip()]


def timed(fn, texts: list[str]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn(texts)
    return time.process_time() - cpu, time.perf_counter() - wall


def run_vinaforge(texts: list[str]) -> None:
    from vinaforge.text.normalize import normalize_text
    from vinaforge.text.validate import syllable_profile

    for t in texts:
        syllable_profile(normalize_text(t))


def run_baseline(texts: list[str]) -> None:
    import ftfy

    for t in texts:
        unicodedata.normalize("NFC", ftfy.fix_text(t))


def _jsonl(path: Path, field: str, limit: int | None = None) -> list[str]:
    return load_texts(path, field, limit)


def quality_validator(root: Path) -> dict:
    import re

    from vinaforge.text.syllables import SYLLABLE_RE
    from vinaforge.text.validate import is_countable, is_valid_syllable

    def acceptance(tokens: list[str]) -> tuple[float, int]:
        counted = [t for t in tokens if is_countable(t)]
        return sum(map(is_valid_syllable, counted)) / len(counted), len(counted)

    lex = (root / "lexicons" / "Viet22K.txt").read_text(encoding="utf-8")
    ud = root / "benchmarks" / "ud_vietnamese_vtb" / "vi_vtb-ud-train.conllu"
    ud_lines = [ln[9:] for ln in ud.read_text(encoding="utf-8").splitlines() if ln.startswith("# text = ")]
    en = _jsonl(root / "parallel" / "evbnews_v1_en_vi.jsonl.gz", "en")
    en_tokens = [w for t in en for w in re.findall(r"[^\W\d_]+", t) if is_countable(w)]
    en_types = {w.lower() for w in en_tokens}
    acc22, n22 = acceptance(SYLLABLE_RE.findall(lex))
    accud, nud = acceptance([s for line in ud_lines for s in SYLLABLE_RE.findall(line)])
    return {
        "bench": "text_core.validator",
        "viet22k_accepted": round(acc22, 5),
        "viet22k_syllables": n22,
        "ud_vtb_train_accepted": round(accud, 5),
        "ud_vtb_train_syllables": nud,
        "evbnews_en_types_rejected": round(
            sum(not is_valid_syllable(w) for w in en_types) / len(en_types), 5
        ),
        "evbnews_en_types": len(en_types),
        "evbnews_en_tokens_rejected": round(
            sum(not is_valid_syllable(w) for w in en_tokens) / len(en_tokens), 5
        ),
        "evbnews_en_tokens": len(en_tokens),
    }


def quality_langid(root: Path) -> dict:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    from vinaforge.text.langid import _get_identifier, identify

    full = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    restricted = _get_identifier()
    path = root / "parallel" / "evbnews_v1_en_vi.jsonl.gz"
    out: dict = {"bench": "text_core.langid", "min_chars": 30}
    for side in ("vi", "en"):
        texts = [t for t in _jsonl(path, side) if len(t) >= 30]
        out[f"{side}_sentences"] = len(texts)
        for name, fn in (
            ("vinaforge", lambda t: identify(t)[0]),
            ("py3langid_140", lambda t: full.classify(t)[0]),
            ("py3langid_iso639_1", lambda t: restricted.classify(t)[0]),
        ):
            cpu = time.process_time()
            correct = sum(fn(t) == side for t in texts)
            cpu = time.process_time() - cpu
            out[f"{side}_{name}_accuracy"] = round(correct / len(texts), 5)
            out[f"{side}_{name}_per_s"] = round(len(texts) / cpu)
    return out


def quality_legacy(root: Path, limit: int) -> dict:
    from vinaforge.text.legacy import ENCODINGS, decode_legacy, detect_legacy, encode_legacy
    from vinaforge.text.normalize import fix_punctuation

    docs = [
        fix_punctuation(t) for t in _jsonl(root / "vi_text" / "news_baomoi_magizbox.jsonl.gz", "text", limit)
    ]
    out: dict = {"bench": "text_core.legacy", "docs": len(docs)}
    for enc in ENCODINGS:
        exact = detected = unrepresentable = 0
        for d in docs:
            try:
                e = encode_legacy(d, enc)
            except ValueError:
                unrepresentable += 1
                continue
            exact += decode_legacy(e, enc) == d
            detected += detect_legacy(e) == enc
        out[enc] = {"round_trip_exact": exact, "detected": detected, "unrepresentable": unrepresentable}
    clean = {
        "news_baomoi": _jsonl(root / "vi_text" / "news_baomoi_magizbox.jsonl.gz", "text", limit),
        "viwiki": _jsonl(root / "vi_text" / "viwiki_undertheseanlp.jsonl.gz", "text"),
        "libreoffice_help_vi": _jsonl(root / "vi_text" / "libreoffice_help_vi_paragraphs.jsonl.gz", "text"),
        "evbnews_en": _jsonl(root / "parallel" / "evbnews_v1_en_vi.jsonl.gz", "en"),
        "evbnews_vi": _jsonl(root / "parallel" / "evbnews_v1_en_vi.jsonl.gz", "vi"),
        "debian_gettext_en": _jsonl(root / "parallel" / "debian_gettext_en_vi.jsonl.gz", "en"),
        "debian_gettext_vi": _jsonl(root / "parallel" / "debian_gettext_en_vi.jsonl.gz", "vi"),
    }
    out["false_detections"] = {k: sum(detect_legacy(t) is not None for t in v) for k, v in clean.items()}
    out["unicode_texts_checked"] = sum(len(v) for v in clean.values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="JSONL(.gz) file of documents")
    ap.add_argument("--field", default="text")
    ap.add_argument("--limit", type=int, default=5000, help="documents to use (0: all)")
    ap.add_argument("--quality", type=Path, help="shared data folder: also print quality figures")
    args = ap.parse_args()

    texts = load_texts(args.data, args.field, args.limit or None)
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    run_vinaforge(texts[:50])  # warm-up: imports, tables, the language-ID model is not used
    ours_cpu, ours_wall = timed(run_vinaforge, texts)
    base_cpu, base_wall = timed(run_baseline, texts)
    print(
        json.dumps(
            {
                "bench": "text_core",
                "data": str(args.data),
                "docs": len(texts),
                "mb": round(mb, 2),
                "vinaforge_mb_per_s": round(mb / ours_cpu, 2),
                "baseline_mb_per_s": round(mb / base_cpu, 2),
                "speedup": round(base_cpu / ours_cpu, 2),
                "vinaforge_cpu_s": round(ours_cpu, 2),
                "baseline_cpu_s": round(base_cpu, 2),
                "vinaforge_wall_s": round(ours_wall, 2),
                "baseline_wall_s": round(base_wall, 2),
                "baseline": "ftfy.fix_text + unicodedata.normalize('NFC')",
            }
        )
    )
    if args.quality:
        print(json.dumps(quality_validator(args.quality)), flush=True)
        print(json.dumps(quality_langid(args.quality)), flush=True)
        print(json.dumps(quality_legacy(args.quality, args.limit or 2000)), flush=True)


if __name__ == "__main__":
    main()
