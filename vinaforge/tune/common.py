"""What every post-training method shares: the model in its training mode, TRL settings, outputs.

- :class:`ModelFields` — the model part of every tune stage's config (``model``, ``mode``:
  full / lora / qlora / dora, ``lora`` options, ``chat_template``);
- :func:`load_model_for_training` — tokenizer with a *marked* chat template (refused without
  ``{% generation %}`` markers, through :func:`vinaforge.chat.apply_chat_template`), the model in
  full precision or bitsandbytes 4-bit NF4, embeddings resized for template tokens, and the PEFT
  wrapper. New embedding rows of an extended vocabulary stay trainable under LoRA (PEFT's
  ``trainable_token_indices``), as in :mod:`vinaforge.model.trainable`;
- :class:`TrainSettings` — the hyper-parameters every TRL config shares, as one pydantic block;
- :func:`save_tuned` — an HF folder with the chat template, LoRA merged (QLoRA: merged into a
  full-precision reload of the base, not into 4-bit weights) or kept as an adapter;
- :func:`answer_prompts` / :func:`answers_table` — the greedy before/after table of the report card,
  through :mod:`vinaforge.generate` (the one generation engine);
- :func:`plot_history` — loss (and reward) curves from a TRL trainer's ``log_history``.

The reward-model and RL modules (:mod:`vinaforge.tune.reward`, :mod:`vinaforge.tune.rl`) reuse
these. Hand-written glue over transformers, PEFT, bitsandbytes and TRL; nothing here trains.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from vinaforge.stage import StageConfig

log = logging.getLogger(__name__)

Mode = Literal["full", "lora", "qlora", "dora"]
MODES = ("full", "lora", "qlora", "dora")
DEFAULT_PROMPTS = [
    "Thủ đô của Việt Nam là thành phố nào?",
    "Hãy giới thiệu ngắn gọn về bản thân bạn.",
    "Viết một câu chúc mừng năm mới bằng tiếng Việt.",
    "Làm thế nào để tiết kiệm điện trong gia đình?",
    "Giải thích ngắn gọn vì sao cần uống đủ nước mỗi ngày.",
]


def _check_model_source(value: str) -> str:
    import re

    if value.startswith("@") or Path(value).exists():
        return value
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", value):
        return value  # a hub id (owner/name), loaded by from_pretrained on the user's machine
    raise ValueError(f"model folder not found: {value!r} (relative to {os.getcwd()}); "
                     "give a folder, '@stage/path' or a hub id owner/name")


ModelSource = Annotated[str, AfterValidator(_check_model_source)]
"""A model folder that must exist, an ``@stage/...`` reference, or a hub id ``owner/name``."""


class TuneError(ValueError):
    """A post-training setting or input that cannot work; the message names the key or file."""


class LoraOptions(BaseModel):
    """PEFT ``LoraConfig`` settings and how the embeddings train alongside the adapters."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, gt=0)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = Field(
        "all-linear", description="'all-linear', a list of module names (q_proj, v_proj...) or a regex"
    )
    embeddings: Literal["auto", "new_rows", "full", "none"] = Field(
        "auto",
        description="auto: train the new rows of an extended vocabulary (and of template tokens), else none. "
        "new_rows trains only the new input-embedding rows and the whole output head (TRL's fused LM head "
        "reads the head's weight directly, so a row-wise adapter on it would be bypassed)",
    )


class ModelFields(StageConfig):
    """The model part of every tune stage config."""

    model: ModelSource = Field(..., description="HF model folder, '@stage/path' or hub id: any from_pretrained model")
    mode: Mode = Field("lora", description="full | lora | qlora (4-bit NF4, needs bitsandbytes) | dora")
    lora: LoraOptions = LoraOptions()
    chat_template: str = Field(
        "auto", description="auto (keep a marked template, swap a known unmarked one), a registry name or a .jinja file"
    )
    dtype: str = Field("auto", description="auto: bf16 on a GPU that supports it, else float32")
    merge_lora: bool = Field(True, description="save the LoRA merged into the model (else the adapter folder)")


