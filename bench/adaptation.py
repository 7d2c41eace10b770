"""The seeds' adaptation claims, measured on vinaforge's own English base (issue 20, part 3).

Each row is a variant against its control, both continued-pretrained from the same English base
(``recipes/seeds/base-en.yaml``) on the same Vietnamese mixture (Wikipedia + news) for the same
number of training tokens, over several seeds (mean ± sd). Scored on text no stage trains on:

- Vietnamese bits per byte on the UD Vietnamese VTB dev sentences;
- English bits per byte on the base's held-out 2% of English (forgetting);
- the tokenizer's tokens per Vietnamese syllable (the inference cost of extension).

Rows (figures in docs/benchmarks.md):

| row | variant | control |
|---|---|---|
| extension | +N Vietnamese tokens (VBD's BPE extension), mean init | the base vocabulary |
| init | mean init | random init; HF's mean_resizing; zero |
| frozen | new embeddings only for a quarter of the tokens, then all | all from the start |
| curriculum | high-quality tier alone for half the tokens, then 30/70 high/low | the same 65/35 share, shuffled |
| hybrid | 25% instructions (prompts masked) in the CPT mixture, then SFT | no instructions in CPT, then the same SFT |
| turns | SFT with loss on every assistant turn of 3-turn conversations | loss on the last turn only |
| preference | the same SFT, then DPO; ORPO in place of the SFT | SFT only |
| reward | a reward model trained on preference pairs | its untrained head |
| merge | linear (0.5/0.5) and TIES (over the adapted model) merges of two SFTs | each SFT |

The hybrid row's figure is held-out assistant loss (nats per assistant token, vicuna template, on
200 held-out vi_alpaca conversations), after CPT and after the same 20-step SFT.

The turns row starts both arms from the same adapted model (the extension row's extended, mean-init
arm) and gives them the same 20-step SFT on the same packed rows (equal tokens, equal FLOPs); only
the loss mask differs (``loss_turns: every`` or ``last``). There is no multi-turn Vietnamese
instruction set in the data, so its conversations are three short vi_alpaca pairs in a row
(``multiturn_files``): the turns are unrelated, which tests the mask, not dialogue skills. It scores
held-out assistant loss on every turn and on the last turn alone.

The preference and reward rows need pairs whose rejected reply is a plausible error, not another
language. There are no Vietnamese preference data in ../shared/data, so ``preference_files`` makes
them: the chosen reply is the reference reply, the rejected one the reference reply of another
prompt of about the same length (fluent Vietnamese, wrong for this prompt). Held-out pairs come
from the 200 held-out prompts that no stage trains on. Figures: held-out preference accuracy (the
policy's summed log-prob of the chosen reply above the rejected one; for the reward model, its
score) and held-out assistant loss. Every arm of the two rows starts from the extension row's
adapted model; the SFT-only control is measured in the same run as the DPO arm (its "before").

The merge row merges the two SFTs of the same adapted model that the other chat rows made (the
preference row's single-turn SFT, the turns row's every-turn SFT on 3-turn conversations), as
VinaSmol merges finetunes on separate data, and scores every input and merge on both held-out sets.

The quality tiers are the curation stage's (``vinaforge data curate``: LID, Gopher/FineWeb rules,
dedup, then the top half by quality score per language is ``high``) on Wikipedia, news and legal
text, run once in the shared prep recipe, as ``recipes/seeds/seallm.yaml`` does.

Equal FLOPs: the extended vocabulary makes the LM head (most of a small model's FLOPs) larger, so
the control arm of ``extension`` gets proportionally more tokens (``--equal flops``, the default)
and the table prints each arm's tokens and training FLOPs (6 × parameters × tokens).

Every arm is an ordinary vinaforge recipe written under ``bench/out/adaptation/recipes`` and run by
the engine, so a finished arm is reused when the benchmark is run again.

    .venv/bin/python bench/adaptation.py --scale cpu                     # every row, 3 seeds
    .venv/bin/python bench/adaptation.py --rows extension --seeds 3 --tokens 80000
    .venv/bin/python bench/adaptation.py --rows turns,reward,preference    # the chat rows
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "adaptation"
SHARED = "../shared/data"
VTB_DEV = f"{SHARED}/benchmarks/ud_vietnamese_vtb/vi_vtb-ud-dev.conllu"
SCALES = {"cpu": {"tokens": 80_000, "seq_len": 256, "micro_batch_size": 8, "threads": 2},
          "gpu": {"tokens": 20_000_000, "seq_len": 1024, "micro_batch_size": 32, "threads": None}}  # fmt: skip

# row -> arm -> (extend the vocabulary?, init, phases as fractions of the arm's tokens[, data])
# data (default "mix"): which CPT data the arm trains on, a key of DATA below.
ROWS: dict[str, dict[str, tuple]] = {
    "extension": {"extended (mean)": (True, "mean", [("all", 1.0)]), "base vocabulary": (False, "mean", [("all", 1.0)])},
    "init": {
        "mean": (True, "mean", [("all", 1.0)]),
        "random": (True, "random", [("all", 1.0)]),
        "mean_resizing": (True, "mean_resizing", [("all", 1.0)]),
        "zero": (True, "zero", [("all", 1.0)]),
    },
    "frozen": {
        "new rows first": (True, "mean", [("new_embeddings", 0.25), ("all", 0.75)]),
        "all from the start": (True, "mean", [("all", 1.0)]),
    },
    # SeaLLMs: the high-quality tier alone first, the low tier joins for the second half; the
    # control draws the same share of each tier over the run, shuffled from the first step.
    "curriculum": {
        "high -> low": (True, "mean", [("all", 1.0)], "tiers-curriculum"),
        "shuffled": (True, "mean", [("all", 1.0)], "tiers-shuffled"),
    },
    # VBD, SeaLLMs: instructions (prompts masked) in the CPT mixture; both arms then get the same
    # short SFT, and the row compares held-out assistant loss after CPT and after SFT.
    "hybrid": {
        "instructions in CPT": (True, "mean", [("all", 1.0)], "mix-instruct"),
        "none": (True, "mean", [("all", 1.0)], "mix"),
    },
}
CHAT_ROWS = {"hybrid"}  # rows whose arms go on to SFT and score held-out assistant loss
# SFT rows: arm -> loss_turns, every arm fine-tuning the extension row's first arm
SFT_ROWS: dict[str, dict[str, str]] = {"turns": {"every turn": "every", "last turn only": "last"}}
TURNS_PER_CONVERSATION = 3
MAX_PAIR_CHARS = 150  # three pairs of at most this many characters fit the cpu scale's 256 tokens
MULTITURN_HELDOUT = 100  # conversations
# preference rows: one run per seed holds every arm (arm -> which figure of the run)
PREF_ROWS: dict[str, tuple[str, ...]] = {"preference": ("adapted (no SFT)", "SFT only", "SFT + DPO", "ORPO instead of SFT"),
                                         "reward": ("untrained head", "trained")}  # fmt: skip
PREF_TRAIN_PAIRS = 1000
PREF_STEPS = 20  # DPO / ORPO steps, as many as the SFT's
REWARD_STEPS, REWARD_LR = 60, 3e-4  # defaults of --reward-steps / --reward-lr
MERGE_ARMS = ("single-turn SFT", "3-turn SFT", "linear merge", "TIES merge")
# self-preference (SeaLLMs): the SFT model samples SELF_PREF_N replies to each of SELF_PREF_PROMPTS
# training prompts, the rules judge ranks them, DPO on best vs worst; against the same SFT alone
SELF_PREF_ARMS = ("SFT only", "SFT + self-preference DPO")
SELF_PREF_PROMPTS, SELF_PREF_N, SELF_PREF_TOKENS = 160, 4, 48
HELDOUT_PROMPTS = "recipes/seeds/data/vi_heldout_prompts.jsonl"  # 50 prompts no stage trains on
# chat vector (VinaSmol's instruct residual): adapted + λ·(the base's own SFT − the base), no SFT of
# the adapted model; against the adapted model (its input) and the SFT of the adapted model
CHAT_VECTOR_ARMS = {"adapted (no SFT)": "@adapted/model", "chat vector λ=0.5": "@cv_half/model",
                    "chat vector λ=1": "@cv_one/model", "SFT of the adapted model": "@sft/final"}  # fmt: skip
ALL_ROWS = [*ROWS, *SFT_ROWS, *PREF_ROWS, "merge", "self-preference", "chat-vector"]
SFT_STEPS = 20  # TRL's SFT step costs ~6.8 s on 2 cores at batch 8 x 256 tokens

_TIERS = {"vi_high": {"paths": ["@prep/vi_high"]}, "vi_low": {"paths": ["@prep/vi_low"]}}
# source specs and mixture of each CPT data choice; both tier arms see 65% high, 35% low overall
DATA: dict[str, tuple[dict, object]] = {
    "mix": (
        {"vi_wiki": {"paths": [f"{SHARED}/vi_text/viwiki_undertheseanlp.jsonl.gz"], "max_tokens": 3_000_000},
         "vi_news": {"paths": [f"{SHARED}/vi_text/news_dantri_unc_undertheseanlp.jsonl.gz"]}},
        {"vi_wiki": 0.6, "vi_news": 0.4},
    ),  # fmt: skip
    "tiers-curriculum": (_TIERS, [{"until": 0.5, "weights": {"vi_high": 1.0}},
                                  {"weights": {"vi_high": 0.3, "vi_low": 0.7}}]),  # fmt: skip
    "tiers-shuffled": (_TIERS, {"vi_high": 0.65, "vi_low": 0.35}),
}
DATA["mix-instruct"] = (
    {**DATA["mix"][0], "instruct": {"paths": ["@prep/sft_train.jsonl"], "kind": "instruct", "chat_template": "vicuna"}},
    {"vi_wiki": 0.45, "vi_news": 0.3, "instruct": 0.25},
)
# the Vietnamese text the curation stage splits into quality tiers (as seallm.yaml does)
TIER_INPUTS = [f"{SHARED}/vi_text/viwiki_undertheseanlp.jsonl.gz",
               f"{SHARED}/vi_text/news_dantri_unc_undertheseanlp.jsonl.gz",
               f"{SHARED}/vi_text/legal_vlc_undertheseanlp.jsonl.gz"]  # fmt: skip


def _arm(row: str, arm: str) -> tuple[bool, str, list[tuple[str, float]], str]:
    extend, init, phases, *data = ROWS[row][arm]
    return extend, init, phases, (data[0] if data else "mix")


def prep_recipe(scale: str) -> Path:
    """The base (run once by base-en.yaml) and the extended tokenizer, shared by every arm."""
    recipe = {
        "name": "adapt-prep",
        "run_dir": str(OUT / "runs"),
        "stages": {
            "base": {"kind": "recipe", "recipe": "recipes/seeds/base-en.yaml", "sets": [f"scale={scale}"],
                     "outputs": {"model": "pretrain/final", "en_heldout": "english/heldout"}},  # fmt: skip
            "tokenizer": {
                "base": "mistral-v0.1",
                "corpus": [f"{SHARED}/vi_text/viwiki_undertheseanlp.jsonl.gz",
                           f"{SHARED}/vi_text/news_dantri_unc_undertheseanlp.jsonl.gz"],  # fmt: skip
                "max_new_tokens": 4096,
                "sample_bytes": 20_000_000,
            },
            # quality tiers for the curriculum row only (a stage no other arm reads)
            "curate": {"inputs": TIER_INPUTS, "limit": 6000, "workers": 2},
            # instructions for the hybrid row, and 200 held-out conversations for its assistant loss
            "split": {"inputs": [f"{SHARED}/instruct/vi_alpaca_reduced.jsonl.gz"], "heldout_fraction": 0.01,
                      "heldout_max": 200},  # fmt: skip
        },
    }
    return _write(recipe)


def arm_recipe(row: str, arm: str, seed: int, tokens: int, scale: dict, prep: Path) -> Path:
    extend, init, phases, data = _arm(row, arm)
    sources, mixture = DATA[data]
    prep_outputs = {"base": "base/model", "tokenizer": "tokenizer/tokenizer", "en_heldout": "base/en_heldout"}
    if data.startswith("tiers"):
        prep_outputs |= {"vi_high": "curate/kept/high/vi", "vi_low": "curate/kept/low/vi"}
    chat = row in CHAT_ROWS
    if chat:
        prep_outputs |= {"sft_train.jsonl": "split/train.jsonl", "sft_heldout.jsonl": "split/heldout.jsonl"}
    model = {"base": "@prep/base", "init": init, "seed": seed}
    if extend:
        model["tokenizer"] = "@prep/tokenizer"
    recipe = {
        "name": arm_name(extend, init, phases, seed, data, sft=chat),
        "run_dir": str(OUT / "runs"),
        "seed": seed,
        "stages": {
            "prep": {"kind": "recipe", "recipe": str(prep), "outputs": prep_outputs},
            "model": model,
            "cpt": {
                "model": "@model/model",
                "data": {"sources": sources, "mixture": mixture},
                "phases": [
                    {"name": f"{kind}-{i}", "trainable": kind, "tokens": max(1, int(tokens * frac)), "lr": 1e-3,
                     "schedule": "wsd", "warmup_steps": 5}  # fmt: skip
                    for i, (kind, frac) in enumerate(phases)
                ],
                "seq_len": scale["seq_len"],
                "micro_batch_size": scale["micro_batch_size"],
                "eval_every": 10_000,
                "save_every": 10_000,
                "cpu_threads": scale["threads"],
                "seed": seed,
            },
            "eval": {
                "model": "@cpt/final",
                "heldout_sets": {"vi": [VTB_DEV], "en": ["@prep/en_heldout"]},
                "fertility": [VTB_DEV],
                "max_length": scale["seq_len"],
                "batch_size": 8,
            },
        },
    }
    if chat:
        recipe["stages"] |= chat_stages(scale)
    return _write(recipe)


def chat_stages(
    scale: dict, model: str = "@cpt/final", train: str = "@prep/sft_train.jsonl",
    heldout: str = "@prep/sft_heldout.jsonl", loss_turns: str = "every",
) -> dict:  # fmt: skip
    """The same SFT for every arm of a chat row, and held-out assistant loss after CPT and after SFT
    (one template, vicuna, for both, so the two score the same tokens)."""
    chat = {"conversations": [heldout], "loss_template": "vicuna", "max_length": scale["seq_len"]}
    return {
        "eval_cpt_chat": {"kind": "eval", "model": model, "chat": chat, "max_length": scale["seq_len"]},
        "sft": {
            "model": model,
            "mode": "full",
            "chat_template": "vicuna",
            "loss_turns": loss_turns,
            "data": {"sources": {"alpaca": {"paths": [train]}}, "eval_fraction": 0.0},
            "training": {"max_steps": SFT_STEPS, "batch_size": 8, "learning_rate": 1e-3, "warmup_steps": 0.05,
                         "max_length": scale["seq_len"], "threads": scale["threads"], "logging_steps": 5,
                         "save_steps": SFT_STEPS},  # fmt: skip
            "safety_eval": False,
            "prompts": [],
        },
        "eval_sft_chat": {"kind": "eval", "model": "@sft/final", "chat": chat, "max_length": scale["seq_len"]},
    }


def _adapted(seed: int, tokens: int, scale: dict, prep: Path) -> dict:
    """The stage that brings in the extension row's "extended (mean)" CPT model of this seed (run,
    or reused, as a sub-recipe): the start of every SFT, preference and merge arm."""
    base_arm = arm_recipe("extension", next(iter(ROWS["extension"])), seed, tokens, scale, prep)
    return {"kind": "recipe", "recipe": str(base_arm), "outputs": {"model": "cpt/final"}}


def _prep_pairs(prep: Path, split: str) -> list[list[dict]]:
    """The single-turn conversations (user, assistant) of the prep recipe's ``split`` output."""
    from vinaforge.chat import read_records
    from vinaforge.recipe import load_recipe
    from vinaforge.runner import run_recipe

    path = run_recipe(load_recipe(prep)) / "split" / f"{split}.jsonl"
    return [c.messages for c in read_records(path).kept if len(c.messages) == 2]


