"""Direct preference optimisation (stage ``dpo``, ``vinaforge tune dpo``) on TRL's ``DPOTrainer``.

- ``loss_type`` is TRL's list: ``sigmoid`` (DPO), ``ipo``, ``hinge``, ``robust``, ``apo_zero``,
  ``["sigmoid", "sft"]`` (RPO), weighted by ``loss_weights``.
- The reference model avoids TRL 1.16's trap (an in-memory full model with no ``ref_model`` makes
  TRL reload the reference from an empty ``_name_or_path`` and fail): under LoRA/QLoRA/DoRA the
  reference is the model with its adapter disabled; in full mode it is ``ref_model`` if given, else
  a second load of ``model``'s folder, unless ``precompute_ref_log_probs`` computes the reference
  log-probs once before training and keeps no reference in memory — the setting that halves DPO's
  memory, the anchors' top complaint.
- Held-out reward accuracy and margins: :mod:`vinaforge.tune.preference`.

Hand-written glue; the loss and loop are TRL's.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from vinaforge.stage import StageContext, StageResult
from vinaforge.tune.common import ModelSource
from vinaforge.tune.preference import PreferenceFields

RESUMABLE = True
LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")  # fmt: skip


class Config(PreferenceFields):
    loss_type: list[str] = Field(["sigmoid"], description="TRL loss list; ['sigmoid', 'sft'] is RPO")
    loss_weights: list[float] | None = None
    precompute_ref_log_probs: bool = Field(False, description="reference log-probs once up front; no reference in memory")
    ref_model: ModelSource | None = Field(None, description="full mode: the reference folder (default: model)")

    @field_validator("loss_type")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("loss_type is empty; e.g. ['sigmoid']")
        for v in value:
            if v not in LOSS_TYPES:
                raise ValueError(f"unknown DPO loss_type {v!r}; known: {', '.join(LOSS_TYPES)}")
        return value


def make_trainer(cfg: Config, loaded, train, eval_items, out_dir, seed):
    from trl import DPOConfig, DPOTrainer

    from vinaforge.model.load import load_causal_lm
    from vinaforge.tune.data import preference_rows, to_dataset

    if cfg.loss_weights is not None and len(cfg.loss_weights) != len(cfg.loss_type):
        raise ValueError(f"loss_weights has {len(cfg.loss_weights)} values for {len(cfg.loss_type)} loss types")
    args = DPOConfig(
        **cfg.training.trl_kwargs(out_dir, seed=seed, has_eval=bool(eval_items)),
        beta=cfg.beta, loss_type=list(cfg.loss_type), loss_weights=cfg.loss_weights,
        precompute_ref_log_probs=cfg.precompute_ref_log_probs, dataset_num_proc=None,
    )  # fmt: skip
    ref = None
    if not loaded.is_peft and not cfg.precompute_ref_log_probs:
        ref = load_causal_lm(str(cfg.ref_model or cfg.model), dtype=str(loaded.model.dtype).replace("torch.", ""))
        if ref.get_input_embeddings().weight.shape[0] < len(loaded.tokenizer):
            ref.resize_token_embeddings(len(loaded.tokenizer), mean_resizing=True)
    return DPOTrainer(
        model=loaded.model, ref_model=ref, args=args, train_dataset=to_dataset(preference_rows(train)),
        eval_dataset=to_dataset(preference_rows(eval_items)) if eval_items else None,
        processing_class=loaded.tokenizer,
    )  # fmt: skip


def train_dpo(cfg: Config, out_dir, *, seed: int = 0) -> dict:
    from vinaforge.tune.preference import train_preference

    return train_preference("dpo", cfg, out_dir, make_trainer, seed=seed)


def run(config: Config, ctx: StageContext) -> StageResult:
    from vinaforge.tune.preference import stage_result

    summary = train_dpo(config, ctx.work_dir, seed=ctx.seed)
    return stage_result("dpo", f"Preference alignment: DPO (loss {'+'.join(config.loss_type)})", summary, ctx.work_dir)