class TrainSettings(BaseModel):
    """Hyper-parameters every TRL trainer takes (its ``TrainingArguments`` part)."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: float = Field(2e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, ge=-1, description="-1: run the epochs; 0 is refused (it used to train anyway)")
    batch_size: int = Field(4, ge=1)
    eval_batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    warmup_steps: float = Field(0.0, ge=0, description="steps, or a fraction of training below 1")
    scheduler: str = "linear"
    weight_decay: float = Field(0.0, ge=0)
    logging_steps: int = Field(1, ge=1)
    eval_steps: int | None = Field(None, ge=1, description="evaluate every N steps (default: each epoch)")
    save_steps: int = Field(50, ge=1, description="checkpoint every N steps (the stage resumes from them)")
    max_length: int = Field(1024, ge=8)
    gradient_checkpointing: bool = Field(
        False, description="TRL turns it on by default; off here because it slows small models down"
    )
    seed: int | None = None
    threads: int | None = Field(None, ge=1, description="torch CPU threads")

    @field_validator("max_steps")
    @classmethod
    def _some_steps(cls, value: int) -> int:
        if value == 0:
            raise ValueError("max_steps 0 trains nothing: use -1 (run the epochs) or a positive number")
        return value

    def trl_kwargs(self, out_dir: Path, *, seed: int, has_eval: bool) -> dict[str, Any]:
        import torch

        cuda = torch.cuda.is_available()
        kwargs: dict[str, Any] = dict(
            output_dir=str(out_dir),
            learning_rate=self.learning_rate,
            num_train_epochs=self.epochs,
            max_steps=self.max_steps,
            per_device_train_batch_size=self.batch_size,
            per_device_eval_batch_size=self.eval_batch_size,
            gradient_accumulation_steps=self.grad_accum,
            warmup_steps=self.warmup_steps,
            lr_scheduler_type=self.scheduler,
            weight_decay=self.weight_decay,
            logging_steps=self.logging_steps,
            save_strategy="steps",
            save_steps=self.save_steps,
            save_total_limit=1,
            report_to=[],
            seed=self.seed if self.seed is not None else seed,
            gradient_checkpointing=self.gradient_checkpointing,
            use_cpu=not cuda,
            bf16=bool(cuda and torch.cuda.is_bf16_supported()),
            dataloader_num_workers=0,
            disable_tqdm=False,
            max_length=self.max_length,
        )
        if has_eval:
            kwargs["eval_strategy"] = "steps" if self.eval_steps else "epoch"
            if self.eval_steps:
                kwargs["eval_steps"] = self.eval_steps
        return kwargs


# ----------------------------------------------------------------------------- loading


@dataclass
class Loaded:
    """A model ready for a TRL trainer and what was decided while loading it."""

    model: Any
    tokenizer: Any
    template: Any  # vinaforge.chat.TemplateChoice
    mode: str
    source: str
    num_base_rows: int | None = None
    added_tokens: list[str] = field(default_factory=list)

    @property
    def is_peft(self) -> bool:
        from vinaforge.model.tiny import is_peft_model

        return is_peft_model(self.model)


def bitsandbytes_available() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def require_bitsandbytes() -> None:
    if not bitsandbytes_available():
        raise TuneError(
            "mode: qlora needs bitsandbytes (4-bit NF4), which is not installed; "
            "install it with `pip install 'vinaforge[fit]'` or set mode: lora"
        )


def _dtype(name: str):
    import torch

    from vinaforge.model.load import torch_dtype

    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return torch_dtype(name)


def load_tokenizer_with_template(source: str, chat_template: str = "auto"):
    """The model's tokenizer carrying a marked chat template, and the template choice."""
    from vinaforge.chat import TemplateError, apply_chat_template
    from vinaforge.model.load import load_tokenizer

    tok = load_tokenizer(source)
    try:
        choice = apply_chat_template(tok, chat_template, source=f"{source} (chat_template: {chat_template})")
    except TemplateError as err:
        raise TuneError(f"chat_template: {err}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token or tok.eos_token
    return tok, choice


def _load_base(source: str, mode: str, dtype: str):
    import torch

    from vinaforge.model.load import ModelLoadError, check_model_source, load_causal_lm

    if mode != "qlora":
        return load_causal_lm(source, dtype=str(_dtype(dtype)).replace("torch.", ""))
    require_bitsandbytes()
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    check_model_source(source)
    compute = _dtype(dtype)
    quant = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute
    )
    device_map = {"": 0} if torch.cuda.is_available() else {"": "cpu"}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, quantization_config=quant, dtype=compute, device_map=device_map
        )
    except (OSError, ValueError, RuntimeError) as err:
        raise ModelLoadError(f"cannot load {source!r} in 4-bit (mode: qlora): {err}") from err
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def linear_module_names(model) -> list[str]:
    """Short names of the linear layers LoRA can target (q_proj, up_proj...), head excluded."""
    import torch

    head = model.get_output_embeddings()
    names = set()
    for name, mod in model.named_modules():
        if mod is head:
            continue
        if isinstance(mod, torch.nn.Linear) or type(mod).__name__.startswith("Linear"):
            names.add(name.rsplit(".", 1)[-1])
    return sorted(names)