def sft_recipe(row: str, arm: str, seed: int, tokens: int, scale: dict, prep: Path, data: tuple[Path, Path]) -> Path:
    """An SFT row's arm: the extension row's adapted model (run, or reused, as a sub-recipe), the
    row's SFT on ``data`` (train, held-out), then the same evaluations as a CPT arm."""
    train, heldout = (str(p) for p in data)
    stages = {
        "prep": {"kind": "recipe", "recipe": str(prep), "outputs": {"en_heldout": "base/en_heldout"}},
        "adapted": _adapted(seed, tokens, scale, prep),
        **chat_stages(scale, "@adapted/model", train, heldout, SFT_ROWS[row][arm]),
        "eval": {"model": "@sft/final", "heldout_sets": {"vi": [VTB_DEV], "en": ["@prep/en_heldout"]},
                 "fertility": [VTB_DEV], "max_length": scale["seq_len"], "batch_size": 8},  # fmt: skip
    }
    name = f"adapt-{row}-{_slug(SFT_ROWS[row][arm])}-s{seed}"
    return _write({"name": name, "run_dir": str(OUT / "runs"), "seed": seed, "stages": stages})


def multiturn_files(prep: Path) -> tuple[Path, Path]:
    """Multi-turn conversations for the turns row: the prep's training pairs with at most
    ``MAX_PAIR_CHARS`` characters, ``TURNS_PER_CONVERSATION`` in a row per conversation; the first
    ``MULTITURN_HELDOUT`` are held out. Written once (atomically) under ``OUT/multiturn``."""
    from vinaforge.io import atomic_write_text

    folder = OUT / "multiturn"
    train, heldout = folder / "train.jsonl", folder / "heldout.jsonl"
    if train.is_file() and heldout.is_file():
        return train, heldout
    pairs = [p for p in _prep_pairs(prep, "train") if sum(len(m["content"]) for m in p) <= MAX_PAIR_CHARS]
    n = TURNS_PER_CONVERSATION
    convs = [[m for pair in pairs[i : i + n] for m in pair] for i in range(0, len(pairs) - n + 1, n)]
    lines = [json.dumps({"messages": c}, ensure_ascii=False) + "\n" for c in convs]
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(heldout, "".join(lines[:MULTITURN_HELDOUT]))
    atomic_write_text(train, "".join(lines[MULTITURN_HELDOUT:]))
    return train, heldout


