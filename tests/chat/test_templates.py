"""Chat templates on real tokenizers: every assistant turn masked with its end-of-turn token.

For every template × {extended Mistral-v0.1, Llama-2, SmolLM-135M} on a 3-turn conversation with
a system prompt: our character-span mask agrees with transformers'
``return_assistant_tokens_mask``, it covers each reply and its end-of-turn token in every turn
(not only the last), the generation prompt is a token prefix that ends exactly where the reply
starts, and the template survives ``save_pretrained`` → ``AutoTokenizer.from_pretrained``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from vinaforge.chat import (
    DEFAULT_TEMPLATE,
    TEMPLATES,
    TemplateError,
    apply_chat_template,
    assistant_token_mask,
    has_generation_markers,
    render,
)

REPO = Path(__file__).resolve().parents[2]
CONV = [
    {"role": "system", "content": "Bạn là trợ lý tiếng Việt, trả lời ngắn gọn."},
    {"role": "user", "content": "Xin chào, bạn tên gì?"},
    {"role": "assistant", "content": "Chào bạn, tôi là trợ lý ảo."},
    {"role": "user", "content": "Thủ đô của Việt Nam là thành phố nào?"},
    {"role": "assistant", "content": "Thủ đô của Việt Nam là Hà Nội."},
    {"role": "user", "content": "Còn thành phố đông dân nhất?"},
    {"role": "assistant", "content": "Thành phố Hồ Chí Minh đông dân nhất."},
]
REPLIES = [m["content"] for m in CONV if m["role"] == "assistant"]


@pytest.fixture(scope="module")
def ext_mistral_dir(tmp_path_factory) -> Path:
    from vinaforge.io import iter_texts
    from vinaforge.tokenizer.testing import extended_mistral

    texts = list(iter_texts(REPO / "examples" / "corpus" / "vi_docs.jsonl"))
    return extended_mistral(tmp_path_factory.mktemp("ext"), texts, 300, pad_to_multiple_of=1)


_CACHE: dict = {}


def _load(kind: str, ext_dir: Path, shared: Path | None):
    if kind not in _CACHE:
        _CACHE[kind] = _resolve(kind, ext_dir, shared)
    return _CACHE[kind]


def _resolve(kind: str, ext_dir: Path, shared: Path | None):
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    if kind == "mistral_ext":
        return resolve_tokenizer(ext_dir)
    if shared is None:
        pytest.skip("shared data absent")
    path = {"llama2": "tokenizers/llama2/tokenizer.model", "smollm": "tokenizers/smollm_135m"}[kind]
    return resolve_tokenizer(shared / path)


@pytest.fixture(scope="module")
def shared_or_none():
    import os

    shared = Path(os.environ.get("VINAFORGE_SHARED_DATA", REPO.parent / "shared" / "data"))
    return shared if shared.is_dir() else None


@pytest.mark.parametrize("template", sorted(TEMPLATES))
@pytest.mark.parametrize("tok_kind", ["mistral_ext", "llama2", "smollm"])
def test_template_masks_every_assistant_turn(template, tok_kind, ext_mistral_dir, shared_or_none, tmp_path):
    from transformers import AutoTokenizer

    tok = copy.deepcopy(_load(tok_kind, ext_mistral_dir, shared_or_none))
    choice = apply_chat_template(tok, template)
    assert choice.name == template and has_generation_markers(tok.chat_template)
    eot = TEMPLATES[template].end_of_turn.replace("{eos}", tok.eos_token)
    eot_id = tok.convert_tokens_to_ids(eot)
    assert eot in tok.get_vocab()

    ids, mask = assistant_token_mask(tok, CONV)
    hf = tok.apply_chat_template(CONV, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    assert ids == list(hf["input_ids"])
    assert mask == list(hf["assistant_masks"]), "our mask differs from transformers' generation-marker mask"

    # each assistant turn: its masked run decodes to the reply and ends with the end-of-turn token
    runs, current = [], []
    for tid, m in zip(ids, mask, strict=True):
        if m:
            current.append(tid)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    assert len(runs) == 3, f"expected 3 trainable runs (one per assistant turn), got {len(runs)}"
    for run, reply in zip(runs, REPLIES, strict=True):
        assert run[-1] == eot_id, "end-of-turn token must be trained"
        assert tok.decode(run, skip_special_tokens=True).strip() == reply
    masked_text = tok.decode([t for t, m in zip(ids, mask, strict=True) if m])
    for msg in CONV:
        if msg["role"] != "assistant":
            assert msg["content"] not in masked_text

    # the generation prompt ends exactly where the last reply starts
    prompt_ids = tok.apply_chat_template(CONV[:-1], tokenize=True, add_generation_prompt=True, return_dict=True)
    prompt_ids = list(prompt_ids["input_ids"])
    if (template, tok_kind) == ("llama3", "smollm"):
        # Llama-3's header ends in "\n\n", which SmolLM's byte-level BPE merges with the reply's first
        # letters ("\n" + "\nTh"): the prompt's tokens are not a prefix on that tokenizer (Llama-3's
        # own pre-tokenizer splits newlines apart). The text is still a prefix.
        assert tok.decode(ids).startswith(tok.decode(prompt_ids))
        return
    assert ids[: len(prompt_ids)] == prompt_ids
    assert mask[len(prompt_ids)] == 1 and not any(mask[len(prompt_ids) - 1 : len(prompt_ids)])

    # the template survives save -> AutoTokenizer.from_pretrained
    tok.save_pretrained(tmp_path / "saved")
    again = AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert again.chat_template == tok.chat_template
    assert again.apply_chat_template(CONV, tokenize=False) == tok.apply_chat_template(CONV, tokenize=False)


def test_chatml_adds_its_tokens_and_stops_on_im_end(ext_mistral_dir):
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    tok = resolve_tokenizer(ext_mistral_dir)
    before = len(tok)
    choice = apply_chat_template(tok, "chatml")
    assert choice.added_tokens == ["<|im_start|>", "<|im_end|>"] and len(tok) == before + 2
    assert tok.eos_token == "<|im_end|>" and "<|im_end|>" in choice.stop_strings
    pieces = tok.tokenize("<|im_start|>user\nChào<|im_end|>")
    assert pieces[0] == "<|im_start|>" and pieces[-1] == "<|im_end|>"


def test_auto_keeps_marked_swaps_known_refuses_unknown(ext_mistral_dir):
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    tok = resolve_tokenizer(ext_mistral_dir)
    tok.chat_template = None
    assert apply_chat_template(tok, "auto").name == DEFAULT_TEMPLATE
    # an unmarked copy of the Llama-2 template (as many hub models ship) is recognised and marked
    unmarked = TEMPLATES["llama2"].jinja.replace("{%- generation -%}", "").replace("{%- endgeneration -%}", "")
    tok.chat_template = unmarked
    assert apply_chat_template(tok, "auto").name == "llama2"
    assert has_generation_markers(tok.chat_template)
    tok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(TemplateError, match="no \\{% generation %\\} markers"):
        apply_chat_template(tok, "auto")
    with pytest.raises(TemplateError, match="unknown chat template"):
        apply_chat_template(tok, "alpaca-v9")
    with pytest.raises(TemplateError, match="no \\{% generation %\\} markers"):
        apply_chat_template(tok, "{{ messages[0]['content'] }}")
    marked = TEMPLATES["vicuna"].jinja
    tok.chat_template = marked
    assert apply_chat_template(tok, "auto").name == "own"


def test_vi_qa_and_vicuna_texts():
    msgs = CONV[1:3]
    assert render(msgs, "vi_qa", bos_token="<s>").text == (
        "<s>### Câu hỏi:\nXin chào, bạn tên gì?\n\n### Trả lời: Chào bạn, tôi là trợ lý ảo.</s>"
    )
    text = render(msgs[:1], "vicuna", bos_token="", add_generation_prompt=True).text
    assert text.startswith("A chat between a curious user and an artificial intelligence assistant.")
    assert text.endswith(" USER: Xin chào, bạn tên gì? ASSISTANT:")


def test_every_saved_model_carries_a_chat_template(tmp_path):
    from transformers import AutoTokenizer

    from vinaforge.model.tiny import build_tiny_model, save_model
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    tok = resolve_tokenizer("mistral-v0.1")
    assert not tok.chat_template
    model = build_tiny_model("mistral", vocab_size=len(tok), layers=1, hidden=32, heads=2)
    save_model(model, tok, tmp_path / "m")
    again = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "chat_template.jinja").is_file()
    assert again.chat_template == TEMPLATES[DEFAULT_TEMPLATE].jinja


def test_template_report_names_the_saved_template(tmp_path):
    from vinaforge.chat.templates import template_report
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    tok = resolve_tokenizer("mistral-v0.1")
    assert "none saved" in template_report(tmp_path)
    apply_chat_template(tok, "vicuna")
    tok.save_pretrained(tmp_path)
    text = template_report(tmp_path)
    assert "`vicuna` (with generation markers)" in text and "USER: Xin chào! ASSISTANT:" in text
