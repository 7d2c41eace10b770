"""The data factory: translate English instruction sets, synthesize Vietnamese data, decontaminate.

- :mod:`~vinaforge.factory.translate`: English chat data → Vietnamese, with protected spans,
  per-record checks, a call cache and resumable shards (stage kind ``translate``);
- :mod:`~vinaforge.factory.synth`: self-instruct / Evol-Instruct from our Vietnamese seed tasks,
  judge filtering, textbook-style rewriting of curated documents, diversity report (``synth``);
- :mod:`~vinaforge.factory.decontaminate`: syllable n-gram overlap with every benchmark vinaforge
  evaluates (``decontaminate``); :func:`~vinaforge.factory.decontaminate.decontaminate` is the
  one-call form used by SFT/CPT data preparation.

All generation goes through :mod:`vinaforge.generate` (local HF model or OpenAI-compatible
endpoint); large runs go through datatrove executors (:mod:`~vinaforge.factory.pipeline`).
Importing this package is cheap.
"""