def preference_files(prep: Path) -> tuple[Path, Path]:
    """(train, held-out) preference pairs, written once under ``OUT/preference``: for each prompt,
    chosen = its reference reply, rejected = the reference reply of the prompt next to it in reply
    length, within the same split (the prep's first ``PREF_TRAIN_PAIRS`` training records, or its
    held-out records)."""
    from vinaforge.io import atomic_write_text

    folder = OUT / "preference"
    train, heldout = folder / "train.jsonl", folder / "heldout.jsonl"
    if train.is_file() and heldout.is_file():
        return train, heldout
    folder.mkdir(parents=True, exist_ok=True)
    for name, path, limit in (("train", train, PREF_TRAIN_PAIRS), ("heldout", heldout, None)):
        convs = _prep_pairs(prep, name)[:limit]
        order = sorted(range(len(convs)), key=lambda i: len(convs[i][1]["content"]))
        lines = []
        for k, i in enumerate(order):
            other = convs[order[k + 1 if k + 1 < len(order) else k - 1]][1]
            if other["content"] != convs[i][1]["content"]:
                rec = {"prompt": convs[i][:1], "chosen": convs[i][1:], "rejected": [other]}
                lines.append(json.dumps(rec, ensure_ascii=False) + "\n")
        atomic_write_text(path, "".join(lines))
    return train, heldout


