"""Benchmark-overlap check for tuning data: a thin call to :mod:`vinaforge.factory.decontaminate`.

The factory's module owns the n-gram index (normalized Vietnamese syllable n-grams of every
benchmark vinaforge evaluates, boilerplate n-grams left out); this module only picks the folders
(``auto``: our own ``examples/eval`` questions plus the eval's data folder, ``../shared/data/benchmarks``
or ``$VINAFORGE_EVAL_DATA``) and answers "does this record overlap, and with what".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


def resolve_benchmark_dirs(dirs: list[str]) -> list[str]:
    """``auto`` → ``examples/eval`` (if present) and the eval data folder (if present)."""
    from vinaforge.factory.decontaminate import default_benchmark_dirs

    out: list[str] = []
    for d in dirs:
        if d == "auto":
            if Path("examples/eval").is_dir():
                out.append("examples/eval")
            out.extend(default_benchmark_dirs())
        else:
            if not Path(d).is_dir():
                raise ValueError(f"data.benchmark_dirs: {d} is not a folder")
            out.append(d)
    return list(dict.fromkeys(out))


@dataclass
class ContaminationIndex:
    """Which benchmark item (if any) a record's text overlaps."""

    index: Any
    config: Any

    @classmethod
    def for_dirs(cls, dirs: list[str], n: int = 8) -> ContaminationIndex:
        from vinaforge.factory.decontaminate import DecontamConfig, build_index

        cfg = DecontamConfig(benchmark_dirs=resolve_benchmark_dirs(dirs), ngram=max(8, min(13, n)),
                             require_benchmarks=False)  # fmt: skip
        if not cfg.benchmark_dirs:
            import numpy as np

            from vinaforge.factory.decontaminate import BenchmarkIndex

            return cls(BenchmarkIndex(cfg.ngram, np.empty(0, np.uint64), np.empty(0, np.int32), []), cfg)
        return cls(build_index(cfg), cfg)

    def match(self, text_or_record: Any) -> tuple[str, str, int] | None:
        """``(benchmark/split, item id, shared n-grams)`` of the strongest overlap, or None."""
        from vinaforge.factory.decontaminate import contamination

        rec = {"text": text_or_record} if isinstance(text_or_record, str) else text_or_record
        found = contamination(rec, self.index, self.config)
        if not found:
            return None
        top = found[0]
        return f"{top['benchmark']}/{top['split']}", top["item"], top["shared_ngrams"]

    def describe(self) -> dict[str, int]:
        """Items indexed per benchmark (the report says what was checked)."""
        return self.index.benchmarks()
