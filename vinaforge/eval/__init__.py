"""Evaluation: Vietnamese benchmarks on lm-evaluation-harness, bits per byte, translation, reports.

The benchmarks run through lm-evaluation-harness as a library (``harness.py``); the task
definitions shipped in ``tasks/`` also run under plain ``lm_eval --include_path``. Reading the
local benchmark files, Vietnamese prompt templates, VMLU's subject categories and the
comparison reports are hand-written: they are specific to the Vietnamese benchmarks. Text
generation (translation, the LLM judge in ``judge/``) goes through ``vinaforge.generate``.
"""
