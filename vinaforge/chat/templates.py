"""Chat templates with ``{% generation %}`` markers, defined once for training and inference.

Every template marks each assistant reply, *including its end-of-turn token*, with
``{% generation %}`` … ``{% endgeneration %}``. TRL's assistant-only loss
(``assistant_only_loss=True``) and transformers' ``return_assistant_tokens_mask`` read these
markers, so every assistant turn is trained (not only the last) and the model learns to stop.
TRL ships marked templates for Llama-3, Qwen and others but not for Mistral or Llama-2, so we
ship ours:

- ``chatml``: ``<|im_start|>role\\n…<|im_end|>`` (adds two special tokens to the tokenizer);
- ``llama2``: ``<s>[INST] <<SYS>>…<</SYS>> … [/INST] reply </s>``;
- ``mistral``: ``<s>[INST] … [/INST] reply</s>`` (system prompt folded into the first turn);
- ``vicuna``: ``SYSTEM USER: … ASSISTANT: reply</s>``, with VBD-LLaMA2-Chat's system prompt;
- ``vi_qa``: the Vietnamese ``### Câu hỏi: / ### Trả lời:`` format — the only definition of it
  in vinaforge; base models without a template are prompted in it too.

The same Jinja text is written into every tokenizer vinaforge saves
(``chat_template.jinja``), so transformers, vLLM and llama.cpp chat with a model exactly the way
it was trained. :func:`render` renders a template without torch or a tokenizer and returns the
character spans of the assistant parts; :func:`assistant_token_mask` turns them into a per-token
mask with a fast tokenizer's offsets.

Hand-written: the templates are model-family conventions; rendering is Jinja2 in the same
sandboxed environment transformers uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

VBD_SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
EOS = "{eos}"  # placeholder in ``end_of_turn``: the tokenizer's own EOS token

_SPLIT_SYSTEM = (
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set system_message = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set system_message = none -%}{%- set loop_messages = messages -%}{%- endif -%}"
)

CHATML = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- generation -%}{{- message['content'] + '<|im_end|>' -}}{%- endgeneration -%}{{- '\n' -}}"
    "{%- else -%}{{- message['content'] + '<|im_end|>\n' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}"
)

#: Qwen1.5/Qwen2 chat: ChatML with Qwen's default system prompt when the conversation has none
#: (rendered exactly like the template in llama.cpp's ggml-vocab-qwen2.gguf, markers aside).
QWEN = (
    "{%- for message in messages -%}"
    "{%- if loop.first and messages[0]['role'] != 'system' -%}"
    "{{- '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n' -}}"
    "{%- endif -%}"
    "{{- '<|im_start|>' + message['role'] + '\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- generation -%}{{- message['content'] + '<|im_end|>' -}}{%- endgeneration -%}{{- '\n' -}}"
    "{%- else -%}{{- message['content'] + '<|im_end|>\n' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}"
)

#: Phi-3 instruct: <|user|>/<|assistant|>/<|end|>. The reference (ggml-vocab-phi-3.gguf) opens the
#: assistant turn after every user turn and drops system messages; here a system message becomes a
#: ``<|system|>`` block (as later Phi-3 releases write it) rather than vanishing silently.
PHI3 = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{- '<|system|>\n' + message['content'] + '<|end|>\n' -}}"
    "{%- elif message['role'] == 'user' -%}"
    "{{- '<|user|>\n' + message['content'] + '<|end|>\n<|assistant|>\n' -}}"
    "{%- else -%}"
    "{%- generation -%}{{- message['content'] + '<|end|>' -}}{%- endgeneration -%}{{- '\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

#: Llama-3 instruct: a header per turn, ``<|eot_id|>`` closes it; contents trimmed (as Meta's
#: template and llama.cpp's built-in ``llama3`` do).
LLAMA3 = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- generation -%}{{- message['content'] | trim + '<|eot_id|>' -}}{%- endgeneration -%}"
    "{%- else -%}{{- message['content'] | trim + '<|eot_id|>' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}{%- endif -%}"
)

#: Gemma (2 and 3): ``<start_of_turn>user|model``; a system message is folded into the first user
#: turn followed by a blank line, as Gemma 3's template and llama.cpp's built-in ``gemma`` do.
GEMMA = (
    _SPLIT_SYSTEM + "{{- bos_token -}}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<start_of_turn>model\n' -}}"
    "{%- generation -%}{{- message['content'] | trim + '<end_of_turn>' -}}{%- endgeneration -%}{{- '\n' -}}"
    "{%- else -%}"
    "{{- '<start_of_turn>' + message['role'] + '\n' -}}"
    "{%- if loop.first and system_message is not none -%}{{- system_message | trim + '\n\n' -}}{%- endif -%}"
    "{{- message['content'] | trim + '<end_of_turn>\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\n' -}}{%- endif -%}"
)

LLAMA2 = (
    _SPLIT_SYSTEM + "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- if loop.first and system_message is not none -%}"
    "{{- bos_token + '[INST] <<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] + ' [/INST]' -}}"
    "{%- else -%}{{- bos_token + '[INST] ' + message['content'] + ' [/INST]' -}}{%- endif -%}"
    "{%- else -%}"
    "{%- generation -%}{{- ' ' + message['content'] + ' ' + eos_token -}}{%- endgeneration -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

MISTRAL = (
    _SPLIT_SYSTEM + "{{- bos_token -}}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- if loop.first and system_message is not none -%}"
    "{{- '[INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' -}}"
    "{%- else -%}{{- '[INST] ' + message['content'] + ' [/INST]' -}}{%- endif -%}"
    "{%- else -%}"
    "{%- generation -%}{{- ' ' + message['content'] + eos_token -}}{%- endgeneration -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

VICUNA = (
    _SPLIT_SYSTEM.replace("set system_message = none", f"set system_message = {VBD_SYSTEM_PROMPT!r}")
    + "{{- bos_token + system_message + ' ' -}}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'user' -%}{{- 'USER: ' + message['content'] + ' ASSISTANT:' -}}"
    "{%- else -%}"
    "{%- generation -%}{{- ' ' + message['content'] + eos_token -}}{%- endgeneration -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

VI_QA = (
    _SPLIT_SYSTEM + "{{- bos_token -}}"
    "{%- if system_message is not none -%}{{- system_message + '\n\n' -}}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- if not loop.first -%}{{- '\n\n' -}}{%- endif -%}"
    "{{- '### Câu hỏi:\n' + message['content'] + '\n\n### Trả lời:' -}}"
    "{%- else -%}"
    "{%- generation -%}{{- ' ' + message['content'] + eos_token -}}{%- endgeneration -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
)


@dataclass(frozen=True)
class ChatTemplate:
    """A named template: its Jinja text, what closes an assistant turn, tokens it needs."""

    name: str
    jinja: str
    end_of_turn: str
    description: str
    special_tokens: tuple[str, ...] = ()
    extra_stops: tuple[str, ...] = ()

    def stop_strings(self, eos_token: str | None) -> list[str]:
        """Strings that end a generated reply (the end-of-turn marker and format cues)."""
        eot = self.end_of_turn.replace(EOS, eos_token or "")
        return [s for s in (eot, *self.extra_stops) if s]


TEMPLATES: dict[str, ChatTemplate] = {
    t.name: t
    for t in (
        ChatTemplate("chatml", CHATML, "<|im_end|>", "ChatML (<|im_start|>/<|im_end|>)",
                     ("<|im_start|>", "<|im_end|>"), ("<|im_start|>",)),
        ChatTemplate("qwen", QWEN, "<|im_end|>", "Qwen1.5/Qwen2 ChatML with the default system prompt",
                     ("<|im_start|>", "<|im_end|>"), ("<|im_start|>",)),
        ChatTemplate("phi3", PHI3, "<|end|>", "Phi-3 instruct: <|user|> … <|end|> <|assistant|>",
                     ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"), ("<|user|>",)),
        ChatTemplate("llama3", LLAMA3, "<|eot_id|>", "Llama-3 instruct: <|start_header_id|>role<|end_header_id|>",
                     ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"), ("<|start_header_id|>",)),
        ChatTemplate("gemma", GEMMA, "<end_of_turn>", "Gemma: <start_of_turn>user|model … <end_of_turn>",
                     ("<start_of_turn>", "<end_of_turn>"), ("<start_of_turn>",)),
        ChatTemplate("llama2", LLAMA2, EOS, "Llama-2 chat: [INST] <<SYS>> … [/INST]", (), ("[INST]",)),
        ChatTemplate("mistral", MISTRAL, EOS, "Mistral instruct: [INST] … [/INST]", (), ("[INST]",)),
        ChatTemplate("vicuna", VICUNA, EOS, "Vicuna v1.1 USER:/ASSISTANT: with VBD-LLaMA2-Chat's system prompt",
                     (), ("USER:",)),
        ChatTemplate("vi_qa", VI_QA, EOS, "Vietnamese ### Câu hỏi: / ### Trả lời:", (), ("### Câu hỏi:",)),
    )
}  # fmt: skip
DEFAULT_TEMPLATE = "vi_qa"

_GEN_OPEN = re.compile(r"\{%(-?)\s*generation\s*(-?)%\}")
_GEN_CLOSE = re.compile(r"\{%(-?)\s*endgeneration\s*(-?)%\}")
_START, _END = "\ue000", "\ue001"  # private-use sentinels marking assistant spans while rendering


class TemplateError(ValueError):
    """A template that cannot be used as asked (unknown name, no markers, bad Jinja)."""


def get_template(name: str) -> ChatTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise TemplateError(f"unknown chat template {name!r}; known: {', '.join(TEMPLATES)}") from None


def has_generation_markers(jinja: str) -> bool:
    return bool(_GEN_OPEN.search(jinja)) and bool(_GEN_CLOSE.search(jinja))


@lru_cache(maxsize=64)
def _compile(jinja: str):
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise TemplateError(message)

    # Same environment settings as transformers' apply_chat_template, so text is identical.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.globals["raise_exception"] = raise_exception
    marked = _GEN_OPEN.sub(lambda m: "{{" + m.group(1) + f" '{_START}' " + m.group(2) + "}}", jinja)
    marked = _GEN_CLOSE.sub(lambda m: "{{" + m.group(1) + f" '{_END}' " + m.group(2) + "}}", marked)
    try:
        return env.from_string(marked)
    except Exception as err:
        raise TemplateError(f"chat template is not valid Jinja: {err}") from err


@dataclass
class Rendered:
    """Template output and the ``[start, end)`` character spans of the assistant parts."""

    text: str
    assistant_spans: list[tuple[int, int]]


def render(
    messages: list[dict[str, Any]],
    template: str,
    *,
    bos_token: str = "<s>",
    eos_token: str = "</s>",
    add_generation_prompt: bool = False,
    **extra: Any,
) -> Rendered:
    """Render ``messages`` with a template (a registry name or Jinja text)."""
    jinja = TEMPLATES[template].jinja if template in TEMPLATES else template
    raw = _compile(jinja).render(
        messages=messages, bos_token=bos_token or "", eos_token=eos_token or "",
        add_generation_prompt=add_generation_prompt, **extra,
    )  # fmt: skip
    text, spans, pos, start = [], [], 0, None
    for ch in raw:
        if ch == _START:
            start = pos
        elif ch == _END:
            if start is not None and pos > start:
                spans.append((start, pos))
            start = None
        else:
            text.append(ch)
            pos += 1
    return Rendered("".join(text), spans)


def prompt_text(messages: list[dict[str, Any]], template: str = DEFAULT_TEMPLATE, *, bos_token: str = "",
                eos_token: str = "</s>") -> str:
    """The text a model continues to answer the last user turn (the generation prompt)."""
    return render(messages, template, bos_token=bos_token, eos_token=eos_token, add_generation_prompt=True).text


# ----------------------------------------------------------------------------- tokenizers


def _probe_conversation() -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "SYS-PROBE"},
        {"role": "user", "content": "USER-ONE"},
        {"role": "assistant", "content": "REPLY-ONE"},
        {"role": "user", "content": "USER-TWO"},
        {"role": "assistant", "content": "REPLY-TWO"},
    ]


def _same_output(a: str, b: str, bos: str, eos: str) -> bool:
    for msgs in (_probe_conversation(), _probe_conversation()[1:]):
        try:
            ra = render(msgs, a, bos_token=bos, eos_token=eos).text
            rb = render(msgs, b, bos_token=bos, eos_token=eos).text
        except Exception:
            return False
        if ra != rb:
            return False
    return True


def known_equivalent(jinja: str, bos_token: str = "<s>", eos_token: str = "</s>") -> str | None:
    """The registry template that renders exactly like ``jinja`` (markers aside), if any."""
    for name, tpl in TEMPLATES.items():
        if _same_output(jinja, tpl.jinja, bos_token, eos_token):
            return name
    return None


@dataclass
class TemplateChoice:
    """What :func:`apply_chat_template` set on a tokenizer."""

    name: str  # registry name, "own" (the tokenizer's marked template) or "custom"
    jinja: str
    added_tokens: list[str]
    stop_strings: list[str]


def resolve_template_text(spec: str) -> tuple[str, str]:
    """``(name, jinja)`` for a registry name, a ``.jinja`` file, or raw Jinja text."""
    if spec in TEMPLATES:
        return spec, TEMPLATES[spec].jinja
    if spec.endswith(".jinja") and Path(spec).is_file():
        return "custom", Path(spec).read_text(encoding="utf-8")
    if "{%" in spec or "{{" in spec:
        return "custom", spec
    raise TemplateError(f"unknown chat template {spec!r}; known: {', '.join(TEMPLATES)}, a .jinja file, or 'auto'")


def apply_chat_template(tokenizer: Any, spec: str = "auto", *, source: str = "tokenizer") -> TemplateChoice:
    """Give ``tokenizer`` a marked chat template and return what was chosen.

    ``auto`` keeps the tokenizer's own template when it has generation markers, swaps it for
    the registry template it renders identically to when it has none, and uses
    :data:`DEFAULT_TEMPLATE` when the tokenizer has no template. A template without markers that
    vinaforge does not know is refused: training on it would silently learn the wrong tokens.
    Special tokens a template needs (ChatML's) are added; the caller resizes the model's
    embeddings when ``added_tokens`` is not empty.
    """
    bos = getattr(tokenizer, "bos_token", None) or ""
    eos = getattr(tokenizer, "eos_token", None) or ""
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):  # several named templates: the default one is what chat uses
        own = own.get("default")
    if spec == "auto":
        if own:
            if has_generation_markers(own):
                name, jinja = "own", own
            else:
                equivalent = known_equivalent(own, bos or "<s>", eos or "</s>")
                if equivalent is None:
                    raise TemplateError(
                        f"{source}: its chat template has no {{% generation %}} markers and does not match any "
                        f"template vinaforge knows; set chat_template to one of {', '.join(TEMPLATES)} or to a "
                        ".jinja file with markers around each assistant reply and its end-of-turn token"
                    )
                name, jinja = equivalent, TEMPLATES[equivalent].jinja
        else:
            name, jinja = DEFAULT_TEMPLATE, TEMPLATES[DEFAULT_TEMPLATE].jinja
    else:
        name, jinja = resolve_template_text(spec)
        if not has_generation_markers(jinja):
            raise TemplateError(
                f"chat template {spec if name != 'custom' else '(custom)'} has no {{% generation %}} markers; "
                "assistant-only loss needs them around every assistant reply and its end-of-turn token"
            )
    template = TEMPLATES.get(name)
    added: list[str] = []
    if template and template.special_tokens:
        vocab = tokenizer.get_vocab()
        missing = [t for t in template.special_tokens if t not in vocab]
        if missing:
            tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
            added = missing
    if template and template.end_of_turn != EOS and getattr(tokenizer, "eos_token", None) != template.end_of_turn:
        # generation must stop at the end-of-turn token: make it the tokenizer's EOS
        tokenizer.eos_token = template.end_of_turn
    tokenizer.chat_template = jinja
    stops = template.stop_strings(getattr(tokenizer, "eos_token", None)) if template else [eos] if eos else []
    return TemplateChoice(name, jinja, added, stops)


def ensure_chat_template(tokenizer: Any) -> str:
    """Give a template-less tokenizer :data:`DEFAULT_TEMPLATE` before it is saved; return the template's name.

    Every model vinaforge writes carries the template it is prompted with (base models included:
    the local backend prompts them in ``vi_qa``), so transformers, vLLM and llama.cpp use the same
    format as vinaforge. A tokenizer that has a template keeps it.
    """
    own = getattr(tokenizer, "chat_template", None)
    if own:
        if isinstance(own, dict):
            own = own.get("default") or ""
        bos, eos = getattr(tokenizer, "bos_token", None) or "<s>", getattr(tokenizer, "eos_token", None) or "</s>"
        return known_equivalent(own, bos, eos) or "own"
    tokenizer.chat_template = TEMPLATES[DEFAULT_TEMPLATE].jinja
    return DEFAULT_TEMPLATE


def saved_template(model_dir: str | Path) -> tuple[str | None, str, str]:
    """``(jinja, bos, eos)`` of an HF folder, read from its files (no tokenizer load)."""
    import json

    folder = Path(model_dir)
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
    jinja = (folder / "chat_template.jinja").read_text(encoding="utf-8") if (folder / "chat_template.jinja").is_file() \
        else cfg.get("chat_template")  # fmt: skip

    def token(name: str, default: str) -> str:
        value = cfg.get(name, default)
        return value.get("content", default) if isinstance(value, dict) else (value or default)

    return jinja, token("bos_token", "<s>"), token("eos_token", "</s>")


def template_report(model_dir: str | Path) -> str:
    """Report-card section: which chat template a saved model carries and what it renders."""
    jinja, bos, eos = saved_template(model_dir)
    if not jinja:
        return "**Chat template:** none saved with the model (it is prompted in `vi_qa`).\n"
    name = known_equivalent(jinja, bos, eos) or "custom"
    marked = "with" if has_generation_markers(jinja) else "without"
    example = render([{"role": "system", "content": "Bạn là trợ lý."}, {"role": "user", "content": "Xin chào!"}],
                     jinja, bos_token=bos, eos_token=eos, add_generation_prompt=True).text  # fmt: skip
    return (f"**Chat template:** `{name}` ({marked} generation markers), saved in the model folder; a prompt "
            f"renders as:\n\n```text\n{example}\n```\n")  # fmt: skip


def assistant_token_mask(tokenizer: Any, messages: list[dict[str, Any]], template: str | None = None) -> tuple[list[int], list[int]]:
    """``(input_ids, mask)`` of a conversation: 1 on tokens inside an assistant span.

    Uses the fast tokenizer's character offsets on the rendered text, so the tokens are exactly
    those of the full conversation (no boundary effects from tokenizing parts separately).
    """
    jinja = template or tokenizer.chat_template
    rendered = render(messages, jinja, bos_token=tokenizer.bos_token or "", eos_token=tokenizer.eos_token or "")
    enc = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
    mask = []
    for start, end in enc["offset_mapping"]:
        inside = any(start < e and end > s for s, e in rendered.assistant_spans) if end > start else False
        mask.append(int(inside))
    return list(enc["input_ids"]), mask