def check_lora_targets(model, targets: str | list[str], source: str = "model") -> None:
    """Fail early, naming ``lora.target_modules``, when a target matches no module."""
    import re

    if targets == "all-linear":
        return
    names = [n for n, _ in model.named_modules() if n]
    available = ", ".join(linear_module_names(model)) or "none"
    if isinstance(targets, str):
        if not any(re.fullmatch(targets, n) for n in names):
            raise TuneError(f"lora.target_modules: regex {targets!r} matches no module of {source}; linear layers: {available}")
        return
    if not targets:
        raise TuneError("lora.target_modules is empty; use 'all-linear' or module names")
    for t in targets:
        if not any(n == t or n.endswith("." + t) for n in names):
            raise TuneError(f"lora.target_modules: {t!r} matches no module of {source}; linear layers: {available}")


def lora_config(model, opts: LoraOptions, *, dora: bool, num_base_rows: int | None):
    """PEFT ``LoraConfig``; the embeddings as ``opts.embeddings`` says (see :class:`LoraOptions`)."""
    from peft import LoraConfig

    from vinaforge.model.trainable import embedding_params, module_name

    emb, _head, tied = embedding_params(model)
    emb_name = module_name(model, model.get_input_embeddings()).rsplit(".", 1)[-1]
    head_mod = model.get_output_embeddings()
    head_name = module_name(model, head_mod).rsplit(".", 1)[-1] if head_mod is not None else None
    targets = [emb_name] if tied or head_name is None else [emb_name, head_name]
    mode = opts.embeddings
    if mode == "auto":
        mode = "new_rows" if num_base_rows and num_base_rows < emb.shape[0] else "none"
    kwargs: dict[str, Any] = {}
    if mode == "new_rows":
        if not num_base_rows or num_base_rows >= emb.shape[0]:
            raise TuneError("lora.embeddings: new_rows, but the model has no new embedding rows (not extended)")
        if tied:  # TRL's fused LM head reads the head's weight directly: a row delta on it would be skipped
            kwargs["modules_to_save"], kwargs["ensure_weight_tying"] = [emb_name], True
        else:
            kwargs["trainable_token_indices"] = {emb_name: list(range(num_base_rows, emb.shape[0]))}
            if head_name is not None:
                kwargs["modules_to_save"] = [head_name]
    elif mode == "full":
        kwargs["modules_to_save"] = targets
        kwargs["ensure_weight_tying"] = tied
    return LoraConfig(
        task_type="CAUSAL_LM", r=opts.r, lora_alpha=opts.alpha, lora_dropout=opts.dropout,
        target_modules=opts.target_modules, use_dora=dora, **kwargs,
    )  # fmt: skip


def load_model_for_training(cfg: ModelFields, *, peft: bool = True) -> Loaded:
    """Tokenizer (marked template) + model in ``cfg.mode``; wrapped in PEFT unless ``peft=False``.

    ``peft=False`` returns the bare model and leaves the wrapping to the caller (used when a
    trainer takes ``peft_config=``); :func:`peft_config_for` builds the matching config.
    """
    from vinaforge.checks import check_tokenizer_fits
    from vinaforge.model.resize import read_resize_info

    source = str(cfg.model)
    tok, choice = load_tokenizer_with_template(source, cfg.chat_template)
    model = _load_base(source, cfg.mode, cfg.dtype)
    info = read_resize_info(model)
    num_base_rows = int(info["num_base_rows"]) if info else None
    rows = model.get_input_embeddings().weight.shape[0]
    check_tokenizer_fits(model, tok, source, added_ids=len(choice.added_tokens))
    if len(tok) > rows:  # template tokens (ChatML) the model has no rows for yet
        if cfg.mode == "qlora":
            raise TuneError(
                f"chat_template {choice.name!r} adds tokens {choice.added_tokens} that {source} has no embedding "
                "rows for; resizing a 4-bit model is not supported: use a template without new tokens"
            )
        num_base_rows = num_base_rows or rows
        model.resize_token_embeddings(len(tok), mean_resizing=True)
    model.config.use_cache = False
    loaded = Loaded(model, tok, choice, cfg.mode, source, num_base_rows, list(choice.added_tokens))
    if cfg.mode != "full":
        check_lora_targets(model, cfg.lora.target_modules, source)
        if peft:
            from peft import get_peft_model

            loaded.model = get_peft_model(model, peft_config_for(loaded, cfg))
            loaded.model.print_trainable_parameters()
    elif cfg.mode == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    return loaded


def peft_config_for(loaded: Loaded, cfg: ModelFields):
    if cfg.mode == "full":
        return None
    base = loaded.model.get_base_model() if loaded.is_peft else loaded.model
    return lora_config(base, cfg.lora, dora=cfg.mode == "dora", num_base_rows=loaded.num_base_rows)


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- outputs


