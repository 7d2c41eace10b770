"""The continued-pretraining loop: phases, mixture, held-out bits per byte, exact resume.

Built on accelerate (device placement, DDP/FSDP2/DeepSpeed, mixed precision, gradient accumulation,
``save_state``/``load_state``) and plain PyTorch (AdamW, fused on CUDA; schedules from
``transformers.optimization``). What is ours is the orchestration the recipes need:

- EEVE-style phases, each with its own trainable set (``vinaforge.model.trainable``), optimizer,
  schedule (cosine or warmup-stable-decay) and mixture; LoRA phases are merged at their end;
- every optimizer step draws its global batch from :class:`~vinaforge.train.mixture.MixtureSampler`
  and each process takes its slice, so N processes with micro-batch b compute what one process with
  micro-batch N*b computes;
- the loss is summed over tokens and divided by the number of scored tokens of the whole global
  batch (``num_items_in_batch``), so masked prompt tokens and gradient accumulation do not bias it;
- checkpoints every ``save_every`` steps, at the end of each phase and on SIGTERM/Ctrl-C, written
  atomically (:mod:`vinaforge.train.checkpoint`); a resumed run continues the same data stream
  (sampler state), the same optimizer and schedule, and the same RNG streams;
- held-out loss and bits per byte (:func:`vinaforge.model.bpb.bits_per_byte`) every ``eval_every``
  steps; a rich progress bar with tokens/s and MFU; TensorBoard (or W&B/trackio) through accelerate.

Hand-written, because no installed trainer combines per-phase trainable sets, curriculum mixtures
over packed memory-mapped sources and this resume contract (HF ``Trainer`` resumes a dataloader,
not a weighted multi-source stream whose weights change with progress).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vinaforge.io import atomic_path, atomic_write_json, expand_inputs, iter_texts, stat_fingerprint
from vinaforge.train.checkpoint import (
    Checkpoint,
    latest_checkpoint,
    list_checkpoints,
    prune_checkpoints,
    write_checkpoint,
)
from vinaforge.train.config import CptConfig, MixtureSegment, PhaseConfig
from vinaforge.train.mixture import MixtureSampler, natural_weights, proportions, weights_at
from vinaforge.train.packing import PackedSource, pack_sources

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
SCHEDULER_FILE = "scheduler.pt"


_SHARDED = ("FSDP", "DEEPSPEED")  # accelerate DistributedType values whose weights live in shards


class TrainingInterrupted(KeyboardInterrupt):
    """Stopped by SIGTERM or Ctrl-C after writing a checkpoint; run again with resume to continue."""


class TrainingError(RuntimeError):
    """A run that cannot start or continue; the message says why and what to do."""


# ----------------------------------------------------------------------------- small pieces


@dataclass
class PhasePlan:
    index: int
    config: PhaseConfig
    steps: int
    first_step: int  # global step count before this phase

    @property
    def name(self) -> str:
        return self.config.name


def plan_phases(cfg: CptConfig, tokens_per_step: int) -> list[PhasePlan]:
    plans, done = [], 0
    for i, phase in enumerate(cfg.phases):
        steps = phase.num_steps(tokens_per_step)
        plans.append(PhasePlan(i, phase, steps, done))
        done += steps
    return plans


def build_scheduler(optimizer, phase: PhaseConfig, steps: int):
    """LambdaLR from transformers' schedule functions (cosine with floor, WSD, constant)."""
    from transformers.optimization import (
        get_constant_schedule_with_warmup,
        get_cosine_with_min_lr_schedule_with_warmup,
        get_wsd_schedule,
    )

    warmup = phase.num_warmup(steps)
    if phase.schedule == "cosine":
        return get_cosine_with_min_lr_schedule_with_warmup(
            optimizer, warmup, steps, min_lr_rate=phase.min_lr_ratio
        )
    if phase.schedule == "wsd":
        decay = max(1, round(phase.decay_ratio * steps))
        decay = min(decay, steps - warmup) if steps > warmup else 0
        return get_wsd_schedule(
            optimizer,
            num_warmup_steps=warmup,
            num_decay_steps=decay,
            num_stable_steps=max(0, steps - warmup - decay),
            decay_type=phase.decay_type,
            min_lr_ratio=phase.min_lr_ratio,
        )
    return get_constant_schedule_with_warmup(optimizer, warmup)