def pref_recipe(row: str, seed: int, tokens: int, scale: dict, prep: Path, data: tuple[Path, Path],
                reward: tuple[int, float] = (REWARD_STEPS, REWARD_LR)) -> Path:
    """One run per seed holds every arm of a preference row (see ``PREF_ROWS``); ``reward`` is
    the reward model's (steps, learning rate), in the run's name when not the default."""
    train, heldout = (str(p) for p in data)
    stages: dict = {"adapted": _adapted(seed, tokens, scale, prep)}
    training = {"max_steps": PREF_STEPS, "batch_size": 8, "warmup_steps": 0.05, "max_length": scale["seq_len"],
                "threads": scale["threads"], "logging_steps": 5, "save_steps": PREF_STEPS}  # fmt: skip
    if row == "reward":
        stages["reward"] = {"model": "@adapted/model", "mode": "full", "chat_template": "vicuna", "data": [train],
                            "eval_data": [heldout],
                            "training": {**training, "max_steps": reward[0], "save_steps": reward[0],
                                         "learning_rate": reward[1]}}  # fmt: skip
    else:
        stages["prep"] = {"kind": "recipe", "recipe": str(prep),
                          "outputs": {"sft_train.jsonl": "split/train.jsonl", "sft_heldout.jsonl": "split/heldout.jsonl"}}  # fmt: skip
        chat = chat_stages(scale, "@adapted/model")
        stages |= chat
        pairs = {"sources": {"pairs": {"paths": [train]}}, "eval_paths": [heldout]}
        common = {"mode": "full", "chat_template": "vicuna", "data": pairs, "beta": 0.1, "prompts": [],
                  "safety_eval": False}  # fmt: skip
        stages["dpo"] = {"model": "@sft/final", **common, "training": {**training, "learning_rate": 1e-4}}
        stages["orpo"] = {"model": "@adapted/model", **common, "training": {**training, "learning_rate": 1e-3}}
        for method in ("dpo", "orpo"):
            stages[f"eval_{method}_chat"] = {**chat["eval_sft_chat"], "model": f"@{method}/final"}
    tag = f"-{_slug(f'{reward[0]}-{reward[1]:g}')}" if row == "reward" and reward != (REWARD_STEPS, REWARD_LR) else ""
    return _write({"name": f"adapt-{row}{tag}-s{seed}", "run_dir": str(OUT / "runs"), "seed": seed, "stages": stages})


