"""The Hugging Face folder of an export: safetensors in the chosen dtype, tokenizer and chat template.

transformers does the saving (``save_pretrained``: safetensors, ``chat_template.jinja``). This
module picks the chat template — the model's own; else the one named in the config (a
:mod:`vinaforge.chat.templates` name, a ``.jinja`` file or Jinja text); else vinaforge's default
— and derives the *inference* template for llama.cpp and Ollama: the same Jinja without the
``{% generation %}`` markers, which only training tools understand (llama.cpp's Jinja engine
rejects the unknown tag).

Hand-written glue.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

log = logging.getLogger(__name__)

EXPORT_DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16",
                 "f16": "float16", "fp32": "float32", "float32": "float32"}  # fmt: skip
_MARKER = re.compile(r"\{%(-?)\s*(?:end)?generation\s*(-?)%\}")


def inference_template(jinja: str) -> str:
    """The template without ``{% generation %}``/``{% endgeneration %}`` (same rendered text)."""
    return _MARKER.sub(lambda m: "{{" + m.group(1) + " '' " + m.group(2) + "}}", jinja)


def choose_template(tokenizer, spec: str | None) -> tuple[str, str]:
    """``(name, jinja)``: the configured template, else the tokenizer's own, else the default one."""
    from vinaforge.chat.templates import DEFAULT_TEMPLATE, TEMPLATES, resolve_template_text

    if spec:
        return resolve_template_text(spec)
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):
        own = own.get("default")
    if own:
        return "own", own
    log.warning("the model has no chat template; exporting it with vinaforge's default %r", DEFAULT_TEMPLATE)
    return DEFAULT_TEMPLATE, TEMPLATES[DEFAULT_TEMPLATE].jinja


def export_hf(model_dir: Path, out_dir: Path, dtype: str = "bf16", chat_template: str | None = None,
              tokenizer_dir: Path | None = None) -> dict:  # fmt: skip
    """Write ``out_dir`` (which must not exist; the caller makes it atomic) and describe it."""
    from vinaforge.chat.templates import TEMPLATES
    from vinaforge.model.load import load_causal_lm, load_tokenizer

    started = time.time()
    model = load_causal_lm(str(model_dir), dtype=EXPORT_DTYPES[dtype])
    tokenizer = load_tokenizer(str(tokenizer_dir or model_dir))
    name, jinja = choose_template(tokenizer, chat_template)
    template = TEMPLATES.get(name)
    if template and template.special_tokens:
        missing = [t for t in template.special_tokens if t not in tokenizer.get_vocab()]
        if missing:
            tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            log.info("added %s to the tokenizer for the %s template", missing, name)
        if template.end_of_turn.startswith("<|"):
            tokenizer.eos_token = template.end_of_turn
            model.generation_config.eos_token_id = tokenizer.eos_token_id
    tokenizer.chat_template = jinja
    out_dir.mkdir(parents=True)
    model.save_pretrained(out_dir)
    from vinaforge.model.load import save_tokenizer

    save_tokenizer(tokenizer, out_dir)
    size = sum(f.stat().st_size for f in out_dir.glob("*.safetensors"))
    return {
        "dtype": EXPORT_DTYPES[dtype],
        "chat_template": name,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token": tokenizer.bos_token,
        "eos_token": tokenizer.eos_token,
        "vocab_size": len(tokenizer),
        "parameters": model.num_parameters(),
        "safetensors_bytes": size,
        "seconds": round(time.time() - started, 2),
        "jinja": jinja,
    }


def gguf_source(hf_dir: Path, work: Path, jinja: str) -> Path:
    """A view of ``hf_dir`` for the converter whose chat template is the inference template."""
    import json

    src = work
    src.mkdir(parents=True, exist_ok=True)
    for f in hf_dir.iterdir():
        if f.is_file() and f.name not in ("chat_template.jinja", "tokenizer_config.json", "README.md"):
            (src / f.name).symlink_to(f.resolve())
    cfg = json.loads((hf_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg.pop("chat_template", None)
    (src / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")
    (src / "chat_template.jinja").write_text(inference_template(jinja), encoding="utf-8")
    return src
