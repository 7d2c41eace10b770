"""Our marked ``qwen`` and ``phi3`` templates against the official ones shipped in llama.cpp's
vocabulary files (``../shared/data/tokenizers/llama_cpp_vocab``): same text, markers aside."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from vinaforge.chat import TEMPLATES, render
from vinaforge.chat.templates import known_equivalent

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("VINAFORGE_SHARED_DATA", REPO.parent / "shared" / "data"))
VOCABS = SHARED / "tokenizers" / "llama_cpp_vocab"

SYSTEM = {"role": "system", "content": "Bạn là trợ lý tiếng Việt."}
TURNS = [
    {"role": "user", "content": "Xin chào, bạn tên gì?"},
    {"role": "assistant", "content": "Chào bạn, tôi là trợ lý ảo."},
    {"role": "user", "content": "Thủ đô của Việt Nam là gì?"},
    {"role": "assistant", "content": "Hà Nội."},
]


def official_template(name: str) -> str:
    pytest.importorskip("gguf")
    path = VOCABS / f"ggml-vocab-{name}.gguf"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return _read_template(path)


@functools.cache
def _read_template(path: Path) -> str:
    import gguf

    field = gguf.GGUFReader(path).fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def _text(messages, jinja, add_generation_prompt=False):
    return render(messages, jinja, bos_token="<s>", eos_token="</s>", add_generation_prompt=add_generation_prompt).text


@pytest.mark.parametrize("messages", [TURNS, [SYSTEM, *TURNS], TURNS[:1], [SYSTEM, *TURNS[:3]]])
@pytest.mark.parametrize("gen", [False, True])
def test_qwen_renders_like_the_official_template(messages, gen):
    official = official_template("qwen2")
    assert _text(messages, TEMPLATES["qwen"].jinja, gen) == _text(messages, official, gen)
    assert known_equivalent(official) == "qwen"  # `auto` swaps the official template for the marked one


@pytest.mark.parametrize("messages", [TURNS, TURNS[:1], TURNS[:3]])
@pytest.mark.parametrize("gen", [False, True])
def test_phi3_renders_like_the_official_template_without_a_system_message(messages, gen):
    official = official_template("phi-3")
    assert _text(messages, TEMPLATES["phi3"].jinja, gen) == _text(messages, official, gen)


def test_phi3_keeps_a_system_message_the_reference_drops():
    official = official_template("phi-3")
    ours = _text([SYSTEM, *TURNS[:1]], TEMPLATES["phi3"].jinja)
    assert "<|system|>\nBạn là trợ lý tiếng Việt.<|end|>\n" in ours
    assert SYSTEM["content"] not in _text([SYSTEM, *TURNS[:1]], official)


def llama_cpp_render(name: str, messages: list[dict[str, str]], add_assistant: bool) -> str:
    """llama.cpp's built-in renderer of a named template (``llama_chat_apply_template``)."""
    import ctypes

    llama_cpp = pytest.importorskip("llama_cpp")
    arr = (llama_cpp.llama_chat_message * len(messages))()
    keep = []
    for i, m in enumerate(messages):
        role, content = m["role"].encode(), m["content"].encode()
        keep += [role, content]
        arr[i].role, arr[i].content = role, content
    buf = ctypes.create_string_buffer(1 << 16)
    n = llama_cpp.llama_chat_apply_template(name.encode(), arr, len(messages), add_assistant, buf, len(buf))
    assert 0 < n < len(buf), f"llama.cpp does not know the template {name!r}"
    return buf.raw[:n].decode("utf-8")


CASES = {
    "ends with a reply": ([SYSTEM, *TURNS], False),
    "asks for a reply": ([SYSTEM, *TURNS[:3]], True),
    "no system": (TURNS[:3], True),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize(("ours", "theirs"), [("llama3", "llama3"), ("gemma", "gemma"), ("phi3", "phi3"),
                                              ("chatml", "chatml")])  # fmt: skip
def test_templates_render_like_llama_cpp_builtins(ours, theirs, case):
    """llama.cpp adds BOS when it tokenises, so its text has none: ours is compared with bos_token=""."""
    messages, gen = CASES[case]
    mine = render(messages, TEMPLATES[ours].jinja, bos_token="", eos_token="</s>", add_generation_prompt=gen).text
    assert mine == llama_cpp_render(theirs, messages, gen)


def test_mistral_against_mistral_common_differs_only_in_the_inst_prefix_space():
    """``mistral`` vs mistral_common's ``encode_chat_completion`` (v1, Mistral-7B-v0.1's format).

    Measured: the same text, and the same tokens except one per turn: mistral_common encodes
    each ``[INST]`` as a new SentencePiece chunk, so it starts with the dummy-prefix piece "▁["
    (733); the HF tokenizer encodes the rendered string in one go and gives "[" (28792) after
    ``<s>``/``</s>``. Pinned here so that any other divergence fails; see docs/chat.md.
    """
    pytest.importorskip("mistral_common")
    from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    from vinaforge.chat import apply_chat_template
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    kinds = {"system": SystemMessage, "user": UserMessage, "assistant": AssistantMessage}
    messages = [SYSTEM, *TURNS[:3]]
    ref = MistralTokenizer.v1().encode_chat_completion(
        ChatCompletionRequest(messages=[kinds[m["role"]](content=m["content"]) for m in messages]))
    tok = resolve_tokenizer("mistral-v0.1")
    apply_chat_template(tok, "mistral")
    ours = list(tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                        return_dict=True)["input_ids"])  # fmt: skip
    assert len(ours) == len(ref.tokens)
    diffs = {(a, b) for a, b in zip(ours, ref.tokens, strict=True) if a != b}
    assert diffs == {(28792, 733)}
    assert sum(a != b for a, b in zip(ours, ref.tokens, strict=True)) == sum(m["role"] == "user" for m in messages)
    assert tok.decode(ref.tokens) == tok.decode(ours).replace("[INST]", " [INST]")  # the one space