def build_optimizer(param_groups: list[dict], phase: PhaseConfig, cfg: CptConfig, device_type: str):
    import torch

    if cfg.optimizer != "adamw":
        from vinaforge.train.fit import build_8bit_optimizer

        betas = (cfg.adam_beta1, cfg.adam_beta2)
        return build_8bit_optimizer(param_groups, cfg.optimizer, phase.lr, betas, cfg.adam_eps)
    fused = cfg.fused_adamw if cfg.fused_adamw is not None else device_type in ("cuda", "cpu")
    kwargs: dict[str, Any] = {"lr": phase.lr, "betas": (cfg.adam_beta1, cfg.adam_beta2), "eps": cfg.adam_eps}
    if fused:
        kwargs["fused"] = True
    return torch.optim.AdamW(param_groups, **kwargs)


def micro_batch(
    sources: dict[str, PackedSource],
    picks: Sequence[tuple[str, int]],
    seq_len: int,
    doc_masking: bool,
    flatten: bool,
    device,
) -> dict:
    """Tensors for one micro-batch of packed blocks (position ids only with document masking)."""
    import torch

    rows = [sources[name].block(index, seq_len, doc_masking) for name, index in picks]
    input_ids = torch.from_numpy(np.stack([r[0] for r in rows]))
    labels = torch.from_numpy(np.stack([r[1] for r in rows]))
    batch = {"input_ids": input_ids, "labels": labels}
    if doc_masking:
        batch["position_ids"] = torch.from_numpy(np.stack([r[2] for r in rows]))
        if flatten:  # one row of many documents, for flash-attention's variable-length kernels
            labels[:, 0] = -100
            batch = {k: v.reshape(1, -1) for k, v in batch.items()}
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def set_activation_checkpointing(model, on: bool) -> None:
    """Non-reentrant activation (gradient) checkpointing; transformers 5 renamed the methods."""
    if hasattr(model, "activation_checkpointing_enable"):
        if on:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.activation_checkpointing_disable()
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


def scored_tokens(batch: dict) -> int:
    """Positions that contribute to the loss (labels are shifted inside the model)."""
    return int((batch["labels"][:, 1:] != -100).sum())


def input_fingerprint(cfg: CptConfig) -> dict[str, str]:
    """Cheap fingerprints (names, sizes, modification times) of what the run trains from."""
    paths = [cfg.model, cfg.tokenizer or cfg.model]
    paths += [p for src in cfg.data.sources.values() for p in src.paths]
    return stat_fingerprint(paths)


def load_heldout(cfg: CptConfig) -> list[str]:
    if cfg.heldout is None:
        return []
    texts: list[str] = []
    for pattern in cfg.heldout.paths:
        try:
            files = expand_inputs([str(pattern)])
        except FileNotFoundError as err:
            raise TrainingError(f"heldout.paths: {err}") from err
        for f in files:
            for text in iter_texts(f, cfg.heldout.field):
                if text.strip():
                    texts.append(text)
                if len(texts) >= cfg.heldout.max_texts:
                    return texts
    if not texts:
        raise TrainingError(f"heldout.paths {cfg.heldout.paths}: no text found")
    return texts


