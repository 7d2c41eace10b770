"""Assemble the curation pipeline from datatrove blocks and run it on a datatrove executor.

Library: datatrove's executors (``LocalPipelineExecutor``, ``SlurmPipelineExecutor``,
``RayPipelineExecutor``) run every stage in tasks, record finished tasks in a ``completions``
folder and skip them on the next run, which is what makes a killed run resumable. Hand-written:
the stage graph below, the input checks, and the guard that refuses to resume an output folder
written with other settings.

Stages (``_work/logs/<stage>/`` holds each one's datatrove logs, stats and completions):

1. ``filter`` (N tasks): read -> normalize -> input check -> language -> Gopher repetition ->
   Gopher quality -> FineWeb quality -> flagged words -> PII -> score -> ``_work/filtered`` +
   exact and MinHash signatures (one pass);
2. ``exact_find`` (1 task): datatrove ``ExactFindDedups``;
3. ``minhash_buckets`` (one task per bucket), 4. ``cluster`` (1): datatrove MinHash buckets and
   clusters, keep-first rule, tier thresholds;
5. ``final`` (N): drop exact and near duplicates -> tier -> ``kept/<tier>/<language>/``;
6. ``summary`` (1): ``stats.json``, duplicate clusters, report section and histogram.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from collections import deque
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatrove.executor import LocalPipelineExecutor
from datatrove.utils.stats import PipelineStats
from loguru import logger

from vinaforge.data.config import Config
from vinaforge.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

STAGES = ("filter", "exact_find", "minhash_buckets", "cluster", "final", "summary")
MAX_DEFAULT_TASKS = 64


class CurateError(RuntimeError):
    """The output folder cannot be used (it holds a run with other settings)."""


@dataclass(frozen=True)
class Layout:
    """Where everything goes under the output folder."""

    out: Path

    @property
    def work(self) -> Path:
        return self.out / "_work"

    def w(self, name: str) -> Path:
        return self.work / name

    def logs(self, stage: str) -> Path:
        return self.work / "logs" / stage

    @property
    def kept(self) -> Path:
        return self.out / "kept"

    @property
    def rejected(self) -> Path:
        return self.out / "rejected"

    @property
    def stats_file(self) -> Path:
        return self.out / "stats.json"


BULKY_INTERMEDIATES = ("filtered", "exact_sigs", "minhash_sigs", "minhash_buckets", "minhash_full")


def default_tasks(n_sources: int) -> int:
    """One task per input file or dataset (datatrove shards by file), at most 64."""
    return max(1, min(MAX_DEFAULT_TASKS, n_sources))


# ----------------------------------------------------------------------------- executors


class QuietLocalExecutor(LocalPipelineExecutor):
    """datatrove's local executor, logging to one file per stage instead of one sink per task.

    datatrove re-creates its loguru sinks for every task, which costs more than a small task
    (a MinHash bucket) takes to run. Completion files, per-task stats and skipping finished
    tasks on a re-run are datatrove's, unchanged.
    """

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1) -> PipelineStats:
        if self.is_rank_completed(rank):
            return PipelineStats()
        self._set_distributed_environment(node_rank)
        try:
            data = None
            for step in self.pipeline:
                data = step(data, rank, self.world_size)
            if data:
                deque(data, maxlen=0)
            stats = PipelineStats(self.pipeline)
            with self.logging_dir.open(f"stats/{rank:05d}.json", "w") as f:
                stats.save_to_disk(f)
            self.mark_rank_as_completed(rank)
            logger.info(f"task {rank} done")
        except Exception as err:
            logger.exception(err)
            raise
        return stats

    def run(self):
        logger.remove()
        self.logging_dir.makedirs("", exist_ok=True)
        sinks = [
            logger.add(self.logging_dir.resolve_paths("log.txt"), level="INFO"),
            # a failing task's traceback goes to log.txt only: the error itself reaches the caller,
            # which prints it as one line (a wrong API key is not a crash)
            logger.add(sys.stderr, level="WARNING", filter=_without_traceback),
        ]
        try:
            if self.workers > 1:
                return super().run()
            # one worker: run the tasks here, without the process manager datatrove starts
            self._launched = True
            ranks = self.get_incomplete_ranks(
                range(self.local_rank_offset, self.local_rank_offset + self.local_tasks)
            )
            if ranks:
                self.save_executor_as_json()
            pipeline = self.pipeline
            try:
                for rank in ranks:
                    self.pipeline = deepcopy(pipeline) if len(ranks) > 1 else pipeline
                    self._run_for_rank(rank)
            finally:
                self.pipeline = pipeline
        finally:
            for sink in sinks:
                logger.remove(sink)
            logger.add(sys.stderr, level="WARNING")


def _without_traceback(record: dict) -> bool:
    return record["exception"] is None


def make_executor(cfg: Config, pipeline: list, tasks: int, logging_dir: Path, depends=None, name: str = ""):
    """The datatrove executor for one stage, per ``cfg.executor``."""
    if cfg.executor == "local":
        workers = cfg.workers or os.cpu_count() or 1
        return QuietLocalExecutor(
            pipeline,
            tasks=tasks,
            workers=max(1, min(workers, tasks)),
            logging_dir=str(logging_dir),
            skip_completed=True,
            start_method="fork",
        )
    if cfg.executor == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        opts = {"time": "24:00:00", "job_name": f"vf-curate-{name}", **cfg.slurm}
        return SlurmPipelineExecutor(
            pipeline, tasks=tasks, logging_dir=str(logging_dir), depends=depends, skip_completed=True, **opts
        )
    from datatrove.executor import RayPipelineExecutor

    opts = {k: v for k, v in cfg.ray.items() if k != "address"}
    return RayPipelineExecutor(
        pipeline, tasks=tasks, logging_dir=str(logging_dir), skip_completed=True, **opts
    )


# ----------------------------------------------------------------------------- pipeline


def build_stages(cfg: Config, layout: Layout, plan, tasks: int) -> list[tuple[str, list, int]]:
    """``(stage name, datatrove pipeline, tasks)`` for each stage to run."""
    from datatrove.pipeline.dedup.exact_dedup import ExactDedupConfig, ExactFindDedups
    from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets, MinhashDedupCluster

    from vinaforge.data import blocks, dedup, filters
    from vinaforge.data.stats import WriteSummary
    from vinaforge.data.tiers import QualityScorer, ScoreRecorder, TierAssigner, TierThresholds

    out, w, rej = layout.out, layout.w, layout.rejected
    mh = cfg.dedup.minhash
    exact_cfg = ExactDedupConfig(content_getter=dedup.exact_key)
    dt_mh = dedup.datatrove_minhash_config(mh)
    exact_dir = str(w("exact_dups")) if cfg.dedup.exact else None
    minhash_dir = str(w("minhash_remove")) if mh.enabled else None

    # 1. filter: read, check, normalize, label, filter, redact, score; write + sign ------------
    rows = ["input", "language"] + [
        row
        for row, on in (
            ("gopher_repetition", cfg.gopher_repetition.enabled),
            ("gopher_quality", cfg.gopher_quality.enabled),
            ("fineweb_quality", cfg.fineweb_quality.enabled),
            ("flagged_words", cfg.flagged_words.enabled),
        )
        if on
    ]
    steps: list[Any] = [
        blocks.CleanRankOutputs(
            [str(rej / row / "{rank:05d}.jsonl.gz") for row in rows]
            + [
                str(w("filtered") / "{rank:05d}.jsonl"),
                str(w("scores") / "{rank:05d}.npz"),
                str(w("exact_sigs") / "*" / "{rank:05d}.*"),
                str(w("minhash_sigs") / "*" / "{rank:05d}.*"),
                str(w("minhash_full") / "{rank:05d}.npy"),
            ]
        ),
        *_readers(cfg, plan, w("inputs.txt"), tasks),
        blocks.Normalizer(cfg.normalize, cfg.input_check.max_chars),
        filters.InputCheckFilter(cfg.input_check, blocks.rejected_writer(out, "input")),
        filters.LanguageFilter(cfg.language, blocks.rejected_writer(out, "language")),
    ]
    optional = (
        (cfg.gopher_repetition, filters.GopherRepetitionFilter, "gopher_repetition"),
        (cfg.gopher_quality, filters.GopherQualityFilter, "gopher_quality"),
        (cfg.fineweb_quality, filters.FineWebQualityFilter, "fineweb_quality"),
        (cfg.flagged_words, filters.FlaggedWordsFilter, "flagged_words"),
    )
    for sub_cfg, cls, row in optional:
        if sub_cfg.enabled:
            steps.append(cls(sub_cfg, blocks.rejected_writer(out, row)))
    if cfg.pii.enabled:
        steps.append(blocks.PIIRedactor(cfg.pii.types))
    steps += [
        QualityScorer(),
        ScoreRecorder(str(w("scores"))),
        blocks.FunnelJsonlWriter(
            "filtered",
            str(w("filtered")),
            "${rank}.jsonl",
            compression=None,
            adapter=blocks.intermediate_record,
        ),
    ]
    if cfg.dedup.exact or mh.enabled:
        steps.append(
            dedup.DedupSignatures(
                dedup.RankedExactSignature(str(w("exact_sigs")), config=exact_cfg)
                if cfg.dedup.exact
                else None,
                dedup.SyllableMinhashSignature(
                    str(w("minhash_sigs")),
                    config=dt_mh,
                    full_folder=str(w("minhash_full")) if mh.min_similarity is not None else None,
                )
                if mh.enabled
                else None,
            )
        )
    stages: list[tuple[str, list, int]] = [("filter", steps, tasks)]

    # 2-4. find exact copies; MinHash buckets and clusters; tier thresholds ---------------------
    if cfg.dedup.exact:
        stages.append(
            ("exact_find", [ExactFindDedups(str(w("exact_sigs")), str(w("exact_dups")), exact_cfg)], 1)
        )
    if mh.enabled:
        stages.append(
            (
                "minhash_buckets",
                [MinhashDedupBuckets(str(w("minhash_sigs")), str(w("minhash_buckets")), config=dt_mh)],
                mh.num_buckets,
            )
        )
    cluster_steps: list[Any] = []
    if mh.enabled:
        if mh.min_similarity is not None:
            cluster_steps.append(
                dedup.VerifyPairs(str(w("minhash_buckets")), str(w("minhash_full")), mh.min_similarity)
            )
        cluster_steps += [
            MinhashDedupCluster(
                str(w("minhash_buckets")),
                minhash_dir,
                config=dt_mh,
                save_cluster_id=True,
                save_cluster_size=True,
            ),
            dedup.KeepFirstMember(minhash_dir, tasks),
        ]
    cluster_steps.append(
        TierThresholds(cfg.tiers, str(w("scores")), exact_dir, minhash_dir, str(w("tiers.json")))
    )
    stages.append(("cluster", cluster_steps, 1))

    # 5. final: drop duplicates, assign tiers, write kept/<tier>/<language>/ ---------------------
    if cfg.output_format == "parquet":
        kept_writer = blocks.FunnelParquetWriter(
            "kept",
            str(layout.kept),
            "${tier}/${language}/${rank}.parquet",
            adapter=blocks.kept_parquet_record,
            schema=blocks.kept_parquet_schema(),
        )
        kept_pattern = str(layout.kept / "*" / "*" / "{rank:05d}.parquet")
    else:
        kept_writer = blocks.FunnelJsonlWriter(
            "kept", str(layout.kept), "${tier}/${language}/${rank}.jsonl.gz", adapter=blocks.kept_record
        )
        kept_pattern = str(layout.kept / "*" / "*" / "{rank:05d}.jsonl.gz")
    final: list[Any] = [
        blocks.CleanRankOutputs(
            [
                str(rej / "exact_dedup" / "{rank:05d}.jsonl.gz"),
                str(rej / "minhash_dedup" / "{rank:05d}.jsonl.gz"),
                kept_pattern,
                str(w("clusters") / "{rank:05d}.jsonl"),
            ]
        ),
        blocks.RankFileReader(str(w("filtered"))),
    ]
    if cfg.dedup.exact or mh.enabled:
        final.append(
            dedup.DedupFilter(
                exact_dir,
                minhash_dir,
                blocks.rejected_writer(out, "exact_dedup", blocks.exact_rejected_record)
                if exact_dir
                else None,
                blocks.rejected_writer(out, "minhash_dedup", blocks.minhash_rejected_record)
                if minhash_dir
                else None,
            )
        )
    if mh.enabled:
        final.append(blocks.ClusterRecorder(str(w("clusters")), mh.keep_cluster_size))
    final += [TierAssigner(str(w("tiers.json"))), kept_writer]
    stages.append(("final", final, tasks))

    # 6. summary ----------------------------------------------------------------------------------
    stages.append(("summary", [WriteSummary(cfg, str(out), tasks)], 1))
    return stages


def _readers(cfg: Config, plan, paths_file: Path, tasks: int) -> list:
    from vinaforge.data.readers import CorpusFileReader, HFDatasetReader

    readers: list = []
    # a document progress bar per task, when tasks run one after the other on a terminal
    progress = cfg.executor == "local" and (tasks == 1 or cfg.workers == 1) and sys.stderr.isatty()
    if plan.files:
        readers.append(
            CorpusFileReader(
                str(plan.base),
                paths_file=str(paths_file),
                text_key=cfg.text_field,
                id_key=cfg.id_field,
                text_unit=cfg.text_unit,
                limit=cfg.limit,
                doc_progress=progress,
            )
        )
    for ds in plan.hf:
        options = {"split": cfg.hf_split}
        if cfg.hf_config:
            options["name"] = cfg.hf_config
        readers.append(
            HFDatasetReader(
                ds.dataset,
                dataset_options=None if ds.load_from_disk else options,
                streaming=cfg.hf_streaming and not ds.load_from_disk,
                load_from_disk=ds.load_from_disk,
                text_key=cfg.text_field,
                id_key=cfg.id_field,
                limit=cfg.limit,
            )
        )
    return readers


# ----------------------------------------------------------------------------- run


def _settings_fingerprint(cfg: Config, plan, tasks: int) -> dict:
    settings = cfg.model_dump(mode="json")
    for key in ("workers", "executor", "slurm", "ray", "keep_intermediate", "report_examples"):
        settings.pop(key, None)  # how it runs, not what it computes
    return {
        "settings": settings,
        "tasks": tasks,
        "base": str(plan.base),
        "files": plan.files,
        "hf": [ds.dataset for ds in plan.hf],
    }


def prepare_output(cfg: Config, layout: Layout, plan, tasks: int, overwrite: bool) -> bool:
    """Create or check the output folder. Returns True when resuming earlier work."""
    fingerprint = _settings_fingerprint(cfg, plan, tasks)
    fp_file = layout.w("settings.json")
    if overwrite and layout.out.exists():
        for child in (
            "kept",
            "rejected",
            "_work",
            "stats.json",
            "report.md",
            "quality_hist.png",
            "duplicate_clusters.jsonl.gz",
        ):
            target = layout.out / child
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    if fp_file.is_file():
        previous = json.loads(fp_file.read_text())
        if previous != fingerprint:
            raise CurateError(
                f"{layout.out} holds a curation run with other settings or inputs; "
                "choose another --output, or pass --overwrite to start again"
            )
        return True
    if layout.out.is_dir() and any(
        p.name in ("kept", "rejected", "stats.json") for p in layout.out.iterdir()
    ):
        raise CurateError(f"{layout.out} already holds curated data from another run; pass --overwrite")
    layout.work.mkdir(parents=True, exist_ok=True)
    for sub in ("exact_dups", "exact_sigs", "minhash_remove", "scores", "filtered", "clusters"):
        layout.w(sub).mkdir(parents=True, exist_ok=True)
    atomic_write_text(layout.w("inputs.txt"), "".join(f"{f}\n" for f in plan.files))
    atomic_write_json(fp_file, fingerprint)
    return False


def curate(cfg: Config, output: str | Path, overwrite: bool = False) -> dict:
    """Run (or resume) the whole curation; returns the contents of ``stats.json``."""
    from vinaforge.data.readers import check_fields, plan_inputs

    started = time.perf_counter()
    if Path(output).exists() and not Path(output).is_dir():
        raise CurateError(f"output {output} is an existing file; curation writes a folder there")
    layout = Layout(Path(output).resolve())
    plan = plan_inputs(cfg.inputs, cfg.hf_split)
    check_fields(plan, cfg.text_field, cfg.id_field, id_key_explicit=cfg.id_field != "id")
    tasks = cfg.tasks or default_tasks(plan.n_sources)
    resumed = prepare_output(cfg, layout, plan, tasks, overwrite)
    log.info(
        "curate: %d file(s)%s -> %s (%d task(s), executor %s)%s",
        len(plan.files),
        f" + {len(plan.hf)} dataset(s)" if plan.hf else "",
        layout.out,
        tasks,
        cfg.executor,
        " [resuming]" if resumed else "",
    )
    stages = build_stages(cfg, layout, plan, tasks)
    if cfg.executor == "ray":
        _ray_init(cfg)
    if cfg.executor == "slurm":
        _run_slurm(cfg, layout, stages)
    else:
        for i, (name, pipeline, n_tasks) in enumerate(stages, 1):
            t0 = time.perf_counter()
            executor = make_executor(cfg, pipeline, n_tasks, layout.logs(name), name=name)
            todo = len(executor.get_incomplete_ranks())
            if todo == 0:
                log.info("curate [%d/%d] %s: already done", i, len(stages), name)
                continue
            log.info("curate [%d/%d] %s: %d task(s)", i, len(stages), name, todo)
            executor.run()
            if executor.get_incomplete_ranks():
                raise RuntimeError(
                    f"curate stage {name!r} did not complete; see {layout.logs(name) / 'log.txt'}"
                )
            log.info("curate [%d/%d] %s: done in %.1fs", i, len(stages), name, time.perf_counter() - t0)
    if not cfg.keep_intermediate:
        for sub in BULKY_INTERMEDIATES:
            shutil.rmtree(layout.w(sub), ignore_errors=True)
    stats = json.loads(layout.stats_file.read_text())
    log.info(
        "curate: %d in, %d kept, %d rejected, %d duplicates (%.1fs)",
        stats["input"],
        stats["kept"],
        sum(stats["rejected"].values()),
        stats["duplicates"],
        time.perf_counter() - started,
    )
    return stats


def _ray_init(cfg: Config) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(address=cfg.ray.get("address"), ignore_reinit_error=True, log_to_driver=False)


def _run_slurm(cfg: Config, layout: Layout, stages: list[tuple[str, list, int]]) -> None:
    """Submit every stage as a Slurm job array chained by dependencies, then wait for the end."""
    previous = None
    for name, pipeline, n_tasks in stages:
        previous = make_executor(cfg, pipeline, n_tasks, layout.logs(name), depends=previous, name=name)
    previous.run()
    done = layout.logs("summary") / "completions" / "00000"
    log.info("curate: submitted %d Slurm stages; waiting for %s", len(stages), done)
    while not done.exists():
        time.sleep(30)
