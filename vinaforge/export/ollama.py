"""An Ollama ``Modelfile`` for an exported GGUF: the chat template in Go syntax and stop tokens.

Ollama's ``TEMPLATE`` is a Go template, not Jinja, and no library translates one into the other,
so each template of vinaforge's registry (:mod:`vinaforge.chat.templates`) has its Go version
here, written to produce the same text as the Jinja one (the runtime adds the first BOS, as
llama.cpp does). A model whose template is not in the registry (and renders like none of
them) gets a Modelfile without ``TEMPLATE``: Ollama then falls back to the template it detects
from the GGUF's ``tokenizer.chat_template``, and the file says so. Stop strings come from the
registry (end-of-turn token and format cues such as ``[INST]``).

Hand-written: the Go templates are format conventions. They are compared here with the Jinja
renderings only through their literal parts; Ollama itself does not run in our tests.
"""

from __future__ import annotations

from pathlib import Path

GO_TEMPLATES = {  # one line each, no "{{-": Go's trim markers would eat the formats' own newlines
    "chatml": "{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
    "vi_qa": (
        "{{ $first := true }}{{ range .Messages }}"
        '{{ if eq .Role "system" }}{{ .Content }}\n\n'
        '{{ else if eq .Role "user" }}{{ if not $first }}\n\n{{ end }}### Câu hỏi:\n{{ .Content }}\n\n### Trả lời:'
        "{{ $first = false }}"
        '{{ else if eq .Role "assistant" }} {{ .Content }}{EOS}'
        "{{ end }}{{ end }}"
    ),
    "mistral": (
        '{{ $sys := "" }}{{ $first := true }}{{ range .Messages }}'
        '{{ if eq .Role "system" }}{{ $sys = .Content }}'
        '{{ else if eq .Role "user" }}[INST] {{ if and $first $sys }}{{ $sys }}\n\n{{ end }}{{ .Content }} [/INST]'
        "{{ $first = false }}"
        '{{ else if eq .Role "assistant" }} {{ .Content }}{EOS}'
        "{{ end }}{{ end }}"
    ),
    "llama2": (
        '{{ $sys := "" }}{{ $first := true }}{{ range .Messages }}'
        '{{ if eq .Role "system" }}{{ $sys = .Content }}'
        '{{ else if eq .Role "user" }}{{ if not $first }}{BOS}{{ end }}[INST] '
        "{{ if and $first $sys }}<<SYS>>\n{{ $sys }}\n<</SYS>>\n\n{{ end }}{{ .Content }} [/INST]{{ $first = false }}"
        '{{ else if eq .Role "assistant" }} {{ .Content }} {EOS}'
        "{{ end }}{{ end }}"
    ),
    "vicuna": (
        '{{ $sys := "{VICUNA_SYSTEM}" }}{{ range .Messages }}{{ if eq .Role "system" }}{{ $sys = .Content }}{{ end }}{{ end }}'
        "{{ $sys }} {{ range .Messages }}"
        '{{ if eq .Role "user" }}USER: {{ .Content }} ASSISTANT:'
        '{{ else if eq .Role "assistant" }} {{ .Content }}{EOS}'
        "{{ end }}{{ end }}"
    ),
}


def go_template(name: str, bos: str, eos: str) -> str | None:
    """The Go template for a registry template name (None for templates we have no Go form of)."""
    from vinaforge.chat.templates import VBD_SYSTEM_PROMPT

    text = GO_TEMPLATES.get(name)
    if text is None:
        return None
    return text.replace("{EOS}", eos).replace("{BOS}", bos).replace("{VICUNA_SYSTEM}", VBD_SYSTEM_PROMPT)


def registry_name(jinja: str | None, bos: str, eos: str) -> str | None:
    """Which registry template a Jinja template renders like (markers aside), if any."""
    if not jinja:
        return None
    from vinaforge.chat.templates import TEMPLATES, known_equivalent

    for name, tpl in TEMPLATES.items():
        if tpl.jinja == jinja:
            return name
    return known_equivalent(jinja, bos or "<s>", eos or "</s>")


def stop_strings(name: str | None, eos: str) -> list[str]:
    from vinaforge.chat.templates import TEMPLATES

    stops = TEMPLATES[name].stop_strings(eos) if name in TEMPLATES else []
    return list(dict.fromkeys([*(stops or []), eos] if eos else stops))


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def modelfile(gguf_rel: str, jinja: str | None, bos: str, eos: str, temperature: float = 0.7) -> tuple[str, dict]:
    """The Modelfile text and what went into it (template name or None, stops)."""
    name = registry_name(jinja, bos, eos)
    template = go_template(name, bos, eos) if name else None
    stops = stop_strings(name, eos)
    lines = [
        "# Ollama Modelfile written by vinaforge export. Use: ollama create MODEL_NAME -f Modelfile",
        f"FROM ./{gguf_rel}",
    ]
    if template:
        lines.append(f'TEMPLATE """{template}"""')
    else:
        lines.append(
            "# No TEMPLATE: the model's chat template is not one vinaforge has a Go form of; Ollama uses the "
            "template it detects from the GGUF's tokenizer.chat_template. Check it with `ollama show --template`."
        )
    lines += [f'PARAMETER stop "{_quote(s)}"' for s in stops]
    lines.append(f"PARAMETER temperature {temperature}")
    return "\n".join(lines) + "\n", {"template": name, "go_template": bool(template), "stops": stops}


def write_modelfile(out_dir: Path, gguf_file: Path, jinja: str | None, bos: str, eos: str) -> dict:
    from vinaforge.io import atomic_write_text

    text, info = modelfile(gguf_file.relative_to(out_dir).as_posix(), jinja, bos, eos)
    atomic_write_text(out_dir / "Modelfile", text)
    return info