def merge_recipe(seed: int, tokens: int, scale: dict, prep: Path, pref_data: tuple[Path, Path],
                 turn_data: tuple[Path, Path]) -> Path:
    """One run per seed: the two SFTs (their runs reused), two merges, and every model scored on the
    single-turn and the 3-turn held-out conversations, with Vietnamese and English bpb."""
    turns_arm = sft_recipe("turns", "every turn", seed, tokens, scale, prep, turn_data)
    stages: dict = {
        "prep": {"kind": "recipe", "recipe": str(prep),
                 "outputs": {"sft_heldout.jsonl": "split/heldout.jsonl", "en_heldout": "base/en_heldout"}},
        "adapted": _adapted(seed, tokens, scale, prep),
        "single": {"kind": "recipe", "recipe": str(pref_recipe("preference", seed, tokens, scale, prep, pref_data)),
                   "outputs": {"model": "sft/final"}},
        "multi": {"kind": "recipe", "recipe": str(turns_arm), "outputs": {"model": "sft/final"}},
        "linear": {"kind": "merge", "merge_method": "linear", "dtype": "float32", "tokenizer": {"source": "@single/model"},
                   "models": [{"model": "@single/model", "parameters": {"weight": 0.5}},
                              {"model": "@multi/model", "parameters": {"weight": 0.5}}]},
        "ties": {"kind": "merge", "merge_method": "ties", "base_model": "@adapted/model", "dtype": "float32",
                 "tokenizer": {"source": "@single/model"},
                 "models": [{"model": "@single/model", "parameters": {"weight": 0.5, "density": 0.5}},
                            {"model": "@multi/model", "parameters": {"weight": 0.5, "density": 0.5}}]},
    }  # fmt: skip
    for key, model in zip(MERGE_ARMS, ("@single/model", "@multi/model", "@linear/model", "@ties/model"), strict=True):
        slug = _slug(key)
        for held, convs in (("single", "@prep/sft_heldout.jsonl"), ("multi", str(turn_data[1]))):
            stages[f"eval_{slug}_{held}"] = _chat_eval(model, scale, convs, bpb=held == "single")
    return _write({"name": f"adapt-merge-s{seed}", "run_dir": str(OUT / "runs"), "seed": seed, "stages": stages})


def _chat_eval(model: str, scale: dict, convs: str = "@prep/sft_heldout.jsonl", answers: bool = False,
               bpb: bool = False) -> dict:  # fmt: skip
    """An eval stage: held-out assistant loss (vicuna), optionally greedy answers to the held-out
    prompts and Vietnamese / English bpb."""
    chat: dict = {"conversations": [convs], "loss_template": "vicuna", "max_length": scale["seq_len"]}
    if answers:
        chat |= {"prompts": [HELDOUT_PROMPTS], "answer_template": "vicuna", "max_new_tokens": SELF_PREF_TOKENS}
    stage = {"kind": "eval", "model": model, "chat": chat, "max_length": scale["seq_len"], "batch_size": 8}
    if bpb:
        stage["heldout_sets"] = {"vi": [VTB_DEV], "en": ["@prep/en_heldout"]}
    return stage


def self_pref_recipe(seed: int, tokens: int, scale: dict, prep: Path, pref_data: tuple[Path, Path]) -> Path:
    """One run per seed: the preference row's SFT, self-preference pairs from it (rules judge), DPO
    on them at the DPO arm's settings, and both models scored on held-out pairs, held-out
    conversations and greedy answers to held-out prompts."""
    train, heldout = (str(p) for p in pref_data)
    training = {"max_steps": PREF_STEPS, "batch_size": 8, "warmup_steps": 0.05, "max_length": scale["seq_len"],
                "threads": scale["threads"], "logging_steps": 5, "save_steps": PREF_STEPS, "learning_rate": 1e-4}  # fmt: skip
    stages: dict = {
        "prep": {"kind": "recipe", "recipe": str(prep),
                 "outputs": {"sft_train.jsonl": "split/train.jsonl", "sft_heldout.jsonl": "split/heldout.jsonl"}},
        "adapted": _adapted(seed, tokens, scale, prep),
        "sft": chat_stages(scale, "@adapted/model")["sft"],
        "self_preference": {"prompts": [train], "backend": {"kind": "local", "model": "@sft/final", "batch_size": 16},
                            "n": SELF_PREF_N, "limit": SELF_PREF_PROMPTS, "judge": {"kind": "rules"}, "margin": 1.0,
                            "sampling": {"temperature": 0.9, "top_p": 0.95, "max_new_tokens": SELF_PREF_TOKENS,
                                         "seed": seed}},
        "dpo_self": {"kind": "dpo", "model": "@sft/final", "mode": "full", "chat_template": "vicuna", "beta": 0.1,
                     "data": {"sources": {"pairs": {"paths": ["@self_preference/pairs.jsonl"]}}, "eval_paths": [heldout]},
                     "prompts": [], "safety_eval": False, "training": training},
        "eval_sft_chat": _chat_eval("@sft/final", scale, answers=True),
        "eval_dpo_self_chat": _chat_eval("@dpo_self/final", scale, answers=True),
    }  # fmt: skip
    return _write({"name": f"adapt-self-preference-s{seed}", "run_dir": str(OUT / "runs"), "seed": seed,
                   "stages": stages})  # fmt: skip


def chat_vector_recipe(seed: int, tokens: int, scale: dict, prep: Path) -> Path:
    """One run per seed: the base's own SFT ("instruct", base vocabulary, the same data and steps
    as the adapted model's SFT), two chat vectors onto the adapted model, the SFT of the adapted
    model, and every arm scored on the single-turn held-out conversations with vi / en bpb."""
    sft = chat_stages(scale, "@adapted/model")["sft"]
    stages: dict = {
        "prep": {"kind": "recipe", "recipe": str(prep),
                 "outputs": {"base": "base/model", "sft_train.jsonl": "split/train.jsonl",
                             "sft_heldout.jsonl": "split/heldout.jsonl", "en_heldout": "base/en_heldout"}},
        "adapted": _adapted(seed, tokens, scale, prep),
        "sft": sft,
        "instruct": {**sft, "kind": "sft", "model": "@prep/base"},
    }  # fmt: skip
    for name, lam in (("cv_half", 0.5), ("cv_one", 1.0)):
        stages[name] = {"kind": "merge", "chat_vector": {"vi_base": "@adapted/model", "instruct": "@instruct/final",
                                                         "base": "@prep/base", "lam": lam}}  # fmt: skip
    for model in CHAT_VECTOR_ARMS.values():
        stages[_eval_of(model)] = _chat_eval(model, scale, bpb=True)
    stages["eval_instruct"] = _chat_eval("@instruct/final", scale, bpb=True)
    return _write({"name": f"adapt-chat-vector-s{seed}", "run_dir": str(OUT / "runs"), "seed": seed, "stages": stages})


