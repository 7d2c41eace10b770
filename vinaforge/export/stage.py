"""The ``export`` stage: the final model as HF folder + GGUF + Modelfile + card, verified.

Outputs ``hf`` (the Hugging Face folder), ``gguf`` (the GGUF files), ``Modelfile`` and
``export.json``. When the llama.cpp runtime is absent, the GGUF files are still written and the
report card says they were not verified and how to verify them.
"""

from __future__ import annotations

from vinaforge.export.config import Config
from vinaforge.export.export import export_model
from vinaforge.stage import StageContext, StageResult

__all__ = ["Config", "run"]


def report_markdown(record: dict) -> str:
    hf = record["hf"]
    lines = [f"- HF folder `hf/`: {hf['dtype']}, {hf['safetensors_bytes'] / 1e6:.1f} MB of safetensors, "
             f"chat template `{hf['chat_template']}`, model card `hf/README.md`"]  # fmt: skip
    if record["gguf"]:
        lines += ["", "| GGUF | size (MB) | export time (s) | verification |", "|---|---|---|---|"]
        for g, v in zip(record["gguf"], record["verification"], strict=True):
            lines.append(f"| `{g['file']}` | {g['bytes'] / 1e6:.1f} | {g['seconds']:.1f} | {_state(v)} |")
    if record.get("ollama"):
        o = record["ollama"]
        lines += ["", f"- Ollama `Modelfile`: template {o['template'] or '(from the GGUF)'}, stops {o['stops']}"]
    return "\n".join(lines) + "\n"


def _state(v: dict) -> str:
    if v.get("verified"):
        tok = v["tokenization"]
        gen = v["generation"]
        same = "16 greedy tokens identical" if "hf" in gen else gen.get("note", "")
        return (f"verified: token ids identical on {tok['texts']} texts ({tok['new_token_ids_used']} new-token ids), "
                f"{same}, chat template + BOS/EOS in metadata")  # fmt: skip
    if v.get("not_run"):
        return f"**not verified** ({v['not_run']})"
    return "not verified (verify: false)"


def run(config: Config, ctx: StageContext) -> StageResult:
    record = export_model(config, ctx.work_dir, name=config.card.name or ctx.run_dir.name, run_dir=ctx.run_dir)
    outputs = {"hf": "hf", "export": "export.json"}
    if record["gguf"]:
        outputs["gguf"] = "gguf"
    if record.get("ollama"):
        outputs["modelfile"] = "Modelfile"
    metrics = {f"export_s {k}": v for k, v in record["timings_s"].items()}
    metrics["verified"] = int(record["verified"])
    return StageResult(outputs=outputs, metrics=metrics, report=report_markdown(record))
