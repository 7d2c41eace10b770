"""The one ``merge`` config, shared by ``vinaforge merge`` and the recipe stage, and its dispatcher.

A merge is exactly one of:

- a mergekit config: a mergekit YAML file as it is (``config: merge.yaml``), or the same keys
  inside the recipe (``merge_method``, ``models``, ``base_model``, ``tokenizer``...);
- ``chat_vector:`` θ_vi_base + λ·(θ_instruct − θ_base) (:mod:`vinaforge.merge.chat_vector`);
- ``lora:`` adapters folded into their base (:mod:`vinaforge.merge.lora`).

``sweep:`` optionally tries a grid of values for any key of the config and keeps the candidate
with the best evaluation (:mod:`vinaforge.merge.sweep`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from vinaforge.merge.chat_vector import ChatVectorConfig
from vinaforge.merge.checks import MergeInputError
from vinaforge.merge.lora import LoraMergeConfig
from vinaforge.merge.mergekit_run import MERGEKIT_KEYS, check_method
from vinaforge.recipe import InputPath
from vinaforge.stage import StageConfig


class SweepConfig(StageConfig):
    """Try each combination of values and keep the candidate with the best score."""

    grid: dict[str, list[float]] = Field(min_length=1)  # dotted key of this config -> values
    eval: dict[str, Any] = {}  # settings of the eval stage (everything but `model`)
    judge: dict[str, Any] | None = None  # settings of the judge stage (everything but `models`): all candidates at once
    select: str = "held-out bits_per_byte"  # a metric of the eval stage's report, or "judge" (Bradley–Terry)
    keep_candidates: bool = False

    @field_validator("judge")
    @classmethod
    def _valid_judge(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        from vinaforge.eval.judge.stage import Config as JudgeConfig

        if "models" in value:
            raise ValueError("judge.models: leave it out; the candidates are the models")
        JudgeConfig.model_validate({"models": {"a": "@candidate-a", "b": "@candidate-b"}, **value})
        return value

    @model_validator(mode="after")
    def _something_to_select_by(self):
        if not self.eval and self.judge is None:
            raise ValueError("give `eval` settings, `judge` settings, or both, to score the candidates")
        if self.select == "judge" and self.judge is None:
            raise ValueError("select: judge needs `judge` settings (its judge model or endpoint)")
        return self

    @field_validator("grid")
    @classmethod
    def _non_empty_values(cls, grid: dict[str, list[float]]) -> dict[str, list[float]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid.{key}: give at least one value")
            if key.split(".")[0] == "sweep":
                raise ValueError(f"grid.{key}: a sweep cannot change its own settings")
        return grid

    @field_validator("eval")
    @classmethod
    def _valid_eval(cls, value: dict[str, Any]) -> dict[str, Any]:
        from vinaforge.eval.stage import Config as EvalConfig

        if not value:
            return value
        if "model" in value:
            raise ValueError("eval.model: leave it out; each candidate is evaluated in turn")
        EvalConfig.model_validate({"model": "@candidate", **value})
        return value


class Config(StageConfig):
    config: InputPath | None = None  # a mergekit YAML file, used as it is
    # the same keys as a mergekit YAML file, inside the recipe
    merge_method: str | None = None
    base_model: str | None = None
    models: list[dict[str, Any]] | None = None
    slices: list[dict[str, Any]] | None = None
    modules: dict[str, Any] | None = None
    parameters: dict[str, Any] | None = None
    dtype: str | None = None
    out_dtype: str | None = None
    tokenizer_source: str | None = None
    tokenizer: dict[str, Any] | None = None
    chat_template: str | None = None
    # vinaforge's own merges
    chat_vector: ChatVectorConfig | None = None
    lora: LoraMergeConfig | None = None
    sweep: SweepConfig | None = None
    threads: int | None = Field(None, ge=1)
    shard_size: str = Field("1B", pattern=r"^\d+[kKmMbB]?$")  # parameters per output shard; held in RAM until written

    @field_validator("merge_method")
    @classmethod
    def _known_method(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_method(value)
            except MergeInputError as err:
                raise ValueError(str(err)) from None
        return value

    @model_validator(mode="after")
    def _one_kind(self):
        inline = any(getattr(self, k) is not None for k in MERGEKIT_KEYS)
        kinds = [n for n, on in (("config", self.config is not None), ("mergekit keys", inline),
                                 ("chat_vector", self.chat_vector is not None), ("lora", self.lora is not None)) if on]  # fmt: skip
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of: config (a mergekit YAML file), mergekit keys (merge_method, models...), "
                f"chat_vector, lora; got {', '.join(kinds) or 'none'}"
            )
        if inline and self.merge_method is None:
            raise ValueError("merge_method is missing (linear, slerp, ties, dare_ties, task_arithmetic...)")
        return self

    def kind(self) -> str:
        if self.chat_vector is not None:
            return "chat_vector"
        if self.lora is not None:
            return "lora"
        return "mergekit"

    def mergekit_dict(self) -> dict:
        """The mergekit config this merge runs (chat vectors become task arithmetic)."""
        if self.chat_vector is not None:
            from vinaforge.merge.chat_vector import to_mergekit

            return to_mergekit(self.chat_vector)
        if self.config is not None:
            import yaml

            try:
                data = yaml.safe_load(Path(self.config).read_text(encoding="utf-8"))
            except yaml.YAMLError as err:
                raise MergeInputError(f"{self.config}: not valid YAML ({err})") from None
            if not isinstance(data, dict):
                raise MergeInputError(f"{self.config}: expected a mergekit config (a mapping)")
            return data
        return {k: copy.deepcopy(getattr(self, k)) for k in MERGEKIT_KEYS if getattr(self, k) is not None}


def merge_models(config: Config, out_dir: str | Path, seed: int = 0, overwrite: bool = False) -> dict:
    """Run the one merge a config describes into ``out_dir`` (written atomically)."""
    if config.lora is not None:
        from vinaforge.merge.lora import merge_lora

        return merge_lora(config.lora, out_dir, overwrite=overwrite)
    from vinaforge.merge.mergekit_run import run_mergekit

    info = run_mergekit(config.mergekit_dict(), out_dir, seed=seed, threads=config.threads, overwrite=overwrite,
                        shard_size=config.shard_size)  # fmt: skip
    if config.chat_vector is not None:
        info.update(method="chat_vector", lam=config.chat_vector.lam,
                    groups=[g.model_dump() for g in config.chat_vector.groups])  # fmt: skip
    return info
