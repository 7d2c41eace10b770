"""All judge steps from one config: answers for each model, pairwise judging, ratings.

:class:`JudgeConfig` is the one config of the ``judge`` recipe stage and of
``vinaforge eval judge all --config``. Every step is resumable, so re-running after an
interruption (or after adding a model) only does what is missing. Hand-written glue.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from vinaforge.eval.judge.answers import check_model_name
from vinaforge.generate import BackendConfig, SamplingParams
from vinaforge.recipe import InputPath
from vinaforge.stage import StageConfig

log = logging.getLogger(__name__)

ModelSpec = str | BackendConfig


class JudgeConfig(StageConfig):
    """Settings of an LLM-as-judge evaluation (all keys optional except ``models`` and ``judge``)."""

    models: dict[str, ModelSpec] = Field(
        description="name -> model: a local HF folder, a hub id, '@stage/...', 'openai:MODEL' (endpoint) "
        "or a backend mapping {kind, model, base_url, api_key_env, ...}"
    )
    judge: ModelSpec = Field(
        description="judge model: a local HF folder, a hub id, '@stage/...', 'openai:MODEL' or a backend mapping"
    )
    judge_base_url: str | None = Field(
        None, description="endpoint of an openai: judge (default: $VINAFORGE_JUDGE_BASE_URL)"
    )
    answer_base_url: str | None = Field(
        None, description="endpoint of openai: models under test (default: $VINAFORGE_ANSWER_BASE_URL)"
    )
    questions: InputPath | None = Field(None, description="question JSONL (default: the shipped Vietnamese set)")
    categories: list[str] | None = None
    limit: int | None = Field(None, ge=1, description="first N questions of each category")
    lang: Literal["vi", "en"] = Field("vi", description="language of the judge prompt")
    system_prompt: str | None = Field(None, description="system message for the models under test")
    answer_max_new_tokens: int = Field(512, ge=1)
    judge_max_new_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.0, ge=0.0, description="answer sampling temperature (0 = greedy)")
    max_answer_chars: int | None = Field(
        6000, ge=1, description="answers longer than this are clipped, visibly"
    )
    skip_missing: bool = Field(False, description="judge only questions every model answered")
    batch_size: int = Field(4, ge=1, description="local models: prompts per generate call")
    concurrency: int = Field(4, ge=1, description="endpoints: parallel requests")
    chat_template: str | None = Field(
        None, description="local models: use this vinaforge.chat template (name or .jinja) instead of their own; "
        "a model without one is prompted in vi_qa"
    )
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0)
    device: str | None = None
    dtype: str = "auto"
    n_bootstrap: int = Field(1000, ge=0)
    n_shuffles: int = Field(100, ge=1)
    seed: int = 0

    @field_validator("models")
    @classmethod
    def _names(cls, value: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        if len(value) < 2:
            raise ValueError("pairwise judging needs at least two models")
        for name in value:
            check_model_name(name)
        return value


def _transport(cfg: JudgeConfig) -> dict[str, Any]:
    """Backend settings shared by the answering models and the judge."""
    return {
        "device": cfg.device,
        "dtype": cfg.dtype,
        "batch_size": cfg.batch_size,
        "chat_template": cfg.chat_template,
        "concurrency": cfg.concurrency,
        "timeout_s": cfg.timeout_s,
        "max_retries": cfg.max_retries,
    }


def run_judge_pipeline(cfg: JudgeConfig, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Answers → judgments → ratings under ``out_dir``; returns the ratings dict.

    Every ``@stage/...`` in ``cfg`` has been resolved already (by the run engine).
    """
    from vinaforge.eval.judge.answers import answers_path, generate_answers, load_answers
    from vinaforge.eval.judge.backends import make_backend
    from vinaforge.eval.judge.judging import run_judging
    from vinaforge.eval.judge.questions import load_questions, select_questions
    from vinaforge.eval.judge.ratings import RatingSettings
    from vinaforge.eval.judge.report import write_ratings
    from vinaforge.eval.judge.store import read_jsonl

    out = Path(out_dir)
    answers_dir = out / "answers"
    questions = select_questions(load_questions(cfg.questions), cfg.categories, cfg.limit)
    ids = {q.id for q in questions}
    answer_params = SamplingParams(max_new_tokens=cfg.answer_max_new_tokens, temperature=cfg.temperature,
                                   seed=cfg.seed)  # fmt: skip
    for name, spec in cfg.models.items():
        done = {
            r["question_id"]
            for r in read_jsonl(answers_path(answers_dir, name), repair=True)
            if r.get("status") == "ok"
        }
        if ids <= done:
            log.info("%s: all %d answers already there", name, len(ids))
            continue
        with make_backend(spec, "answer", base_url=cfg.answer_base_url, **_transport(cfg)) as backend:
            generate_answers(questions, backend, name, answers_dir, answer_params, system=cfg.system_prompt,
                             progress=progress)  # fmt: skip
    answers, skipped = load_answers(answers_dir, list(cfg.models), questions, skip_missing=cfg.skip_missing)
    judged = [q for q in questions if q.id not in set(skipped)]
    judge_params = SamplingParams(max_new_tokens=cfg.judge_max_new_tokens, temperature=0.0, seed=cfg.seed)
    with make_backend(cfg.judge, "judge", base_url=cfg.judge_base_url, **_transport(cfg)) as judge:
        run_judging(judged, answers, judge, out, lang=cfg.lang, max_answer_chars=cfg.max_answer_chars,
                    progress=progress, params=judge_params)  # fmt: skip
    return write_ratings(
        out,
        out,
        RatingSettings(n_bootstrap=cfg.n_bootstrap, n_shuffles=cfg.n_shuffles, seed=cfg.seed),
        list(cfg.models),
        extra={"skipped_questions": skipped},
    )