class MetricsLog:
    """``metrics.jsonl``: one record per step and per evaluation; trimmed to the checkpoint on resume."""

    def __init__(self, path: Path, enabled: bool):
        self.path = path
        self.enabled = enabled

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
        return out

    def truncate(self, step: int) -> None:
        if not self.enabled:
            return
        kept = [r for r in self.read() if r.get("step", 0) <= step]
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")

    def append(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


class StopSignals:
    """SIGTERM/SIGINT set a flag (checkpoint, then stop); a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, signum, _frame) -> None:
        name = signal.Signals(signum).name
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = name
        log.warning("%s received: writing a checkpoint after this step, then stopping", name)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


# ----------------------------------------------------------------------------- the trainer


@dataclass
class TrainerState:
    """Everything outside accelerate's ``save_state`` that a resume needs (JSON)."""

    global_step: int = 0
    phase_index: int = 0
    phase_step: int = 0
    tokens_seen: int = 0
    last_eval_step: int = -1
    train_time_s: float = 0.0
    phase_start_drawn: dict = field(default_factory=dict)
    phases_done: list = field(default_factory=list)
    sampler: dict = field(default_factory=dict)
    processes: int = 1

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class CptTrainer:
    """One run of :class:`CptConfig` into ``output_dir`` (checkpoints/, final/, metrics.jsonl...)."""

    def __init__(
        self,
        cfg: CptConfig,
        output_dir: str | Path,
        callbacks: Sequence[Callable[[dict], None]] = (),
        default_seed: int = 0,
        inputs: dict[str, str] | None = None,
    ):
        self.cfg = cfg
        self.out = Path(output_dir)
        self.callbacks = list(callbacks)
        self._nonfinite_steps = 0  # consecutive steps whose gradient norm was not finite
        self.seed = cfg.seed if cfg.seed is not None else default_seed
        # checkpoints record which inputs (model weights, tokenizer, data) they were trained from:
        # a checkpoint of an older model is refused, not resumed, even under the same settings
        self.inputs = inputs if inputs is not None else input_fingerprint(cfg)
        self.trajectory = {**cfg.trajectory_dict(), "inputs": self.inputs}
        self.config_hash = hashlib.sha256(
            json.dumps(self.trajectory, sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()
        self.ckpt_root = self.out / "checkpoints"
        self.final_state_dict = None
        self.sharded_rows = None  # new_embeddings bookkeeping on FSDP shards (vinaforge.train.distributed)

    # ------------------------------------------------------------------ set-up

    def _accelerator(self):
        import torch
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration

        precision = self.cfg.precision
        if precision == "auto":
            precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
        self.precision = precision
        trackers = list(self.cfg.report_to)
        for name in trackers:
            if name != "tensorboard":
                import importlib.util

                if importlib.util.find_spec(name) is None:
                    raise TrainingError(f"report_to: {name!r} is not installed (pip install {name})")
        kwargs: dict[str, Any] = {}
        if self.cfg.compile:
            from accelerate.utils import TorchDynamoPlugin

            kwargs["dynamo_plugin"] = TorchDynamoPlugin(backend="inductor")
        acc = Accelerator(
            # without a GPU, accelerate only forms a process group (gloo) under torchrun when told cpu=True
            cpu=not torch.cuda.is_available(),
            mixed_precision="bf16" if precision == "bf16" else "no",
            gradient_accumulation_steps=self.cfg.grad_accum,
            log_with=trackers or None,
            project_config=ProjectConfiguration(
                project_dir=str(self.out), logging_dir=str(self.out / "logs")
            ),
            **kwargs,
        )
        if not torch.cuda.is_available():
            from vinaforge.train.distributed import enable_cpu_fsdp

            enable_cpu_fsdp(acc)
        if acc.distributed_type == "DEEPSPEED":
            gas = acc.state.deepspeed_plugin.deepspeed_config.get("gradient_accumulation_steps")
            if gas not in (None, "auto", self.cfg.grad_accum):
                raise TrainingError(
                    f"the DeepSpeed config accumulates {gas} micro-batches but grad_accum is {self.cfg.grad_accum}: "
                    "set the same value in both"
                )
        return acc

    def _load_model_and_tokenizer(self):
        from vinaforge.model.load import load_tokenizer
        from vinaforge.model.resize import check_fits_model
        from vinaforge.train.fit import load_training_model

        model_path = str(self.cfg.model)
        tok_path = str(self.cfg.tokenizer) if self.cfg.tokenizer else model_path
        tokenizer = load_tokenizer(tok_path)
        model = load_training_model(self.cfg, model_path)
        check_fits_model(model, tokenizer, allow_smaller=self.cfg.allow_vocab_mismatch)
        if tokenizer.eos_token_id is None:
            raise TrainingError(f"tokenizer {tok_path} has no EOS token: documents cannot be separated")
        self.model_path = model_path
        return model, tokenizer

    def _check_output(self, resume: bool) -> Checkpoint | None:
        has_ckpts = bool(list_checkpoints(self.ckpt_root))
        if not resume:
            if has_ckpts or (self.out / "final").exists():
                raise TrainingError(
                    f"{self.out} already holds a run (checkpoints/ or final/): pass --resume to continue it, "
                    "or choose another --output"
                )
            return None
        ckpt = latest_checkpoint(self.ckpt_root, self.config_hash, self.trajectory)
        if ckpt is None and has_ckpts:
            log.warning("no usable checkpoint in %s: starting from the beginning", self.ckpt_root)
        return ckpt

    def _flatten_for_flash(self) -> bool:
        return self.cfg.doc_masking and self.cfg.attn_implementation.startswith("flash")

    # ------------------------------------------------------------------ run

    def run(self, resume: bool = False) -> dict:
        from accelerate.utils import set_seed

        from vinaforge.train.flops import flops_per_token, peak_tflops

        summary_file = self.out / SUMMARY_FILE
        if resume and summary_file.is_file():
            done = json.loads(summary_file.read_text(encoding="utf-8"))
            if done.get("config_hash") == self.config_hash and (self.out / "final").is_dir():
                log.info("run in %s already finished; nothing to do", self.out)
                return done
        self.out.mkdir(parents=True, exist_ok=True)
        ckpt = self._check_output(resume)
        acc = self._accelerator()
        self.acc = acc
        set_seed(self.seed)
        model, tokenizer = self._load_model_and_tokenizer()
        if not self.cfg.qlora:  # a 4-bit model is already on its device
            model.to(acc.device)
        from vinaforge.train.levers import apply_levers

        apply_levers(model, self.cfg.fused_loss, self.cfg.liger_kernels, self.cfg.loss_chunk_size)
        self.tokenizer = tokenizer

        world = acc.num_processes
        self.global_seqs = self.cfg.micro_batch_size * self.cfg.grad_accum * world
        self.tokens_per_step = self.global_seqs * self.cfg.seq_len
        plans = plan_phases(self.cfg, self.tokens_per_step)
        self.plans = plans
        self.total_steps = sum(p.steps for p in plans)

        cache = Path(self.cfg.data.cache_dir) if self.cfg.data.cache_dir else self.out / "packed"
        with acc.main_process_first():
            self.sources = pack_sources(
                self.cfg.data.sources,
                tokenizer,
                cache,
                self.cfg.data.add_bos,
                self.cfg.data.tokenize_batch,
                progress=self.cfg.progress and acc.is_local_main_process,
            )
        self.sampler = MixtureSampler(self.sources, self.cfg.seq_len, self.seed)
        self.natural = natural_weights(self.sources)
        for plan in plans:  # fail now, not at phase 3, on a source too small for one sequence
            for seg in plan.config.mixture or self.cfg.data.mixture or [MixtureSegment(weights=self.natural)]:
                self.sampler.check(seg.normalised())
        self.heldout = load_heldout(self.cfg)
        self.metrics = MetricsLog(self.out / METRICS_FILE, acc.is_main_process)

        self.flops_token = flops_per_token(model, self.cfg.seq_len)
        self.peak, self.peak_source = peak_tflops(acc.device, self.precision, self.cfg.peak_tflops)

        state = TrainerState(phase_start_drawn={})
        if ckpt is not None:
            state = TrainerState(**ckpt.trainer_state())
            if state.processes != world:
                log.warning(
                    "the checkpoint was written by %d process(es), this run has %d: the global batch "
                    "(micro_batch_size x grad_accum x processes) changes, so the run continues on another "
                    "trajectory",
                    state.processes,
                    world,
                )
            self.metrics.truncate(state.global_step)
            log.info(
                "resuming from %s (step %d, phase %s)", ckpt.path, ckpt.step, plans[state.phase_index].name
            )
        elif acc.is_main_process and self.metrics.path.exists():
            self.metrics.path.unlink()
        self.state = state

        if acc.log_with:
            acc.init_trackers(self.cfg.run_name, config=_flat_hparams(self.cfg))
        log.info(
            "training %d steps in %d phase(s): %s sequences x %d tokens per step (%d process(es)), "
            "%s model FLOPs/token, peak %s",
            self.total_steps,
            len(plans),
            self.global_seqs,
            self.cfg.seq_len,
            world,
            f"{self.flops_token:.3g}",
            self.peak_source,
        )
        start_wall = time.perf_counter()
        with StopSignals() as stop, self._progress(acc) as progress:
            self.stop = stop
            self.progress = progress
            self.task = progress.add_task(
                "cpt", total=self.total_steps, completed=state.global_step, loss="-", tps="-", mfu="-"
            )
            for plan in plans[state.phase_index :]:
                model = self._run_phase(plan, model, ckpt if plan.index == state.phase_index else None)
        final = self._save_final(model)
        summary = self._summary(final, time.perf_counter() - start_wall)
        if acc.is_main_process:
            atomic_write_json(summary_file, summary)
            if not self.cfg.keep_checkpoints_after_success:
                shutil.rmtree(self.ckpt_root, ignore_errors=True)
        acc.wait_for_everyone()
        acc.end_training()
        return summary

    def _progress(self, acc):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from vinaforge.logs import console

        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[tps]} tok/s"),
            TextColumn("MFU {task.fields[mfu]}"),
            TimeRemainingColumn(),
            disable=not (self.cfg.progress and acc.is_main_process),
            console=console(),  # the log lines' console: bar and logs never interleave
        )

    # ------------------------------------------------------------------ one phase

    def _run_phase(self, plan: PhasePlan, model, ckpt: Checkpoint | None):
        import torch

        from vinaforge.model.trainable import apply_trainable, merge_lora

        acc, cfg, state = self.acc, self.cfg, self.state
        phase = plan.config
        trainable = apply_trainable(model, phase.trainable, num_base_rows=cfg.num_base_rows, lora=phase.lora)
        if cfg.gradient_checkpointing:
            set_activation_checkpointing(trainable.model, True)
        optimizer = build_optimizer(trainable.param_groups(phase.weight_decay), phase, cfg, acc.device.type)
        scheduler = build_scheduler(optimizer, phase, plan.steps)
        sharded_rows = None
        if trainable.frozen_rows and acc.distributed_type in _SHARDED:
            from vinaforge.train.distributed import ShardedFrozenRows

            sharded_rows = ShardedFrozenRows(ShardedFrozenRows.names_of(trainable))
        wrapped, optimizer = acc.prepare(trainable.model, optimizer)
        if ckpt is not None:
            acc.load_state(str(ckpt.path))
            scheduler.load_state_dict(torch.load(ckpt.path / SCHEDULER_FILE, weights_only=True))
            self.sampler.load_state_dict(state.sampler)
            # the frozen rows to restore are those of the loaded weights (identical by construction)
            trainable.frozen_rows = [(p, p.detach()[: s.shape[0]].clone()) for p, s in trainable.frozen_rows]
        else:
            state.phase_index, state.phase_step = plan.index, 0
            state.phase_start_drawn = dict(self.sampler.drawn)
        if sharded_rows is not None:  # after load_state: the base rows are those of the loaded shards
            sharded_rows.attach(wrapped, trainable)
        self.sharded_rows = sharded_rows
        info = trainable.summary()
        log.info(
            "phase %s (%d/%d): trainable %s = %s parameters, %d steps, lr %g, %s schedule",
            plan.name,
            plan.index + 1,
            len(self.plans),
            phase.trainable,
            f"{info['trainable_params']:,}",
            plan.steps,
            phase.lr,
            phase.schedule,
        )
        self.progress.update(self.task, description=plan.name)
        if state.global_step == 0 and state.last_eval_step < 0:
            self._evaluate(wrapped)
        wrapped.train()
        while state.phase_step < plan.steps:
            record = self._train_step(plan, wrapped, optimizer, scheduler, trainable)
            for cb in self.callbacks:
                cb(record)
            if state.global_step % cfg.eval_every == 0:
                self._evaluate(wrapped)
            stopping = self._stop_requested()
            if state.global_step % cfg.save_every == 0 or stopping:
                self._checkpoint(wrapped, scheduler)
            if stopping:
                raise TrainingInterrupted(
                    f"stopped by {self.stop.received or 'a signal'} at step {state.global_step}; "
                    f"checkpoint in {self.ckpt_root}; run again with --resume to continue"
                )
        if state.last_eval_step != state.global_step:
            self._evaluate(wrapped)
        self._end_phase_record(plan, info)
        if (
            not list_checkpoints(self.ckpt_root)
            or list_checkpoints(self.ckpt_root)[-1][0] != state.global_step
        ):
            self._checkpoint(wrapped, scheduler)
        if plan.index == len(self.plans) - 1 and acc.distributed_type in _SHARDED:
            self.final_state_dict = acc.get_state_dict(wrapped)  # gathered from the shards
        model = acc.unwrap_model(wrapped)
        if phase.trainable == "lora" and cfg.qlora:
            from vinaforge.train.fit import merge_qlora_into_base

            model = merge_qlora_into_base(model, self.model_path, torch.float32, cfg.attn_implementation)
        elif phase.trainable == "lora":
            model = merge_lora(model)
        trainable.release()
        if cfg.gradient_checkpointing:
            set_activation_checkpointing(model, False)
        acc.free_memory()
        return model

    def _stop_requested(self) -> bool:
        import torch

        flag = self.stop.received is not None
        if self.acc.num_processes > 1:
            t = torch.tensor([1.0 if flag else 0.0], device=self.acc.device)
            flag = bool(self.acc.reduce(t, "max").item() > 0)
        return flag

    def _weights(self, plan: PhasePlan) -> dict[str, float]:
        if plan.config.mixture:
            return weights_at(plan.config.mixture, self.state.phase_step / plan.steps)
        if self.cfg.data.mixture:
            return weights_at(self.cfg.data.mixture, self.state.global_step / self.total_steps)
        return self.natural

    #: consecutive steps with a non-finite gradient norm before the run stops
    MAX_NONFINITE_GRAD_STEPS = 3

    def _check_grad_norm(self, grad_norm, plan: PhasePlan) -> None:
        """Stop a run whose updates are clipped to nothing.

        A gradient norm that overflows (inf) makes clipping scale every gradient by 0, so the
        optimizer applies no update and the loss stays where it was: the run would "finish" without
        training. Measured on zero-initialised new rows (``init: zero``): the residual stream of
        those tokens is tiny, each RMSNorm's backward multiplies their gradient by about
        1/rms, and after 6 layers embedding gradients reach 1e22, whose squared norm overflows.
        """
        finite = grad_norm is None or math.isfinite(float(grad_norm))
        self._nonfinite_steps = 0 if finite else self._nonfinite_steps + 1
        if self._nonfinite_steps >= self.MAX_NONFINITE_GRAD_STEPS:
            raise TrainingError(
                f"step {self.state.global_step} (phase {plan.name}): the gradient norm was {float(grad_norm)} for "
                f"{self._nonfinite_steps} steps in a row, so clipping zeroed every update and nothing trains. "
                "Zero-initialised embedding rows (init: zero) do this; use init: mean, or lower "
                f"phases.{plan.index}.lr = {plan.config.lr}"
            )

    def _train_step(self, plan: PhasePlan, model, optimizer, scheduler, trainable) -> dict:
        import torch

        from vinaforge.train.flops import mfu

        acc, cfg, state = self.acc, self.cfg, self.state
        t0 = time.perf_counter()
        picks = self.sampler.draw(self.global_seqs, self._weights(plan))
        b, world, rank = cfg.micro_batch_size, acc.num_processes, acc.process_index
        batches = []
        for m in range(cfg.grad_accum):
            start = (m * world + rank) * b
            batches.append(
                micro_batch(
                    self.sources,
                    picks[start : start + b],
                    cfg.seq_len,
                    cfg.doc_masking,
                    self._flatten_for_flash(),
                    acc.device,
                )
            )
        local_items = torch.tensor([float(sum(scored_tokens(x) for x in batches))], device=acc.device)
        n_items = int(acc.reduce(local_items, "sum").item()) if world > 1 else int(local_items.item())
        if n_items == 0:
            raise TrainingError(f"step {state.global_step + 1}: every label of the global batch is masked")
        loss_sum = torch.zeros((), device=acc.device)
        grad_norm = None
        lr = optimizer.param_groups[0]["lr"]  # the rate this step uses
        for batch in batches:
            with acc.accumulate(model):
                loss = model(**batch, use_cache=False, num_items_in_batch=n_items).loss
                # (the output's logits are dropped here, not held through the backward pass)
                # the loss is already divided by the global token count; undo accelerate's /grad_accum
                # and DDP's mean over processes so gradients are d(sum NLL / n_items)
                acc.backward(loss * (world * cfg.grad_accum))
                loss_sum += loss.detach()
                if acc.sync_gradients:
                    if self.sharded_rows is not None:
                        self.sharded_rows.zero_frozen_grads()
                    grad_norm = acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                if acc.sync_gradients:
                    trainable.after_optimizer_step()
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
        loss = float(acc.reduce(loss_sum, "sum").item()) if world > 1 else float(loss_sum.item())
        if not math.isfinite(loss):
            raise TrainingError(
                f"step {state.global_step + 1} (phase {plan.name}): loss is {loss}; lower the learning rate "
                f"(phases.{plan.index}.lr = {plan.config.lr}) or check the data"
            )
        self._check_grad_norm(grad_norm, plan)
        dt = time.perf_counter() - t0
        state.global_step += 1
        state.phase_step += 1
        state.tokens_seen += self.tokens_per_step
        state.train_time_s += dt
        tps = self.tokens_per_step / dt
        util = mfu(tps, self.flops_token, self.peak, world)
        record = {
            "step": state.global_step,
            "phase": plan.name,
            "loss": loss,
            "lr": lr,
            "grad_norm": float(grad_norm) if grad_norm is not None else None,
            "tokens": state.tokens_seen,
            "scored_tokens": n_items,
            "tokens_per_s": tps,
            "mfu": util,
            "step_time_s": dt,
        }
        self.metrics.append(record)
        self._log_trackers(record)
        self.progress.update(
            self.task,
            advance=1,
            loss=f"{loss:.3f}",
            tps=f"{tps:,.0f}",
            mfu=f"{util:.1%}" if util is not None else "n/a",
        )
        if state.global_step % cfg.log_every == 0:
            log.info(
                "step %d/%d (%s) loss %.4f lr %.3g grad-norm %s %s tok/s MFU %s",
                state.global_step,
                self.total_steps,
                plan.name,
                loss,
                record["lr"],
                f"{record['grad_norm']:.3g}" if record["grad_norm"] is not None else "n/a",
                f"{tps:,.0f}",
                f"{util:.2%}" if util is not None else "n/a",
            )
        return record

    def _log_trackers(self, record: dict) -> None:
        if not self.acc.log_with:
            return
        values = {f"train/{k}": v for k, v in record.items() if isinstance(v, int | float) and k != "step"}
        values.update({f"mixture/{k}": v for k, v in self.sampler.realised().items()})
        self.acc.log(values, step=record["step"])

    def _evaluate(self, model) -> dict | None:
        if not self.heldout:
            return None
        from vinaforge.model.bpb import bits_per_byte

        t0 = time.perf_counter()
        inner = self.acc.unwrap_model(model)
        h = self.cfg.heldout
        result = bits_per_byte(
            inner,
            self.tokenizer,
            self.heldout,
            max_length=h.max_length or self.cfg.seq_len,
            batch_size=h.batch_size,
            allow_vocab_mismatch=self.cfg.allow_vocab_mismatch,
        )
        model.train()
        record = {
            "step": self.state.global_step,
            "eval_loss": result.nll_nats / result.n_tokens if result.n_tokens else float("nan"),
            "eval_bpb": result.bits_per_byte,
            "eval_tokens": result.n_tokens,
            "eval_bytes": result.n_bytes,
            "eval_time_s": time.perf_counter() - t0,
        }
        self.state.last_eval_step = self.state.global_step
        self.metrics.append(record)
        if self.acc.log_with:
            self.acc.log(
                {"eval/loss": record["eval_loss"], "eval/bits_per_byte": record["eval_bpb"]},
                step=self.state.global_step,
            )
        log.info(
            "held-out at step %d: loss %.4f, %.4f bits per byte (%d texts)",
            self.state.global_step,
            record["eval_loss"],
            record["eval_bpb"],
            len(self.heldout),
        )
        return record

    def _end_phase_record(self, plan: PhasePlan, info: dict) -> None:
        state = self.state
        if any(p["name"] == plan.name for p in state.phases_done):
            return
        drawn = {n: self.sampler.drawn.get(n, 0) - state.phase_start_drawn.get(n, 0) for n in self.sources}
        realised = proportions(drawn)
        state.phases_done.append(
            {
                "name": plan.name,
                "trainable": plan.config.trainable,
                "trainable_params": info["trainable_params"],
                "total_params": info["total_params"],
                "steps": plan.steps,
                "tokens": plan.steps * self.tokens_per_step,
                "sequences_per_source": drawn,
                "realised_mixture": realised,
            }
        )
        log.info(
            "phase %s done: realised mixture %s",
            plan.name,
            ", ".join(f"{k} {v:.1%}" for k, v in realised.items()),
        )

    def _checkpoint(self, model, scheduler) -> Path:
        import torch

        acc, state = self.acc, self.state
        state.sampler = self.sampler.state_dict()
        state.processes = acc.num_processes

        def save_states(folder: Path) -> None:
            acc.save_state(str(folder), safe_serialization=True)
            if acc.is_main_process:
                torch.save(scheduler.state_dict(), folder / SCHEDULER_FILE)

        path = write_checkpoint(
            self.ckpt_root,
            state.global_step,
            save_states,
            state.to_dict(),
            self.config_hash,
            self.trajectory,
            acc.is_main_process,
            acc.wait_for_everyone,
        )
        if acc.is_main_process:
            prune_checkpoints(self.ckpt_root, self.cfg.keep_checkpoints)
        log.info("checkpoint written: %s", path)
        return path

    # ------------------------------------------------------------------ output

    def _save_final(self, model) -> Path:
        from vinaforge.model.tiny import update_vinaforge_meta

        acc = self.acc
        final = self.out / "final"
        if acc.is_main_process:
            update_vinaforge_meta(
                model,
                cpt={
                    "phases": [p["name"] + ":" + p["trainable"] for p in self.state.phases_done],
                    "steps": self.state.global_step,
                    "tokens": self.state.tokens_seen,
                    "config_hash": self.config_hash,
                },
            )
            from vinaforge.train.fit import cast_state_dict, save_torch_dtype
            from vinaforge.train.levers import disable_levers

            dtype = save_torch_dtype(self.cfg, self.precision)
            disable_levers(model)
            if self.final_state_dict is None:
                model.to(dtype)
            else:  # gathered from shards: cast the copy, record the dtype in config.json
                model.config.dtype = dtype
            with atomic_path(final) as tmp:
                tmp.mkdir(parents=True)
                model.save_pretrained(tmp, state_dict=cast_state_dict(self.final_state_dict, dtype))
                from vinaforge.chat import ensure_chat_template

                ensure_chat_template(self.tokenizer)
                from vinaforge.model.load import save_tokenizer

                save_tokenizer(self.tokenizer, tmp)
            log.info("final model and tokenizer saved to %s", final)
        acc.wait_for_everyone()
        return final

    def _summary(self, final: Path, wall: float) -> dict:
        from vinaforge.model.tiny import is_random_init

        records = self.metrics.read() if self.acc.is_main_process else []
        steps = [r for r in records if "loss" in r]
        evals = [r for r in records if "eval_bpb" in r]
        steady = [r["tokens_per_s"] for r in steps[2:]] or [r["tokens_per_s"] for r in steps]
        mfus = [r["mfu"] for r in steps[2:] if r.get("mfu") is not None]
        return {
            "config_hash": self.config_hash,
            "model": self.model_path,
            "random_init": is_random_init(final) if final.is_dir() else None,
            "final": final.name,  # relative to this summary: the folder may be renamed after the run
            "steps": self.state.global_step,
            "tokens": self.state.tokens_seen,
            "processes": self.acc.num_processes,
            "precision": self.precision,
            "phases": self.state.phases_done,
            "first_loss": steps[0]["loss"] if steps else None,
            "final_loss": steps[-1]["loss"] if steps else None,
            "init_bpb": evals[0]["eval_bpb"] if evals else None,
            "final_bpb": evals[-1]["eval_bpb"] if evals else None,
            "tokens_per_s": float(np.median(steady)) if steady else None,
            "mfu": float(np.median(mfus)) if mfus else None,
            "peak_source": self.peak_source,
            "peak_tflops": self.peak,
            "flops_per_token": self.flops_token,
            "train_time_s": self.state.train_time_s,
            "wall_time_s": wall,
            "packed": {n: s.meta | {"path": str(s.path)} for n, s in self.sources.items()},
        }


def _flat_hparams(cfg: CptConfig) -> dict:
    """Scalar settings for the trackers' hyper-parameter tables (TensorBoard rejects nested values)."""
    out = {}
    for key, value in cfg.model_dump(mode="json").items():
        if isinstance(value, int | float | str | bool):
            out[key] = value
    for i, phase in enumerate(cfg.phases):
        for key in ("trainable", "lr", "schedule", "max_steps", "tokens"):
            value = getattr(phase, key)
            if value is not None:
                out[f"phase{i}_{key}"] = value
    return out


def train_cpt(
    cfg: CptConfig,
    output_dir: str | Path,
    resume: bool = False,
    callbacks: Sequence[Callable[[dict], None]] = (),
    default_seed: int = 0,
    inputs: dict[str, str] | None = None,
) -> dict:
    """Run continued pretraining; returns the summary (also in ``output_dir/summary.json``).

    Paths in ``cfg`` are used as given (the run engine resolves ``@stage/...`` first). ``inputs``
    (path -> content hash) is what checkpoints record as their inputs; by default a cheap
    fingerprint (sizes and modification times) of the model, tokenizer and data paths.

    Raises :class:`TrainingInterrupted` after checkpointing on SIGTERM/Ctrl-C, :class:`TrainingError`
    or :class:`~vinaforge.train.checkpoint.CheckpointError` with a message naming the cause.
    """
    import torch

    threads = torch.get_num_threads()
    if cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    try:
        return CptTrainer(cfg, output_dir, callbacks, default_seed, inputs).run(resume=resume)
    finally:
        torch.set_num_threads(threads)