def latest_checkpoint(folder: Path) -> str | None:
    """The newest complete ``checkpoint-N`` a trainer left in ``folder`` (resume point), if any.

    The HF Trainer writes a checkpoint in place (weights, optimizer, RNG, then
    ``trainer_state.json`` last), so a run killed while saving leaves a folder without its state;
    resuming from it failed. Only checkpoints whose state file is whole count.
    """
    ckpts = sorted(
        (p for p in Path(folder).glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    for ckpt in reversed(ckpts):
        if _complete_checkpoint(ckpt):
            return str(ckpt)
        log.warning("%s was cut off while being saved; resuming from an earlier checkpoint", ckpt)
    return None


def _complete_checkpoint(ckpt: Path) -> bool:
    try:
        json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def save_tuned(loaded: Loaded, out_dir: Path, *, merge: bool = True, meta: dict | None = None) -> Path:
    """An HF folder with the tokenizer and its chat template; LoRA merged or as an adapter.

    QLoRA adapters are merged into a full-precision reload of the base (merging into 4-bit
    weights would round the result); the adapter is saved beside it under ``adapter/``.
    """
    from vinaforge.io import atomic_path
    from vinaforge.model.tiny import save_model, update_vinaforge_meta

    model = loaded.model
    base = model.get_base_model() if loaded.is_peft else model
    if meta:
        update_vinaforge_meta(base, **meta)
    if not loaded.is_peft:
        base.config.use_cache = True
        return save_model(base, loaded.tokenizer, out_dir, merge_lora=False)
    if not merge:
        with atomic_path(out_dir) as tmp:
            tmp.mkdir(parents=True)
            model.save_pretrained(tmp)
            from vinaforge.model.load import save_tokenizer

            save_tokenizer(loaded.tokenizer, tmp)
        return Path(out_dir)
    if loaded.mode == "qlora":
        return _merge_qlora(loaded, out_dir, meta or {})
    merged = model.merge_and_unload()
    merged.config.use_cache = True
    return save_model(merged, loaded.tokenizer, out_dir, merge_lora=False)


def _merge_qlora(loaded: Loaded, out_dir: Path, meta: dict) -> Path:
    import tempfile

    from peft import PeftModel

    from vinaforge.model.load import load_causal_lm
    from vinaforge.model.tiny import save_model, update_vinaforge_meta

    with tempfile.TemporaryDirectory(dir=Path(out_dir).parent) as tmp:
        loaded.model.save_pretrained(tmp)
        base = load_causal_lm(loaded.source, dtype="float32")
        if len(loaded.tokenizer) > base.get_input_embeddings().weight.shape[0]:
            base.resize_token_embeddings(len(loaded.tokenizer))
        merged = PeftModel.from_pretrained(base, tmp).merge_and_unload()
    update_vinaforge_meta(merged, **meta)
    merged.config.use_cache = True
    return save_model(merged, loaded.tokenizer, out_dir, merge_lora=False)


def answer_prompts(model, tokenizer, prompts: list[str], *, max_new_tokens: int = 48,
                   system: str | None = None) -> list[str]:
    """Greedy replies to single-turn prompts through :class:`vinaforge.generate.local.LocalBackend`."""
    from vinaforge.generate import SamplingParams
    from vinaforge.generate.local import LocalBackend

    side = getattr(tokenizer, "padding_side", "right")
    was_training = model.training
    use_cache = getattr(model.config, "use_cache", True)
    model.config.use_cache = True
    try:
        backend = LocalBackend(model, tokenizer, batch_size=8)
        msgs = [([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": p}]
                for p in prompts]  # fmt: skip
        out = backend.generate(msgs, SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0))
    finally:
        tokenizer.padding_side = side
        model.config.use_cache = use_cache
        model.train(was_training)
    return [(c.text or "").strip() if c.ok else f"(error: {c.error})" for c in out]


def _cell(text: str, limit: int = 160) -> str:
    import html

    text = " ".join(text.split())
    text = text[:limit] + ("…" if len(text) > limit else "")
    return html.escape(text).replace("|", "\\|") or "(empty)"


def answers_table(prompts: list[str], before: list[str], after: list[str], labels=("before", "after")) -> str:
    """The report card's Markdown table of the same prompts answered before and after tuning."""
    rows = [f"| prompt | {labels[0]} | {labels[1]} |", "|---|---|---|"]
    rows += [f"| {_cell(p)} | {_cell(b)} | {_cell(a)} |" for p, b, a in zip(prompts, before, after, strict=True)]
    return "\n".join(rows)


def plot_history(history: list[dict], path: Path, *, title: str, keys: tuple[str, ...] = ("loss", "eval_loss")) -> Path | None:
    """Curves of ``keys`` against the step from a trainer's ``state.log_history``."""
    series = {k: [(h["step"], h[k]) for h in history if k in h and "step" in h] for k in keys}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for k, pts in series.items():
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, marker="o" if len(xs) < 20 else None, ms=3, label=k)
    ax.set_xlabel("optimizer step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path
