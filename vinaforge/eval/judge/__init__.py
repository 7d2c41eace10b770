"""LLM-as-judge: a Vietnamese open-question set, pairwise judging with position swap, Elo and
Bradley–Terry ratings with bootstrap confidence intervals.

The method follows MT-bench / Chatbot Arena (FastChat): pairwise comparison by a strong judge,
each pair judged in both orders (a win counts only when both orders agree), online Elo and a
Bradley–Terry maximum-likelihood fit. FastChat itself is not a dependency (it is a large web app
and pins old libraries), so the small pieces we need are written here: the Vietnamese question
set and judge prompt, resumable answer/judgment files, and the rating code (numpy).
Model inference goes through ``vinaforge.generate`` (a local HF model, or any OpenAI-compatible
endpoint through the official ``openai`` client).

Modules: ``questions`` (question set), ``prompts`` (judge prompt, verdict parsing),
``backends`` (model specs → ``vinaforge.generate`` backends), ``answers`` (answer generation),
``judging`` (pairwise judgments), ``ratings`` (Elo, Bradley–Terry, bootstrap), ``report``
(ratings.json, leaderboard, plot, report-card section), ``pipeline`` (all steps from one config),
``stage`` (the ``judge`` recipe stage), ``cli`` (``vinaforge eval judge``). Importing this
package is cheap: torch and transformers are imported only when a local model is loaded.
"""

from __future__ import annotations

from pathlib import Path

QUESTIONS_FILE = Path(__file__).with_name("questions_vi.jsonl")
"""The shipped Vietnamese question set (96 questions, 8 categories)."""
