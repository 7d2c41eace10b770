"""Post-training on TRL: instruction tuning and preference alignment, one flat module per method.

- :mod:`~vinaforge.tune.sft` — ``SFTTrainer`` in full, LoRA, QLoRA (bitsandbytes NF4) and DoRA
  modes; assistant-only loss through the chat template's ``{% generation %}`` markers; padding-free
  packing; NEFTune; weighted dataset mixtures (stage ``sft``);
- :mod:`~vinaforge.tune.dpo` — ``DPOTrainer`` with TRL's ``loss_type`` list (sigmoid, ipo, hinge,
  robust, apo_zero, sigmoid+sft = RPO) and a reference model that avoids TRL 1.16's traps
  (stage ``dpo``);
- :mod:`~vinaforge.tune.orpo` — reference-free ORPO from ``trl.experimental.orpo`` (stage ``orpo``);
- :mod:`~vinaforge.tune.kto` — KTO on unpaired thumbs-up/down data (stage ``kto``);
- :mod:`~vinaforge.tune.self_preference` — SeaLLMs-style self-preference pairs: sample N replies
  with :mod:`vinaforge.generate`, judge them, keep best vs worst; resumable (stage
  ``self_preference``);
- :mod:`~vinaforge.tune.safety` — our own Vietnamese safety data (``resources/``).

Shared helpers, importable by other post-training modules (reward models and RL reuse them):

- :mod:`~vinaforge.tune.common` — :class:`~vinaforge.tune.common.ModelSettings` /
  :func:`~vinaforge.tune.common.load_model_for_training` (tokenizer + marked chat template + model
  in the asked mode + PEFT wrapper), :class:`~vinaforge.tune.common.TrainSettings` →
  TRL config kwargs, saving, loss curves, before/after answer tables;
- :mod:`~vinaforge.tune.data` — reading and mixing conversation / preference sources with
  weights, eval splits, length limits, contamination checks; rejected records kept with reasons;
- :mod:`~vinaforge.tune.preference` — held-out log-prob margins and reward accuracy, the same
  measurement for every preference method.

Torch, transformers and TRL are imported inside functions: importing this package is cheap.
"""
