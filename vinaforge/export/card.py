"""The model card (``README.md``) of an export, from the run's manifest and the export itself.

Sections: the base model, the recipe (stages, kinds, config hashes), the data with their
licences, evaluation results recorded in the run, the export's files, and intended use with
limitations. Everything comes from records (``manifest.json``, each stage's ``result.json``,
``config.json``); nothing is typed in by hand except what the user sets in ``card:``.

A data input's licence is what ``card.data_licences`` says for it, else the ``Licence:`` /
``License:`` line of the nearest ``README.md`` above it (``examples/README.md`` states one),
else "unknown — check before publishing".

Hand-written: a model card is a document about this pipeline; no library writes one from a run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_LICENCE = re.compile(r"\blicen[cs]e\s*:\s*([^\n,;]+)", re.IGNORECASE)
CARD_EVAL_KINDS = ("eval", "judge", "merge", "cpt", "sft", "dpo")


def _licence_of(path: Path, stop: Path) -> str | None:
    for folder in [path, *path.parents]:
        readme = folder / "README.md"
        if readme.is_file():
            m = _LICENCE.search(readme.read_text(encoding="utf-8", errors="replace"))
            if m:
                return m.group(1).strip().rstrip(".")
        if folder == stop or folder == folder.parent:
            break
    return None


def data_inputs(manifest: dict, licences: dict[str, str]) -> list[tuple[str, str]]:
    """``(path, licence)`` of every plain data input of the run's stages."""
    seen: dict[str, str] = {}
    cwd = Path.cwd()
    for stage in manifest.get("stages", {}).values():
        for item in stage.get("inputs", []):
            path = str(item.get("path", ""))
            if not path or path.startswith("@") or path in seen:
                continue
            p = Path(path)
            given = next((v for k, v in licences.items() if path.startswith(k)), None)
            found = given or (_licence_of(p if p.is_dir() else p.parent, cwd) if p.exists() else None)
            seen[path] = found or "unknown — check before publishing"
    return sorted(seen.items())


def recorded_metrics(run_dir: Path, manifest: dict) -> list[tuple[str, str, dict[str, Any]]]:
    """``(stage, kind, numeric metrics)`` for the run's evaluation-like stages."""
    out = []
    for name, stage in manifest.get("stages", {}).items():
        if stage.get("kind") not in CARD_EVAL_KINDS or stage.get("status") != "done":
            continue
        result = run_dir / name / "result.json"
        if not result.is_file():
            continue
        metrics = json.loads(result.read_text(encoding="utf-8")).get("metrics", {})
        numeric = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        if numeric:
            out.append((name, str(stage["kind"]), numeric))
    return out


def _base_model(manifest: dict, model_config: dict, given: str | None) -> str:
    if given:
        return given
    for stage in manifest.get("stages", {}).values():
        cfg = stage.get("config", {})
        if stage.get("kind") == "model":
            if cfg.get("tiny"):
                return f"a tiny {cfg['tiny'].get('arch', '?')} model built by vinaforge (random initialisation)"
            if cfg.get("base"):
                return str(cfg["base"])
    return str(model_config.get("_name_or_path") or "not recorded")


def model_card(*, name: str, model_config: dict, hf_info: dict, files: list[tuple[str, str]], verification: list[dict],
               manifest: dict | None, run_dir: Path | None, card: dict) -> str:  # fmt: skip
    """The README.md text."""
    from vinaforge.model.tiny import RANDOM_INIT_LABEL

    manifest = manifest or {}
    meta = model_config.get("vinaforge") or {}
    random = bool(meta.get("random_init"))
    lines = ["---", "library_name: transformers", "language:", "- vi"]
    if card.get("licence"):
        lines.append(f"license: {card['licence']}")
    lines += ["tags:", "- vinaforge", "- vietnamese", "---", "", f"# {name}", ""]
    if random:
        lines += [f"> **Warning: {RANDOM_INIT_LABEL}.** This model was built from random weights for a demo or a "
                  "test. It is not a usable language model.", ""]  # fmt: skip
    lines += [card.get("description") or "A Vietnamese model made with vinaforge.", ""]
    lines += ["## Base model", "", _base_model(manifest, model_config, card.get("base_model")), ""]
    if meta.get("resize"):
        r = meta["resize"]
        lines += [f"Vocabulary extended for Vietnamese: {r.get('num_rows_before')} → {r.get('num_rows')} rows "
                  f"({r.get('num_new_tokens')} new tokens, initialised by {r.get('init')}).", ""]  # fmt: skip
    if manifest:
        lines += ["## Recipe", "", f"Run `{manifest.get('name', '?')}` of `{manifest.get('recipe', '?')}` "
                  f"(vinaforge {manifest.get('vinaforge_version', '?')}):", "",
                  "| stage | kind | config hash | wall time (s) |", "|---|---|---|---|"]  # fmt: skip
        for sname, s in manifest.get("stages", {}).items():
            wall = s.get("wall_time_s")
            wall_text = f"{wall:.1f}" if isinstance(wall, int | float) else ""
            lines.append(f"| {sname} | {s.get('kind')} | `{str(s.get('config_hash', ''))[:12]}` | {wall_text} |")
        lines += ["", "## Data", "", "| input | licence |", "|---|---|"]
        lines += [f"| `{p}` | {lic} |" for p, lic in data_inputs(manifest, card.get("data_licences") or {})]
        lines.append("")
    results = recorded_metrics(run_dir, manifest) if run_dir else []
    lines += ["## Evaluation", ""]
    if results:
        for sname, kind, metrics in results:
            lines += [f"**{sname}** ({kind}):", "", "| metric | value |", "|---|---|"]
            lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
            lines.append("")
    else:
        lines += ["No evaluation results were recorded in this run before the export.", ""]
    lines += ["## Files", "", "| file | what |", "|---|---|"] + [f"| `{f}` | {w} |" for f, w in files] + [""]
    lines += [f"Chat template: `{hf_info['chat_template']}` (in `chat_template.jinja`); BOS id {hf_info['bos_token_id']}, "
              f"EOS id {hf_info['eos_token_id']}.", ""]  # fmt: skip
    for v in verification:
        state = "verified" if v.get("verified") else ("**not verified**: " + v["not_run"] if v.get("not_run") else "**FAILED**")
        lines.append(f"- `{v['gguf']}`: {state}")
    lines += ["", "## Intended use and limitations", ""]
    lines.append(card.get("intended_use") or "Research and experimentation with Vietnamese language models.")
    lines += ["", "- It can produce wrong, outdated or biased text; check its answers before relying on them.",
              "- It was evaluated only on what the Evaluation section lists.",
              "- Not for medical, legal or financial decisions, or for anything that affects people's rights."]  # fmt: skip
    if random:
        lines.append("- Its weights are random: it produces meaningless text.")
    return "\n".join(lines) + "\n"