def _eval_of(model: str) -> str:
    """The eval stage's name for a model reference: ``@cv_one/model`` -> ``eval_cv_one``."""
    return f"eval_{model.removeprefix('@').split('/')[0]}"


def _results(run_dir: Path, stage: str) -> dict:
    return json.loads((run_dir / stage / "results.json").read_text())


def run_self_pref_arms(path: Path) -> dict[str, dict]:
    """Held-out preference accuracy, assistant loss, and the held-out answers' rules score (the
    judge's own figure, on prompts it never ranked) and distinct-2, per arm."""
    from vinaforge.recipe import load_recipe
    from vinaforge.runner import run_recipe
    from vinaforge.text.reply_score import reply_score

    started = time.time()
    run_dir = run_recipe(load_recipe(path))
    wall = round(time.time() - started, 1)
    summary = json.loads((run_dir / "dpo_self" / "summary.json").read_text())
    pairs = json.loads((run_dir / "self_preference" / "result.json").read_text())["metrics"]
    pref = summary["preference"]
    out = {}
    for arm, stage, when in zip(SELF_PREF_ARMS, ("eval_sft_chat", "eval_dpo_self_chat"), ("before", "after"), strict=True):
        chat = _results(run_dir, stage)["chat"]
        texts = [a["answer"] for a in chat["answers"]["answers"]]
        out[arm] = {"pref_acc": pref[f"prefers_chosen_{when}"], "margin": pref[f"margin_{when}"],
                    "asst": chat["assistant_loss"]["loss"], "rules": statistics.mean(reply_score(t) for t in texts),
                    "distinct_2": chat["answers"]["distinct_2"], "degenerate": chat["answers"]["degenerate_share"],
                    "n_pairs": pref["n"], "self_pairs": pairs["pairs"], "wall_s": wall}  # fmt: skip
    return out


def run_chat_vector_arms(path: Path) -> dict[str, dict]:
    from vinaforge.recipe import load_recipe
    from vinaforge.runner import run_recipe

    started = time.time()
    run_dir = run_recipe(load_recipe(path))
    wall = round(time.time() - started, 1)
    out = {}
    for arm, stage in [*((a, _eval_of(m)) for a, m in CHAT_VECTOR_ARMS.items()), ("the base's own SFT", "eval_instruct")]:
        res = _results(run_dir, stage)
        loss = res["chat"]["assistant_loss"]
        out[arm] = {"vi_bpb": res["bpb_sets"]["vi"]["bits_per_byte"], "en_bpb": res["bpb_sets"]["en"]["bits_per_byte"],
                    "asst_single": loss["loss"], "asst_bpb": loss["bits_per_byte"], "wall_s": wall}  # fmt: skip
    return out


def run_merge_arms(path: Path) -> dict[str, dict]:
    from vinaforge.recipe import load_recipe
    from vinaforge.runner import run_recipe

    started = time.time()
    run_dir = run_recipe(load_recipe(path))
    out = {}
    for arm in MERGE_ARMS:
        single, multi = (json.loads((run_dir / f"eval_{_slug(arm)}_{h}" / "results.json").read_text())
                         for h in ("single", "multi"))  # fmt: skip
        out[arm] = {"vi_bpb": single["bpb_sets"]["vi"]["bits_per_byte"], "en_bpb": single["bpb_sets"]["en"]["bits_per_byte"],
                    "asst_single": single["chat"]["assistant_loss"]["loss"],
                    "asst_multi": multi["chat"]["assistant_loss"]["loss"], "wall_s": round(time.time() - started, 1)}  # fmt: skip
    return out


def run_pref_arms(row: str, path: Path) -> dict[str, dict]:
    """The figures of every arm of a preference row's run: held-out preference accuracy and, for
    the policies, held-out assistant loss."""
    from vinaforge.recipe import load_recipe
    from vinaforge.runner import run_recipe

    started = time.time()
    run_dir = run_recipe(load_recipe(path))

    def read(stage: str) -> dict:
        return json.loads((run_dir / stage / ("summary.json" if "eval" not in stage else "results.json")).read_text())

    wall = round(time.time() - started, 1)
    if row == "reward":
        s = read("reward")
        return {"untrained head": {"pref_acc": s["eval_before"]["accuracy"], "n_pairs": s["eval_pairs"], "wall_s": wall},
                "trained": {"pref_acc": s["eval"]["accuracy"], "n_pairs": s["eval_pairs"], "wall_s": wall}}  # fmt: skip

    def loss(stage: str) -> float:
        return read(stage)["chat"]["assistant_loss"]["loss"]

    dpo, orpo = read("dpo")["preference"], read("orpo")["preference"]
    return {
        "adapted (no SFT)": {"pref_acc": orpo["prefers_chosen_before"], "margin": orpo["margin_before"],
                             "asst": loss("eval_cpt_chat"), "n_pairs": orpo["n"], "wall_s": wall},
        "SFT only": {"pref_acc": dpo["prefers_chosen_before"], "margin": dpo["margin_before"],
                     "asst": loss("eval_sft_chat"), "n_pairs": dpo["n"], "wall_s": wall},
        "SFT + DPO": {"pref_acc": dpo["prefers_chosen_after"], "margin": dpo["margin_after"],
                      "asst": loss("eval_dpo_chat"), "n_pairs": dpo["n"], "wall_s": wall},
        "ORPO instead of SFT": {"pref_acc": orpo["prefers_chosen_after"], "margin": orpo["margin_after"],
                                "asst": loss("eval_orpo_chat"), "n_pairs": orpo["n"], "wall_s": wall},
    }  # fmt: skip


