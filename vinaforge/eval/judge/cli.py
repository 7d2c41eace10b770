"""``vinaforge eval judge``: answer, judge, rate (and all three from one config).

Kept cheap to import: torch, transformers and openai load inside the commands. ``all`` reads
the same config (:class:`~vinaforge.eval.judge.pipeline.JudgeConfig`) as the ``judge`` recipe stage.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="LLM-as-judge: answers to the Vietnamese question set, pairwise judging, Elo and Bradley–Terry.",
    no_args_is_help=True,
)

QuestionsOpt = Annotated[
    Path | None, typer.Option("--questions", help="Question JSONL (default: the shipped Vietnamese set).")
]
CategoriesOpt = Annotated[str | None, typer.Option(help="Comma-separated categories to keep.")]
LimitOpt = Annotated[int | None, typer.Option(help="Keep the first N questions of each category.")]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", help="Endpoint base URL for openai:MODEL (overrides the environment)."),
]
DeviceOpt = Annotated[
    str | None, typer.Option(help="Device for a local model (default: cuda if available, else cpu).")
]
DtypeOpt = Annotated[str, typer.Option(help="dtype for a local model: auto, float32, bfloat16, float16.")]
BatchOpt = Annotated[int, typer.Option(help="Local models: prompts per generate call.")]
ConcurrencyOpt = Annotated[int, typer.Option(help="Endpoints: parallel requests.")]
TimeoutOpt = Annotated[float, typer.Option(help="Endpoints: seconds before a request times out.")]
RetriesOpt = Annotated[
    int, typer.Option(help="Endpoints: retries after a timeout, 429 or 5xx (exponential backoff).")
]
TemplateOpt = Annotated[
    str | None,
    typer.Option(help="Local model: vinaforge.chat template to prompt with (default: its own, else vi_qa)."),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v")]


def _errors() -> tuple[type[BaseException], ...]:
    from vinaforge.chat import TemplateError
    from vinaforge.eval.judge.answers import AnswersError
    from vinaforge.eval.judge.backends import BackendConfigError
    from vinaforge.eval.judge.judging import JudgingError
    from vinaforge.eval.judge.questions import QuestionFileError
    from vinaforge.eval.judge.store import RecordFileError
    from vinaforge.generate.endpoint import EndpointConfigError
    from vinaforge.generate.local import GenerationError
    from vinaforge.model.load import ModelLoadError
    from vinaforge.recipe import RecipeError

    return (
        AnswersError,
        BackendConfigError,
        EndpointConfigError,
        GenerationError,
        TemplateError,
        JudgingError,
        QuestionFileError,
        RecordFileError,
        ModelLoadError,
        RecipeError,
        FileNotFoundError,
        ValueError,
    )


def _setup(verbose: bool) -> None:
    from vinaforge.logs import setup_console

    setup_console(logging.DEBUG if verbose else logging.INFO)


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _questions(path: Path | None, categories: str | None, limit: int | None):
    from vinaforge.eval.judge.questions import load_questions, select_questions

    return select_questions(load_questions(path), _split(categories), limit)


@app.command("questions")
def questions_cmd(questions: QuestionsOpt = None) -> None:
    """Check a question file and print its questions per category."""
    from rich.console import Console
    from rich.table import Table

    from vinaforge.logs import fail

    try:
        qs = _questions(questions, None, None)
    except _errors() as err:
        fail(str(err))
    from vinaforge.eval.judge.questions import category_counts

    table = Table("category", "questions", "with reference")
    for cat, n in category_counts(qs).items():
        table.add_row(cat, str(n), str(sum(1 for q in qs if q.category == cat and q.reference)))
    table.add_row("total", str(len(qs)), str(sum(1 for q in qs if q.reference)))
    Console().print(table)


@app.command()
def answer(
    model: Annotated[str, typer.Option(help="Local HF folder, hub id, or openai:MODEL for an endpoint.")],
    name: Annotated[
        str, typer.Option(help="Name of the model in files and tables (letters, digits, . _ -).")
    ],
    output: Annotated[Path, typer.Option(help="Answers folder: writes OUTPUT/NAME.jsonl (resumes).")],
    questions: QuestionsOpt = None,
    categories: CategoriesOpt = None,
    limit: LimitOpt = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 512,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0 = greedy).")] = 0.0,
    system_prompt: Annotated[str | None, typer.Option(help="System message for the model.")] = None,
    chat_template: TemplateOpt = None,
    base_url: BaseUrlOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "auto",
    batch_size: BatchOpt = 4,
    concurrency: ConcurrencyOpt = 4,
    timeout: TimeoutOpt = 120.0,
    max_retries: RetriesOpt = 4,
    seed: int = 0,
    verbose: VerboseOpt = False,
) -> None:
    """Generate a model's answers to the questions.

    Resumable: questions already answered are skipped, failed ones retried.
    """
    from vinaforge.logs import fail

    _setup(verbose)
    try:
        from vinaforge.eval.judge.answers import check_model_name, generate_answers
        from vinaforge.eval.judge.backends import make_backend
        from vinaforge.generate import SamplingParams

        check_model_name(name)
        qs = _questions(questions, categories, limit)
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        with make_backend(model, "answer", base_url=base_url, device=device, dtype=dtype, batch_size=batch_size,
                          chat_template=chat_template, concurrency=concurrency, timeout_s=timeout,
                          max_retries=max_retries) as backend:  # fmt: skip
            counts = generate_answers(qs, backend, name, output, params, system=system_prompt)
    except _errors() as err:
        fail(str(err))
    typer.echo(
        f"{name}: {counts['new']} new answers, {counts['done_before']} already there, {counts['failed']} failed "
        f"-> {output / (name + '.jsonl')}"
    )
    if counts["failed"]:
        raise typer.Exit(1)


@app.command()
def run(
    answers: Annotated[Path, typer.Option(help="Answers folder (one NAME.jsonl per model).")],
    judge: Annotated[
        str, typer.Option(help="Judge: local HF folder, hub id, or openai:MODEL for an endpoint.")
    ],
    output: Annotated[
        Path, typer.Option(help="Results folder: judgments.jsonl, ratings.json, leaderboard.md...")
    ],
    models: Annotated[
        str | None, typer.Option(help="Comma-separated model names (default: every file).")
    ] = None,
    questions: QuestionsOpt = None,
    categories: CategoriesOpt = None,
    limit: LimitOpt = None,
    lang: Annotated[str, typer.Option(help="Judge prompt language: vi or en.")] = "vi",
    skip_missing: Annotated[bool, typer.Option(help="Judge only questions every model answered.")] = False,
    max_new_tokens: Annotated[int, typer.Option(help="Longest judge output, in tokens.")] = 512,
    max_answer_chars: Annotated[
        int, typer.Option(help="Clip longer answers (visibly) in the judge prompt.")
    ] = 6000,
    chat_template: TemplateOpt = None,
    base_url: BaseUrlOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "auto",
    batch_size: BatchOpt = 4,
    concurrency: ConcurrencyOpt = 4,
    timeout: TimeoutOpt = 120.0,
    max_retries: RetriesOpt = 4,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals.")] = 1000,
    seed: int = 0,
    verbose: VerboseOpt = False,
) -> None:
    """Judge every pair of models in both orders, then rate them.

    Resumable: finished verdicts are kept, failed calls retried.
    """
    from vinaforge.logs import fail

    _setup(verbose)
    try:
        from vinaforge.eval.judge.answers import list_answer_models, load_answers
        from vinaforge.eval.judge.backends import make_backend
        from vinaforge.eval.judge.judging import run_judging
        from vinaforge.eval.judge.ratings import RatingSettings
        from vinaforge.eval.judge.report import write_ratings
        from vinaforge.generate import SamplingParams

        if lang not in ("vi", "en"):
            raise ValueError(f"--lang must be vi or en, got {lang!r}")
        names = _split(models) or list_answer_models(answers)
        qs = _questions(questions, categories, limit)
        answer_map, skipped = load_answers(answers, names, qs, skip_missing=skip_missing)
        qs = [q for q in qs if q.id not in set(skipped)]
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0, seed=seed)
        with make_backend(judge, "judge", base_url=base_url, device=device, dtype=dtype, batch_size=batch_size,
                          chat_template=chat_template, concurrency=concurrency, timeout_s=timeout,
                          max_retries=max_retries) as backend:  # fmt: skip
            counts = run_judging(qs, answer_map, backend, output, lang=lang,  # type: ignore[arg-type]
                                 max_answer_chars=max_answer_chars, params=params)  # fmt: skip
        ratings = write_ratings(
            output,
            output,
            RatingSettings(n_bootstrap=bootstrap, seed=seed),
            names,
            extra={"skipped_questions": skipped},
        )
    except _errors() as err:
        fail(str(err))
    typer.echo(
        f"judge calls this run: {counts['ok']} with a verdict, {counts['unparseable']} unparseable, "
        f"{counts['failed']} failed ({counts['done_before']} done before)"
    )
    _print_leaderboard(ratings, output)


@app.command()
def ratings(
    judgments: Annotated[Path, typer.Option(help="judgments.jsonl (or the folder holding it).")],
    output: Annotated[
        Path | None, typer.Option(help="Folder for ratings.json etc. (default: beside the file).")
    ] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated models to rate (default: all).")] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals.")] = 1000,
    shuffles: Annotated[int, typer.Option(help="Game orders averaged for online Elo.")] = 100,
    k: Annotated[float, typer.Option("--k", help="Online Elo K factor.")] = 4.0,
    seed: int = 0,
    verbose: VerboseOpt = False,
) -> None:
    """Ratings from a judgments file: Elo, Bradley–Terry, win rates.

    With bootstrap confidence intervals.
    """
    from vinaforge.logs import fail

    _setup(verbose)
    try:
        from vinaforge.eval.judge.ratings import RatingSettings
        from vinaforge.eval.judge.report import write_ratings

        settings = RatingSettings(k=k, n_bootstrap=bootstrap, n_shuffles=shuffles, seed=seed)
        out = output or (judgments if judgments.is_dir() else judgments.parent)
        result = write_ratings(judgments, out, settings, _split(models))
    except _errors() as err:
        fail(str(err))
    _print_leaderboard(result, out)


@app.command("all")
def all_cmd(
    config: Annotated[
        Path | None, typer.Option(help="YAML with the keys of JudgeConfig (models, judge, ...).")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Override a key: KEY=VALUE (repeatable).")
    ] = None,
    output: Annotated[
        Path, typer.Option(help="Results folder (answers/, judgments.jsonl, ratings.json...).")
    ] = Path("judge-results"),
    verbose: VerboseOpt = False,
) -> None:
    """Answers, judgments and ratings from one config.

    The config is the `judge` recipe stage's (JudgeConfig); each step resumes.
    """
    from vinaforge.logs import fail

    _setup(verbose)
    try:
        from vinaforge.eval.judge.pipeline import JudgeConfig, run_judge_pipeline
        from vinaforge.recipe import load_stage_config

        cfg = load_stage_config(JudgeConfig, config, set_)
        result = run_judge_pipeline(cfg, output)  # type: ignore[arg-type]
    except _errors() as err:
        fail(str(err))
    _print_leaderboard(result, output)


def _print_leaderboard(ratings: dict, out: Path) -> None:
    """A terminal leaderboard that stays readable at 80 columns: model names fold, never cut.

    The full Markdown (win-rate matrix, settings) is in ``leaderboard.md``.
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for note in ratings.get("notes", []):
        console.print(f"note: {note}", soft_wrap=True, highlight=False, markup=False)
    if ratings.get("bt"):
        level = f"{100 * ratings.get('ci', {}).get('level', 0.95):.0f}%"
        table = Table(title="LLM-as-judge leaderboard", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("#", justify="right")
        table.add_column("model", overflow="fold", ratio=1)
        for col in (f"Bradley–Terry\n({level} CI)", f"Elo\n({level} CI)", "win\nrate", "W / T / L"):
            table.add_column(col, justify="right", no_wrap=True)
        for rank, m in enumerate(ratings["models"], 1):
            t = ratings["totals"][m]
            bt, elo = ratings["ci"]["bt"].get(m), ratings["ci"]["elo"].get(m)
            table.add_row(
                str(rank),
                m,
                f"{ratings['bt'][m]:.0f}\n({bt[0]:.0f}–{bt[1]:.0f})" if bt else f"{ratings['bt'][m]:.0f}",
                f"{ratings['elo'][m]:.0f}\n({elo[0]:.0f}–{elo[1]:.0f})" if elo else f"{ratings['elo'][m]:.0f}",
                "–" if t["win_rate"] is None else f"{100 * t['win_rate']:.1f}%",
                f"{t['wins']} / {t['ties']} / {t['losses']}",
            )
        console.print(table)
    else:
        typer.echo("No rated games: no ratings.")
    c = ratings.get("counts", {})
    if c:
        consistency = "–" if c["consistency"] is None else f"{100 * c['consistency']:.1f}%"
        typer.echo(
            f"judge calls: {c['judge_calls']} ({c['calls_ok']} with a verdict, {c['calls_unparseable']} unparseable, "
            f"{c['calls_failed']} failed); position consistency: {consistency}"
        )
    typer.echo(f"results in {out} (win rates and settings: {out / 'leaderboard.md'})")
