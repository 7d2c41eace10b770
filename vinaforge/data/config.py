"""Settings of the curation stage: one pydantic model shared by the CLI and recipes.

Hand-written: the defaults are our Vietnamese choices (FineWeb-2 ``vie_Latn`` thresholds as the
starting point, re-measured on syllables; see ``docs/curation.md``); every threshold lives here
so that a recipe or ``--set key=value`` can change it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from vinaforge.recipe import InputPaths
from vinaforge.stage import StageConfig
from vinaforge.text.normalize import NormalizeConfig

PiiType = Literal["email", "phone", "id_number", "ip", "card"]


class InputCheckConfig(StageConfig):
    """What makes a record unusable before any language or quality test."""

    max_chars: int = Field(1_000_000, ge=1, description="longer documents are rejected as too_long")
    max_bad_char_ratio: float = Field(
        0.05, ge=0, le=1, description="share of control, private-use or U+FFFD characters"
    )


class LanguageConfig(StageConfig):
    """Languages to keep, each with its minimum classifier confidence."""

    keep: dict[str, float] = Field(default_factory=lambda: {"vi": 0.5, "en": 0.5})
    max_chars: int = Field(1000, ge=50, description="characters of the document shown to the classifier")

    @field_validator("keep")
    @classmethod
    def _known_labels(cls, v: dict[str, float]) -> dict[str, float]:
        for label, thr in v.items():
            if label not in ("vi", "en", "other"):
                raise ValueError(f"language {label!r} is not one the classifier outputs (vi, en, other)")
            if not 0 <= thr <= 1:
                raise ValueError(f"threshold for {label!r} must be within [0, 1], got {thr}")
        if not v:
            raise ValueError("keep at least one language")
        return v


class GopherRepetitionConfig(StageConfig):
    """Gopher repetition rules on syllables (Rae et al. 2021, table A1; FineWeb-2 vie_Latn).

    The n-gram keys are in syllables: FineWeb-2's word n-grams (2-4 and 5-10 words, pyvi words)
    times 1.4, the syllables per pyvi word we measured on Vietnamese news, Wikipedia and law.
    """

    enabled: bool = True
    dup_line_frac: float | None = 0.293
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: dict[int, float] = Field(default_factory=lambda: {3: 0.223, 4: 0.197, 6: 0.171})
    dup_n_grams: dict[int, float] = Field(
        default_factory=lambda: {7: 0.178, 8: 0.163, 10: 0.15, 11: 0.136, 13: 0.124, 14: 0.111}
    )
    window_syllables: int | None = Field(
        1000,
        ge=50,
        description="n-gram rules on documents longer than 1.5 windows are averaged over windows of this size",
    )


class GopherQualityConfig(StageConfig):
    """Gopher quality rules with syllables as words and per-language stopwords."""

    enabled: bool = True
    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 2.5
    max_avg_word_length: float | None = 8.0
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    max_non_alpha_words_ratio: float | None = 0.803
    min_stop_words: int | None = 2
    stop_words: dict[str, list[str]] = Field(
        default_factory=dict,
        description="per-language stopword lists replacing the built-in ones (vi: ours, en: Gopher's)",
    )


class FineWebQualityConfig(StageConfig):
    """FineWeb line rules (FineWeb-2 vie_Latn values; the short-line rule is off as in FineWeb-2)."""

    enabled: bool = True
    line_punct_thr: float | None = 0.333
    line_punct_exclude_zero: bool = False
    short_line_thr: float | None = None
    short_line_length: int = 30
    char_duplicates_ratio: float | None = 0.1
    new_line_ratio: float | None = 0.103


class FlaggedWordsConfig(StageConfig):
    """Adult, gambling and abusive words: reject when they cover too much of the text."""

    enabled: bool = True
    max_ratio: float = Field(0.02, ge=0, le=1, description="flagged syllables / all syllables")
    extra_words_file: str | None = Field(None, description="one word or phrase a line, added to ours")
    languages: list[str] = Field(default_factory=lambda: ["vi", "en"])


class PIIConfig(StageConfig):
    enabled: bool = True
    types: list[PiiType] = Field(default_factory=lambda: ["email", "phone", "id_number", "ip", "card"])


class MinhashConfig(StageConfig):
    """MinHash LSH near-duplicate removal (datatrove's four MinHash stages, syllable shingles)."""

    enabled: bool = True
    n_grams: int = Field(3, ge=1, le=20)
    num_buckets: int = Field(20, ge=1)
    hashes_per_bucket: int = Field(5, ge=1)
    seed: int = 1
    min_similarity: float | None = Field(
        0.5,
        ge=0,
        le=1,
        description="verify LSH pairs: share of equal hashes over the whole signature (None: off)",
    )
    keep_cluster_size: bool = Field(True, description="write minhash_cluster_size on kept documents")


class DedupConfig(StageConfig):
    exact: bool = True
    minhash: MinhashConfig = Field(default_factory=MinhashConfig)


class TiersConfig(StageConfig):
    """How kept documents are split into ``high`` and ``low`` quality tiers."""

    method: Literal["quantile", "threshold"] = "quantile"
    high_fraction: float = Field(0.5, gt=0, lt=1, description="quantile method: top share, per language")
    high_threshold: float = Field(0.6, ge=0, le=1, description="threshold method: minimum score for high")


class Config(StageConfig):
    """``vinaforge data curate`` / the ``curate`` recipe stage."""

    inputs: InputPaths = Field(
        default_factory=list,
        description="files, folders, globs, `hf:org/name` hub datasets or save_to_disk folders",
    )
    text_field: str = "text"
    id_field: str = "id"
    text_unit: Literal["file", "paragraph", "line"] = Field(
        "file", description="what one document is in a plain-text (.txt) file"
    )
    hf_split: str = "train"
    hf_config: str | None = None
    hf_streaming: bool = True
    limit: int = Field(-1, description="read at most this many records per task (-1: all)")

    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig)
    input_check: InputCheckConfig = Field(default_factory=InputCheckConfig)
    language: LanguageConfig = Field(default_factory=LanguageConfig)
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    fineweb_quality: FineWebQualityConfig = Field(default_factory=FineWebQualityConfig)
    flagged_words: FlaggedWordsConfig = Field(default_factory=FlaggedWordsConfig)
    pii: PIIConfig = Field(default_factory=PIIConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    tiers: TiersConfig = Field(default_factory=TiersConfig)

    output_format: Literal["jsonl", "parquet"] = "jsonl"
    executor: Literal["local", "slurm", "ray"] = "local"
    tasks: int = Field(0, ge=0, description="datatrove tasks (0: one per input file, at most 64)")
    workers: int = Field(0, ge=0, description="parallel processes for local runs (0: all cores)")
    slurm: dict = Field(
        default_factory=dict, description="SlurmPipelineExecutor settings (partition, time...)"
    )
    ray: dict = Field(default_factory=dict, description="RayPipelineExecutor settings (cpus_per_task...)")
    keep_intermediate: bool = Field(False, description="keep _work/ shards and signatures after success")
    report_examples: int = Field(2, ge=0, description="rejected examples per filter in the report")

    @model_validator(mode="after")
    def _slurm_needs_partition(self) -> Config:
        if self.executor == "slurm" and not self.slurm.get("partition"):
            raise ValueError("executor: slurm needs slurm.partition (and usually slurm.time)")
        return self