def arm_name(
    extend: bool, init: str, phases: list[tuple[str, float]], seed: int, data: str = "mix", sft: bool = False
) -> str:
    """A run name from the arm's configuration, so that the same arm in two rows (the extended,
    mean-init, all-from-the-start arm is in all three) is trained once and reused."""
    vocab = "ext" if extend else "basevocab"
    steps = "-".join(f"{kind}{round(frac * 100)}" for kind, frac in phases)
    tail = ("" if data == "mix" else f"-{data}") + ("-sft" if sft else "")
    return f"adapt-{vocab}-{init}-{_slug(steps)}{tail}-s{seed}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _write(recipe: dict) -> Path:
    path = OUT / "recipes" / f"{recipe['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True))
    return path


def _params(model_dir: Path) -> tuple[int, int, int]:
    """(all parameters, vocabulary rows, hidden size) of a saved model, from its config and weights."""
    from safetensors import safe_open

    cfg = json.loads((model_dir / "config.json").read_text())
    total = 0
    for f in model_dir.glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            total += sum(_numel(st.get_slice(k).get_shape()) for k in st.keys())
    return total, cfg["vocab_size"], cfg["hidden_size"]


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def run_arm(path: Path) -> dict:
    from vinaforge.recipe import load_recipe
    from vinaforge.runner import run_recipe

    started = time.time()
    run_dir = run_recipe(load_recipe(path))
    res = json.loads((run_dir / "eval" / "results.json").read_text())
    stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
    cpt_run = run_dir  # an SFT row's arm reports the CPT of the adapted model it fine-tunes
    if "cpt" not in stages:
        cpt_run = OUT / "runs" / yaml.safe_load(Path(stages["adapted"]["config"]["recipe"]).read_text())["name"]
        stages = json.loads((cpt_run / "manifest.json").read_text())["stages"]
    total, vocab, hidden = _params(cpt_run / "model" / "model")
    tokens = sum(p["tokens"] for p in stages["cpt"]["config"]["phases"])
    chat = {}
    for stage, key in (("eval_cpt_chat", "asst_cpt"), ("eval_sft_chat", "asst_sft")):
        if (run_dir / stage / "results.json").is_file():
            loss = json.loads((run_dir / stage / "results.json").read_text())["chat"]["assistant_loss"]
            chat |= {key: loss["loss"], f"{key}_last": loss.get("last_turn_loss")}
    return {
        **chat,
        "vi_bpb": res["bpb_sets"]["vi"]["bits_per_byte"],
        "en_bpb": res["bpb_sets"]["en"]["bits_per_byte"],
        "tokens_per_syllable": res["fertility"].get("vi_tokens_per_syllable"),
        "tokens": tokens,
        "flops": 6 * (total - vocab * hidden) * tokens,  # input embeddings cost no matmul FLOPs
        "wall_s": round(time.time() - started, 1),
        "run_dir": str(run_dir),
    }


def generation_speed(model_dir: Path, threads: int | None, n_prompts: int = 8, new_tokens: int = 64) -> dict:
    """Greedy generation speed on Vietnamese prompts (the first five syllables of VTB dev
    sentences), batch 1, through vinaforge's generation engine: new tokens per second and the
    Vietnamese syllables per second they stand for (tokens/s ÷ the model's tokens per syllable)."""
    from vinaforge.generate import SamplingParams
    from vinaforge.generate.local import LocalBackend
    from vinaforge.io import iter_texts
    from vinaforge.tune.common import set_threads

    set_threads(threads)
    prompts = [" ".join(t.split()[:5]) for t, _ in zip(iter_texts(VTB_DEV), range(n_prompts), strict=False)]
    backend = LocalBackend(str(model_dir), batch_size=1)
    params = SamplingParams(max_new_tokens=new_tokens)
    backend.generate(prompts[:1], params)  # warm-up
    started = time.perf_counter()
    done = backend.generate(prompts, params)
    seconds = time.perf_counter() - started
    tokens = sum(c.completion_tokens for c in done)
    return {"gen_tokens_per_s": tokens / seconds, "gen_tokens": tokens, "gen_seconds": seconds}


def _ms(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    ap.add_argument("--rows", default=",".join(ALL_ROWS), help=f"comma-separated: {', '.join(ALL_ROWS)}")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=None, help="training tokens per arm (default: the scale's)")
    ap.add_argument("--equal", choices=["tokens", "flops"], default="flops")
    ap.add_argument("--reward-steps", type=int, default=REWARD_STEPS)
    ap.add_argument("--reward-lr", type=float, default=REWARD_LR)
    ap.add_argument("--gen-speed", action="store_true",
                    help="also time greedy Vietnamese generation of each CPT arm's first seed")  # fmt: skip
    args = ap.parse_args(argv)
    scale = SCALES[args.scale]
    tokens = args.tokens or scale["tokens"]
    prep = prep_recipe(args.scale)
    table: dict[str, dict[str, list[dict]]] = {}
    chat: dict[str, dict[str, list[dict]]] = {}  # preference and merge rows: their own tables
    extra: dict[str, dict[str, list[dict]]] = {}  # self-preference and chat-vector rows: theirs
    for row in args.rows.split(","):
        if row not in ALL_ROWS:
            ap.error(f"unknown row {row!r}; rows: {', '.join(ALL_ROWS)}")
        if row == "merge":
            data = (preference_files(prep), multiturn_files(prep))
            for seed in range(args.seeds):
                for arm, res in run_merge_arms(merge_recipe(seed, tokens, scale, prep, *data)).items():
                    _keep(chat, row, arm, seed, res)
            continue
        if row == "self-preference":
            data = preference_files(prep)
            for seed in range(args.seeds):
                for arm, res in run_self_pref_arms(self_pref_recipe(seed, tokens, scale, prep, data)).items():
                    _keep(extra, row, arm, seed, res)
            continue
        if row == "chat-vector":
            for seed in range(args.seeds):
                for arm, res in run_chat_vector_arms(chat_vector_recipe(seed, tokens, scale, prep)).items():
                    _keep(extra, row, arm, seed, res)
            continue
        if row in PREF_ROWS:
            data = preference_files(prep)
            for seed in range(args.seeds):
                reward = (args.reward_steps, args.reward_lr)
                for arm, res in run_pref_arms(row, pref_recipe(row, seed, tokens, scale, prep, data, reward)).items():
                    _keep(chat, row, arm, seed, res)
            continue
        if row in SFT_ROWS:
            data = multiturn_files(prep)
            for seed in range(args.seeds):
                for arm in SFT_ROWS[row]:
                    _keep(table, row, arm, seed, run_arm(sft_recipe(row, arm, seed, tokens, scale, prep, data)))
            continue
        arms = list(ROWS[row])
        for seed in range(args.seeds):
            first = None
            for arm in arms:
                arm_tokens = tokens
                if args.equal == "flops" and row == "extension" and first is not None:
                    # the base vocabulary's smaller head: give the control the tokens that spend the
                    # same training FLOPs as the extended arm
                    arm_tokens = int(first["flops"] / _flops_per_token(OUT / "runs" / "adapt-prep" / "base" / "model"))
                res = run_arm(arm_recipe(row, arm, seed, arm_tokens, scale, prep))
                if args.gen_speed and seed == 0:
                    res |= generation_speed(Path(res["run_dir"]) / "cpt" / "final", scale["threads"])
                    res["gen_syllables_per_s"] = res["gen_tokens_per_s"] / res["tokens_per_syllable"]
                first = first or res
                _keep(table, row, arm, seed, res)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({**table, **chat, **extra}, indent=2))
    merged = chat.pop("merge", None)
    for part in (markdown(table, args) if table else "", pref_markdown(chat) if chat else "",
                 merge_markdown(merged) if merged else "",
                 *(COLUMNS_MARKDOWN[row](arms) for row, arms in extra.items())):  # fmt: skip
        print(part)
    return 0


