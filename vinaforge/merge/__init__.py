"""Merging: mergekit methods, chat vectors onto a Vietnamese base, vocabulary-aware merges, LoRA.

- :mod:`vinaforge.merge.mergekit_run` — any mergekit method through its Python API, with
  :mod:`vinaforge.merge.checks` first and an atomic output folder;
- :mod:`vinaforge.merge.chat_vector` — θ_vi + λ·(θ_instruct − θ_base) with per-group λ;
- :mod:`vinaforge.merge.lora` — PEFT ``merge_and_unload`` and ``add_weighted_adapter``;
- :mod:`vinaforge.merge.sweep` — a grid of weights/λs scored by the eval stage, best kept;
- :mod:`vinaforge.merge.stage` / :mod:`vinaforge.merge.cli` — the ``merge`` stage and command.
"""