LLAMA2_MODEL = SHARED / "tokenizers" / "llama2" / "tokenizer.model"


def meta_llama2_tokens(sp, dialog: list[dict[str, str]]) -> list[int]:
    """Meta's own Llama-2 chat format: ``chat_completion`` in facebookresearch/llama's
    ``llama/generation.py``, which encodes each (user, reply) pair as its own SentencePiece chunk
    with BOS and EOS, and the last user turn with BOS only."""
    b_inst, e_inst, b_sys, e_sys = "[INST]", "[/INST]", "<<SYS>>\n", "\n<</SYS>>\n\n"
    if dialog[0]["role"] == "system":
        first = {"role": dialog[1]["role"], "content": b_sys + dialog[0]["content"] + e_sys + dialog[1]["content"]}
        dialog = [first, *dialog[2:]]
    out: list[int] = []
    for prompt, answer in zip(dialog[::2], dialog[1::2], strict=False):
        text = f"{b_inst} {prompt['content'].strip()} {e_inst} {answer['content'].strip()} "
        out += [sp.bos_id(), *sp.encode(text), sp.eos_id()]
    if dialog[-1]["role"] == "user":
        out += [sp.bos_id(), *sp.encode(f"{b_inst} {dialog[-1]['content'].strip()} {e_inst}")]
    return out


@pytest.mark.parametrize("messages", [[SYSTEM, *TURNS[:3]], TURNS[:3], TURNS, [SYSTEM, *TURNS]])
def test_llama2_against_metas_format_differs_only_in_the_inst_prefix_space(messages):
    """``llama2`` vs Meta's reference on the Llama-2 tokenizer: the same text, and the same tokens
    except the first of each ``[INST]``. Meta encodes each turn as a new SentencePiece chunk, so it
    starts with the dummy-prefix piece "▁[" (518); transformers encodes the rendered string in one
    go and gives "[" (29961) after ``<s>``. The same difference as ``mistral`` against
    mistral_common, pinned so that any other divergence fails; see docs/chat.md."""
    if not LLAMA2_MODEL.is_file():
        pytest.skip(f"{LLAMA2_MODEL} is absent")
    import sentencepiece as spm

    from vinaforge.chat import apply_chat_template
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    ref = meta_llama2_tokens(spm.SentencePieceProcessor(model_file=str(LLAMA2_MODEL)), messages)
    tok = resolve_tokenizer(LLAMA2_MODEL)
    apply_chat_template(tok, "llama2")
    ours = list(tok.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
    assert len(ours) == len(ref)
    diffs = [(a, b) for a, b in zip(ours, ref, strict=True) if a != b]
    assert set(diffs) == {(29961, 518)} and len(diffs) == sum(m["role"] == "user" for m in messages)


def fastchat_prompt(name: str, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    """FastChat's own rendering (``fastchat.conversation.get_conv_template(name).get_prompt()``)."""
    conversation = pytest.importorskip("fastchat.conversation")
    conv = conversation.get_conv_template(name)
    user, assistant = conv.roles
    for m in messages:
        if m["role"] == "system":
            conv.set_system_message(m["content"])
        else:
            conv.append_message(user if m["role"] == "user" else assistant, m["content"])
    if add_generation_prompt:
        conv.append_message(assistant, None)
    return conv.get_prompt()


@pytest.mark.parametrize("case", sorted(CASES))
def test_vicuna_renders_like_fastchats_vicuna_v1_1(case):
    """``vicuna`` vs FastChat's ``vicuna_v1.1`` (the format VBD-LLaMA2-Chat uses), with its default
    system prompt when the conversation has none. FastChat's text has no BOS: its tokenizer adds it."""
    messages, gen = CASES[case]
    mine = render(messages, TEMPLATES["vicuna"].jinja, bos_token="<s>", eos_token="</s>", add_generation_prompt=gen).text
    assert mine == "<s>" + fastchat_prompt("vicuna_v1.1", messages, gen)
