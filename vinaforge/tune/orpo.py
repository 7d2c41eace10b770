"""Odds-ratio preference optimisation (stage ``orpo``) on ``trl.experimental.orpo``.

Reference-free (no second model, no precomputed log-probs), the way VinaSmol uses it: one SFT
term on the chosen reply plus ``beta`` times the log odds-ratio of chosen over rejected. Held-out
reward accuracy and margins are measured like every other method's
(:mod:`vinaforge.tune.preference`). Hand-written glue; the trainer is TRL's.
"""

from __future__ import annotations

from vinaforge.stage import StageContext, StageResult
from vinaforge.tune.preference import PreferenceFields

RESUMABLE = True


class Config(PreferenceFields):
    pass


def make_trainer(cfg: Config, loaded, train, eval_items, out_dir, seed):
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    from vinaforge.tune.data import preference_rows, to_dataset

    kwargs = cfg.training.trl_kwargs(out_dir, seed=seed, has_eval=bool(eval_items))
    args = ORPOConfig(**kwargs, beta=cfg.beta, max_completion_length=max(8, cfg.training.max_length // 2),
                      dataset_num_proc=None)  # fmt: skip
    return ORPOTrainer(
        model=loaded.model, args=args, train_dataset=to_dataset(preference_rows(train)),
        eval_dataset=to_dataset(preference_rows(eval_items)) if eval_items else None,
        processing_class=loaded.tokenizer,
    )  # fmt: skip


def train_orpo(cfg: Config, out_dir, *, seed: int = 0) -> dict:
    from vinaforge.tune.preference import train_preference

    return train_preference("orpo", cfg, out_dir, make_trainer, seed=seed)


def run(config: Config, ctx: StageContext) -> StageResult:
    from vinaforge.tune.preference import stage_result

    summary = train_orpo(config, ctx.work_dir, seed=ctx.seed)
    return stage_result("orpo", "Preference alignment: ORPO (reference-free)", summary, ctx.work_dir)