def _keep(store: dict, row: str, arm: str, seed: int, res: dict) -> None:
    """Add one arm's result to its table and print it as one JSON line (progress you can parse)."""
    store.setdefault(row, {}).setdefault(arm, []).append(res)
    print(json.dumps({"row": row, "arm": arm, "seed": seed, **res}), flush=True)


def pref_markdown(table: dict) -> str:
    lines = ["| row | arm | held-out preference accuracy | chosen - rejected log-prob | held-out assistant loss "
             "| held-out pairs | wall s (run) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for row, arms in table.items():
        for arm, runs in arms.items():
            cols = [_ms([r[k] for r in runs]) if k in runs[0] else "–" for k in ("pref_acc", "margin", "asst")]
            lines.append(f"| {row} | {arm} | {' | '.join(cols)} | {runs[0]['n_pairs']} | "
                         f"{statistics.mean(r['wall_s'] for r in runs):.0f} |")  # fmt: skip
    return "\n".join(lines)


def merge_markdown(arms: dict[str, list[dict]]) -> str:
    lines = ["| arm | Vietnamese bpb (VTB dev) | English bpb | assistant loss, single-turn held-out "
             "| 3-turn held-out |", "|---|---|---|---|---|"]  # fmt: skip
    for arm, runs in arms.items():
        cols = [_ms([r[k] for r in runs]) for k in ("vi_bpb", "en_bpb", "asst_single", "asst_multi")]
        lines.append(f"| {arm} | {' | '.join(cols)} |")
    return "\n".join(lines)


def columns_markdown(arms: dict[str, list[dict]], columns: dict[str, str]) -> str:
    """One row per arm, mean ± sd of each ``columns`` key (header: its value); "–" where absent."""
    lines = [f"| arm | {' | '.join(columns.values())} |", "|---" * (len(columns) + 1) + "|"]
    for arm, runs in arms.items():
        cols = [_ms([r[k] for r in runs]) if runs[0].get(k) is not None else "–" for k in columns]
        lines.append(f"| {arm} | {' | '.join(cols)} |")
    return "\n".join(lines)


COLUMNS_MARKDOWN = {
    "self-preference": lambda arms: columns_markdown(arms, {
        "pref_acc": "held-out preference accuracy", "asst": "held-out assistant loss",
        "rules": "rules score of held-out answers", "distinct_2": "distinct-2", "degenerate": "degenerate share",
        "self_pairs": "self-preference pairs", "wall_s": "wall s (run)"}),
    "chat-vector": lambda arms: columns_markdown(arms, {
        "vi_bpb": "Vietnamese bpb (VTB dev)", "en_bpb": "English bpb", "asst_single": "assistant loss (nats/token)",
        "asst_bpb": "assistant loss (bits/byte)", "wall_s": "wall s (run)"}),
}  # fmt: skip


def _flops_per_token(model_dir: Path) -> float:
    """Training FLOPs per token (6 × the parameters that do matmuls: all but the input embeddings)."""
    total, vocab, hidden = _params(model_dir)
    return 6 * (total - vocab * hidden)


def markdown(table: dict, args) -> str:
    lines = [
        f"Seeds: {args.seeds}; equal {args.equal}; scale {args.scale}.",
        "",
        "| row | arm | Vietnamese bpb (VTB dev) | English bpb (held-out) | assistant loss after CPT | after SFT "
        "| last turn after SFT | tokens/syllable | CPT tokens | CPT FLOPs | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row, arms in table.items():
        for arm, runs in arms.items():
            asst = [_ms([r[k] for r in runs]) if runs[0].get(k) is not None else "–"
                    for k in ("asst_cpt", "asst_sft", "asst_sft_last")]  # fmt: skip
            lines.append(
                f"| {row} | {arm} | {_ms([r['vi_bpb'] for r in runs])} | {_ms([r['en_bpb'] for r in runs])} | "
                f"{asst[0]} | {asst[1]} | {asst[2]} | {runs[0]['tokens_per_syllable']:.3f} | {runs[0]['tokens']:,} | "
                f"{runs[0]['flops']:.3g} | {statistics.mean(r['wall_s'] for r in runs):.0f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
