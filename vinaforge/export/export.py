"""Export a model: HF folder, GGUF files, an Ollama Modelfile, a model card, all verified.

Layout of an export folder::

    hf/                 safetensors (chosen dtype), tokenizer, chat_template.jinja, README.md (card)
    gguf/model-f16.gguf ... one file per requested type (llama.cpp's converter / quantizer)
    Modelfile           Ollama: FROM the first GGUF, TEMPLATE, stop tokens
    export.json         what was written, timings, and every verification result

The caller writes into a temporary folder and renames it (the stage engine, or the CLI's
``atomic_path``), so a failed verification leaves nothing that looks finished.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

from vinaforge.export.config import Config
from vinaforge.io import atomic_write_json, atomic_write_text, iter_texts

log = logging.getLogger(__name__)

GENERATION_TYPES = ("f16", "bf16", "f32")  # greedy tokens are compared only on unquantized files


def _texts(config: Config) -> list[str]:
    from vinaforge.export.verify import VERIFY_TEXTS

    texts = list(VERIFY_TEXTS)
    for path in config.verify_texts:
        for text in iter_texts(Path(path)):
            texts.extend(line for line in text.splitlines() if line.strip())
    return texts


def _first_new_id(config: Config, model_config: dict) -> int | None:
    if config.first_new_id is not None:
        return config.first_new_id
    resize = (model_config.get("vinaforge") or {}).get("resize") or {}
    return resize.get("first_new_id")


def export_model(config: Config, out: Path, *, name: str, run_dir: Path | None = None) -> dict:
    """Write every artifact into ``out`` (an empty or new folder) and return the export record."""
    from vinaforge.export import llamacpp
    from vinaforge.export.card import model_card
    from vinaforge.export.hf import export_hf, gguf_source
    from vinaforge.export.ollama import write_modelfile
    from vinaforge.export.verify import VerificationError, failure_message, verify_gguf

    started = time.time()
    if config.gguf and config.verify and config.require_verified and not llamacpp.runtime_available():
        from vinaforge.export.verify import INSTALL_HINT

        raise VerificationError(f"require_verified is set but GGUF files could not be verified: {INSTALL_HINT}")
    out.mkdir(parents=True, exist_ok=True)
    hf_dir = out / "hf"
    log.info("export: writing the HF folder (%s)", config.dtype)
    hf_info = export_hf(Path(config.model), hf_dir, config.dtype, config.chat_template,
                        Path(config.tokenizer) if config.tokenizer else None)  # fmt: skip
    model_config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    record: dict = {"name": name, "hf": {k: v for k, v in hf_info.items() if k != "jinja"}, "gguf": [],
                    "verification": [], "timings_s": {"hf": hf_info["seconds"]}}  # fmt: skip
    files = [("hf/", f"Hugging Face folder, {hf_info['dtype']} safetensors, tokenizer and chat template")]
    gguf_dir = out / "gguf"
    texts = _texts(config)
    first_new = _first_new_id(config, model_config)
    if config.gguf:
        llamacpp.check_convertible(hf_dir)
        gguf_dir.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="vf-gguf-src-") as tmp:
            src = gguf_source(hf_dir, Path(tmp) / "src", hf_info["jinja"])
            made: dict[str, Path] = {}
            for qtype in _conversion_order(config.gguf):
                target = gguf_dir / f"model-{qtype}.gguf"
                if qtype in llamacpp.CONVERTER_TYPES:
                    log.info("export: converting to GGUF %s with llama.cpp's converter", qtype)
                    seconds = llamacpp.convert(src, target, qtype)
                else:
                    base = made.get("f16") or gguf_dir / ".model-f16-for-quantize.gguf"
                    if "f16" not in made:
                        llamacpp.convert(src, base, "f16")
                    log.info("export: quantizing to %s", qtype)
                    seconds = llamacpp.quantize(base, target, qtype)
                made[qtype] = target
                record["timings_s"][f"gguf_{qtype}"] = seconds
                record["gguf"].append({"type": qtype, "file": f"gguf/{target.name}", "bytes": target.stat().st_size,
                                       "seconds": seconds})  # fmt: skip
            leftover = gguf_dir / ".model-f16-for-quantize.gguf"
            if leftover.exists():
                leftover.unlink()
        for entry in record["gguf"]:
            path = out / entry["file"]
            meta = llamacpp.read_metadata(path)
            report = {"verified": False, "skipped": "verify: false"}
            if config.verify:
                started_v = time.time()
                report = verify_gguf(hf_dir, path, entry["type"], meta, hf_info, texts,
                                     max_new_tokens=config.max_new_tokens, first_new_id=first_new,
                                     compare_generation=entry["type"] in GENERATION_TYPES)  # fmt: skip
                report["seconds"] = round(time.time() - started_v, 2)
                ran = report.get("tokenization") is not None
                if not report["metadata"]["ok"] or (ran and not report["verified"]):
                    atomic_write_json(out / "export.json", record | {"failed": report})
                    raise VerificationError(f"{entry['file']} failed verification: {failure_message(report)}")
                if report.get("not_run") and config.require_verified:
                    raise VerificationError(f"{entry['file']} could not be verified: {report['not_run']}")
            report["gguf"] = entry["file"]
            record["verification"].append(report)
            files.append((entry["file"], f"GGUF {entry['type']} for llama.cpp / Ollama"))
        if config.ollama:
            first = out / record["gguf"][0]["file"]
            record["ollama"] = write_modelfile(out, first, hf_info["jinja"], hf_info["bos_token"] or "",
                                               hf_info["eos_token"] or "")  # fmt: skip
            files.append(("Modelfile", "Ollama: `ollama create NAME -f Modelfile`"))
    record["verified"] = bool(record["verification"]) and all(v.get("verified") for v in record["verification"])
    manifest = None
    if run_dir is not None and (run_dir / "manifest.json").is_file():
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    card = model_card(name=name, model_config=model_config, hf_info=hf_info, files=files,
                      verification=record["verification"], manifest=manifest, run_dir=run_dir,
                      card=config.card.model_dump())  # fmt: skip
    atomic_write_text(hf_dir / "README.md", card)
    record["timings_s"]["total"] = round(time.time() - started, 2)
    atomic_write_json(out / "export.json", record)
    return record


def _conversion_order(types: list[str]) -> list[str]:
    """Converter types first (f16 before the quants that start from it)."""
    from vinaforge.export.llamacpp import CONVERTER_TYPES

    return sorted(types, key=lambda t: (t not in CONVERTER_TYPES, t != "f16"))
