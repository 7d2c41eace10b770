"""The ``eval`` stage: bits per byte, tokenizer fertility, benchmarks and translation in one report.

:class:`Config` is also what ``vinaforge eval --config FILE`` reads (flags and ``--set`` on top),
so every setting is reachable from both the command line and a recipe; both call
:func:`evaluate`.

Each part (bits per byte, fertility, each benchmark, each translation direction) is saved under
``parts/`` as soon as it finishes; an interrupted stage resumes from the parts already there
(``RESUMABLE``), and translation also keeps its finished hypotheses. The model loads once and
serves every part (lm-eval's ``HFLM`` wraps the loaded model). The stage writes
``results.json`` (the same layout as ``vinaforge eval --output``), VMLU submissions if a test
split ran, a bar chart and its report-card section.

Hand-written glue: the measurements are lm-eval's, sacrebleu's and the shared bits-per-byte code.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from vinaforge.eval import data, report
from vinaforge.io import atomic_write_json, expand_inputs
from vinaforge.recipe import InputPath, InputPaths
from vinaforge.stage import Figure, StageConfig, StageContext, StageResult

RESUMABLE = True

log = logging.getLogger(__name__)


class TranslationConfig(StageConfig):
    """Parallel data and generation settings for the translation part."""

    pairs: InputPath | None = None  # JSONL {en, vi} or TSV en<TAB>vi
    en_file: InputPath | None = None  # or two line-aligned files
    vi_file: InputPath | None = None
    directions: list[Literal["en-vi", "vi-en"]] = ["en-vi", "vi-en"]
    shots: int = Field(0, ge=0)
    max_pairs: int | None = Field(None, ge=1)
    max_new_tokens: int = Field(64, ge=1)
    batch_size: int = Field(8, ge=1)
    do_sample: bool = False
    temperature: float = Field(0.7, gt=0)
    top_p: float = Field(0.9, gt=0, le=1)
    chat: bool = False


class ChatEvalConfig(StageConfig):
    """Held-out assistant loss and greedy chat answers (see :mod:`vinaforge.eval.chat_quality`)."""

    conversations: InputPaths = []  # held-out conversations, any vinaforge.chat format
    loss_template: str = "vicuna"  # one template for every model compared, so they score the same tokens
    max_conversations: int = Field(200, ge=1)
    max_length: int = Field(512, ge=8)
    prompts: InputPaths = []  # held-out prompts answered greedily
    answer_template: str | None = None  # default: the model's own chat template
    max_new_tokens: int = Field(64, ge=1)
    max_run: int = Field(4, ge=1)  # an answer repeating one token more than this in a row is degenerate


class Config(StageConfig):
    """Settings of the ``eval`` stage and of ``vinaforge eval``."""

    model: InputPath  # a model folder or "@stage/path"
    tokenizer: InputPath | None = None  # default: the model's own
    heldout: InputPaths = []  # texts for bits per byte
    heldout_field: str = "text"
    heldout_sets: dict[str, InputPaths] = {}  # named sets, each its own figure (e.g. {vi: [...], en: [...]})
    samples: list[str] = []  # raw prompts continued greedily (no chat template): what a base model writes
    sample_max_new_tokens: int = Field(48, ge=1)
    chat: ChatEvalConfig | None = None  # held-out assistant loss and greedy answers to held-out prompts
    max_length: int = Field(1024, ge=8)
    bpb_batch_size: int = Field(8, ge=1)
    allow_vocab_mismatch: bool = False  # accept a tokenizer much smaller than the model's vocabulary
    fertility: InputPaths = []  # Vietnamese texts for the tokenizer's tokens per syllable
    fertility_en: InputPaths = []  # English texts for tokens per word (optional)
    text_field: str = "text"  # JSONL field of the fertility texts
    tasks: list[str] = []  # benchmark names (vmlu, arc_vi...) or lm-eval task names (vmlu_dev...)
    data_dir: InputPath | None = None
    num_fewshot: int | None = Field(None, ge=0)
    limit: float | None = Field(None, gt=0)
    template: Literal["vi", "en"] = "vi"
    chat_template: bool = False  # prompt benchmarks through the model's chat template
    fewshot_as_multiturn: bool = False  # with chat_template: each few-shot example is its own turn
    system_instruction: str | None = None  # a system message before the benchmark prompts
    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    max_batch_size: int = Field(64, ge=1)
    translation: TranslationConfig | None = None
    device: str | None = None
    dtype: str = "auto"
    seed: int | None = None  # lm-eval's seeds (default: the recipe's seed, or 1234)
    cache: str | None = None  # lm-eval's request cache (a SQLite path prefix): re-runs skip scored requests

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, value: list[str]) -> list[str]:
        known = set(data.BENCHMARKS) | set(data.TASK_INDEX)
        for name in value:
            if name not in known and data.task_name(name) not in known:
                raise ValueError(f"unknown task {name!r}; known: {', '.join(sorted(known))}")
        return value


def _part(parts: Path, name: str, compute: Callable[[], dict]) -> dict:
    """A finished part from an earlier, interrupted attempt, or compute and keep it now."""
    path = parts / f"{name}.json"
    if path.is_file():
        log.info("%s: reusing the result of an earlier attempt", name)
        return json.loads(path.read_text(encoding="utf-8"))
    result = compute()
    atomic_write_json(path, result)
    return result


def _fertility(tokenizer, vi_files: list[Path], en_files: list[Path], field: str) -> dict:
    """Tokens per syllable (and per English word) of the model's tokenizer: the tokenizer package's figure."""
    from vinaforge.tokenizer.fertility import fertility, load_texts

    vi = [t for f in vi_files for t in load_texts(f, field=field)]
    en = [t for f in en_files for t in load_texts(f, field=field)] or None
    fig = fertility(
        str(getattr(tokenizer, "name_or_path", "tokenizer")), tokenizer, vi_texts=vi, en_texts=en
    ).to_dict()
    keys = (
        "vocab_size",
        "vi_tokens_per_syllable",
        "en_tokens_per_word",
        "chars_per_token",
        "single_token_syllable_share",
    )
    out = {k: fig[k] for k in keys if fig.get(k) is not None}
    out["texts"] = len(vi) + len(en or [])
    return out


class _Loaded:
    """The model and tokenizer, loaded on first use and shared by every part."""

    def __init__(self, config: Config, model_path: Path, tokenizer_path: Path | None):
        self.config, self.model_path, self.tokenizer_path = config, model_path, tokenizer_path
        self._model = self._tok = self._lm = None

    @property
    def tokenizer(self):
        if self._tok is None:
            from vinaforge.model.load import load_tokenizer

            self._tok = load_tokenizer(str(self.tokenizer_path or self.model_path))
        return self._tok

    @property
    def model(self):
        if self._model is None:
            from vinaforge.eval.harness import default_device
            from vinaforge.model.load import load_causal_lm

            self._model = load_causal_lm(
                str(self.model_path), dtype=self.config.dtype, device=self.config.device or default_device()
            )
        return self._model

    @property
    def lm(self):
        if self._lm is None:
            from lm_eval.models.huggingface import HFLM

            from vinaforge.eval.harness import auto_batch_cap

            device = str(next(self.model.parameters()).device)
            cap = auto_batch_cap(device, self.config.batch_size, self.config.max_batch_size)
            self._lm = HFLM(
                pretrained=self.model,
                tokenizer=self.tokenizer,
                batch_size=self.config.batch_size,
                max_batch_size=cap,
            )
        return self._lm


def _translation(config: TranslationConfig, loaded: _Loaded, parts: Path, out_dir: Path, seed: int) -> dict:
    from vinaforge.eval import translate
    from vinaforge.generate import SamplingParams
    from vinaforge.generate.local import LocalBackend

    if config.pairs:
        pairs = translate.read_pairs(config.pairs)
    elif config.en_file and config.vi_file:
        pairs = translate.read_aligned(config.en_file, config.vi_file)
    else:
        raise ValueError("translation: give 'pairs' (JSONL/TSV) or both 'en_file' and 'vi_file'")
    params = SamplingParams(
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature if config.do_sample else 0.0,
        top_p=config.top_p if config.do_sample else 1.0,
        seed=seed,
    )
    backend = None
    out = {}
    for direction in config.directions:

        def compute(d: str = direction) -> dict:
            nonlocal backend
            backend = backend or LocalBackend(loaded.model, loaded.tokenizer, batch_size=config.batch_size)
            return translate.translate_pairs(backend, pairs, d, out_dir, shots=config.shots, chat=config.chat,
                                             max_pairs=config.max_pairs, params=params)  # fmt: skip

        out[direction] = _part(parts, f"translation_{direction}", compute)
    return out


def evaluate(config: Config, work: Path, seed: int, submission_dir: Path | None = None) -> dict:
    """Every part the config asks for → the results dict; finished parts are kept in ``work/parts``.

    Paths in ``config`` are plain paths (the engine resolved every ``@stage/...``).
    """
    started = time.time()
    parts = work / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    model_path = Path(config.model)
    tok_path = Path(config.tokenizer) if config.tokenizer else None
    loaded = _Loaded(config, model_path, tok_path)
    results: dict = {}

    def bpb(part: str, paths: list[str]) -> dict:
        from vinaforge.eval.bpb import bpb_of_model, read_texts

        texts = read_texts([Path(p) for p in paths], field=config.heldout_field)
        return _part(
            parts,
            part,
            lambda: bpb_of_model(
                loaded.model,
                loaded.tokenizer,
                texts,
                max_length=config.max_length,
                batch_size=config.bpb_batch_size,
                allow_vocab_mismatch=config.allow_vocab_mismatch,
            ),
        )

    if config.heldout:
        results["bpb"] = bpb("bpb", config.heldout)
    if config.heldout_sets:
        results["bpb_sets"] = {name: bpb(f"bpb_{name}", paths) for name, paths in config.heldout_sets.items()}
    if config.samples:
        results["samples"] = _part(parts, "samples", lambda: _samples(config, loaded))
    if config.chat:
        results["chat"] = _chat(config.chat, loaded, parts)
    if config.fertility:
        vi_files = expand_inputs(config.fertility)
        en_files = expand_inputs(config.fertility_en)
        results["fertility"] = _part(
            parts, "fertility", lambda: _fertility(loaded.tokenizer, vi_files, en_files, config.text_field)
        )
    if config.tasks:
        from vinaforge.eval.harness import check_benchmark_data, run_benchmarks

        data_dir = Path(config.data_dir) if config.data_dir else None
        check_benchmark_data(config.tasks, data_dir, config.num_fewshot, config.template)  # before the model loads
        for name in config.tasks:
            res = _part(
                parts,
                f"bench_{name}",
                lambda n=name: run_benchmarks(
                    loaded.lm,
                    [n],
                    data_dir=data_dir,
                    num_fewshot=config.num_fewshot,
                    limit=_limit(config.limit),
                    template=config.template,
                    chat_template=config.chat_template,
                    fewshot_as_multiturn=config.fewshot_as_multiturn,
                    system_instruction=config.system_instruction,
                    seed=seed,
                    submission_dir=submission_dir or work / "submissions",
                    cache=config.cache,
                ),
            )
            for bench, splits in res.items():
                if not bench.startswith("_"):
                    results.setdefault(bench, {}).update(splits)
            results.setdefault("_meta", {}).update({k: v for k, v in res["_meta"].items() if k != "tasks"})
            results["_meta"].setdefault("tasks", []).extend(res["_meta"]["tasks"])
    if config.translation:
        results["translation"] = _translation(config.translation, loaded, parts, work / "translation", seed)
    results.setdefault("_meta", {}).update(model=str(model_path), seconds=round(time.time() - started, 2))
    return results


def _chat(config: ChatEvalConfig, loaded: _Loaded, parts: Path) -> dict:
    from vinaforge.chat import read_conversations, read_prompts
    from vinaforge.eval import chat_quality

    out: dict = {}
    if config.conversations:
        convs = read_conversations(list(config.conversations)).kept[: config.max_conversations]
        out["assistant_loss"] = _part(
            parts,
            "assistant_loss",
            lambda: {
                **chat_quality.assistant_loss(
                    loaded.model, loaded.tokenizer, convs, config.loss_template, config.max_length
                ),
                "template": config.loss_template,
            },
        )
    if config.prompts:
        from vinaforge.generate.base import SamplingParams
        from vinaforge.generate.local import LocalBackend

        def answer() -> dict:
            prompts = read_prompts(list(config.prompts)).kept
            backend = LocalBackend(loaded.model, loaded.tokenizer, batch_size=8, chat_template=config.answer_template)
            done = backend.generate(prompts, SamplingParams(max_new_tokens=config.max_new_tokens))
            texts = [c.text for c in done]
            quality = chat_quality.answer_quality(texts, loaded.tokenizer, config.max_run)
            quality["answers"] = [
                {"prompt": p.prompt_messages[-1]["content"], "answer": t} for p, t in zip(prompts, texts, strict=True)
            ]
            quality["template"] = backend.template_name
            return quality

        out["answers"] = _part(parts, "chat_answers", answer)
    return out


def _samples(config: Config, loaded: _Loaded) -> list[dict]:
    """Greedy continuations of raw prompts: the quickest way to see whether a base model writes."""
    from vinaforge.generate.base import SamplingParams
    from vinaforge.generate.local import LocalBackend

    backend = LocalBackend(loaded.model, loaded.tokenizer, batch_size=min(8, len(config.samples)))
    done = backend.generate(config.samples, SamplingParams(max_new_tokens=config.sample_max_new_tokens))
    return [{"prompt": p, "completion": c.text} for p, c in zip(config.samples, done, strict=True)]


def _limit(value: float | None) -> int | float | None:
    """lm-eval reads a limit below 1 as a fraction of the split and 1 or more as a count."""
    if value is None:
        return None
    return int(value) if value >= 1 and float(value).is_integer() else value


def run(config: Config, ctx: StageContext) -> StageResult:
    work = ctx.work_dir
    seed = config.seed if config.seed is not None else (ctx.seed or 1234)
    results = evaluate(config, work, seed)
    results["_meta"]["stage"] = ctx.name
    atomic_write_json(work / "results.json", results)
    flat = report.flatten(results)
    figures = []
    if report.bar_chart({ctx.name: flat}, work / "scores.png", title="scores"):
        figures.append(Figure("scores.png", "Benchmark scores (±1 standard error)."))
    outputs = {"results": "results.json"}
    if (work / "submissions").is_dir():
        outputs["submissions"] = "submissions"
    if (work / "translation").is_dir():
        outputs["translation"] = "translation"
    return StageResult(
        outputs=outputs,
        metrics={name: round(value, 6) for name, (value, _) in flat.items()},
        report=report.results_markdown(results) + "\n" + _template_section(config.model),
        figures=figures,
    )


def _template_section(model: str) -> str:
    """The chat template the evaluated model carries (what serving and export will use)."""
    from pathlib import Path

    from vinaforge.chat.templates import template_report

    return template_report(model) if Path(str(model)).is_dir() else ""
