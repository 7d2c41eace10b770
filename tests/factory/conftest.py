"""Fixtures for the data factory: the real tiny model, and a translation-memory "model" behind a real server.

The translation memory is a :class:`vinaforge.generate.Backend` that answers a translation prompt
with the Vietnamese we wrote for each English unit (markers ⟦n⟧ placed as a good translator
would), so that the checks can pass on real Vietnamese; anything it does not know it echoes back
untranslated (which the language check must reject). It is served by
``vinaforge.generate.testserver`` (real HTTP, official openai client, fault injection).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from vinaforge.generate import Backend, Completion, SamplingParams, StreamEvent, as_request

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TM = {
    "Setup guide": "Hướng dẫn cài đặt",
    "Install it with ⟦0⟧ and open ⟦1⟧.": "Cài đặt bằng lệnh ⟦0⟧ rồi mở trang ⟦1⟧.",
    "Email ⟦0⟧ if the trip takes more than ⟦1⟧ or costs over ⟦2⟧.": "Hãy gửi thư tới ⟦0⟧ nếu chuyến đi dài hơn ⟦1⟧ hoặc tốn hơn ⟦2⟧.",
    "Hello ⟦0⟧, you have ⟦1⟧ new messages.": "Xin chào ⟦0⟧, bạn có ⟦1⟧ tin nhắn mới.",
    "How do I reverse a list in Python?": "Làm thế nào để đảo ngược một danh sách trong Python?",
    "Use slicing:": "Hãy dùng phép cắt lát:",
    "It returns a new list.": "Nó trả về một danh sách mới.",
    "Name": "Tên",
    "Speed": "Tốc độ",
    "Value": "Giá trị",
    "Write a short poem about the sea.": "Hãy viết một bài thơ ngắn về biển.",
    "The sea is blue and the waves are gentle.": "Biển xanh và sóng thật hiền hòa.",
    "What is the capital of Vietnam?": "Thủ đô của Việt Nam là gì?",
    "The capital of Vietnam is Hanoi.": "Thủ đô của Việt Nam là Hà Nội.",
    "You are a helpful assistant.": "Bạn là một trợ lý hữu ích.",
}

REVERSE = {vi: en for en, vi in TM.items()}  # back-translation of whole one-sentence messages

RECORDS = [
    {
        "id": "md",
        "messages": [
            {
                "role": "user",
                "content": "## Setup guide\n\n1. Install it with `pip install foo` and open https://example.com/docs.\n"
                "2. Email admin@example.org if the trip takes more than 5 km or costs over 20%.",
            },
            {
                "role": "assistant",
                "content": "| Name | Value |\n|---|---|\n| Speed | 10 km/h |\n\nHello {name}, you have %s new messages.",
            },
        ],
    },
    {
        "id": "code",
        "instruction": "How do I reverse a list in Python?",
        "output": "Use slicing:\n\n```python\nitems[::-1]\n```\n\nIt returns a new list.",
    },
    {
        "id": "poem",
        "conversations": [
            {"from": "system", "value": "You are a helpful assistant."},
            {"from": "human", "value": "Write a short poem about the sea."},
            {"from": "gpt", "value": "The sea is blue and the waves are gentle."},
        ],
    },
    {
        "id": "capital",
        "prompt": "What is the capital of Vietnam?",
        "response": "The capital of Vietnam is Hanoi.",
    },
    {
        "id": "unknown",
        "prompt": "Tell me a joke about cats.",
        "response": "Cats never tell jokes; they are too serious.",
    },
]


def source_of(prompt: str) -> str:
    """The text a factory translation prompt asks about (after the template's last blank line)."""
    return prompt.rsplit("\n\n", 1)[-1]


class TranslationMemory(Backend):
    name = "tm"

    def generate(self, requests: Sequence, params: SamplingParams | None = None) -> list[Completion]:
        out = []
        for i, r in enumerate(requests):
            prompt = as_request(r).messages[-1]["content"]
            src = source_of(prompt)
            text = TM.get(src) or REVERSE.get(src) or src
            c = Completion(text, "stop", len(prompt.split()), len(text.split()), request_index=i)
            self.usage.add(c)
            out.append(c)
        return out

    def stream(self, request, params=None) -> Iterator[StreamEvent]:
        c = self.generate([request], params)[0]
        words = (c.text or "").split(" ")
        for i, word in enumerate(words):  # word by word, as a real server streams
            yield StreamEvent(word if i == len(words) - 1 else word + " ")
        yield StreamEvent("", c)

    def describe(self) -> dict:
        return {"kind": "tm"}


@pytest.fixture()
def tm_server():
    from vinaforge.generate.testserver import serve_backend

    with serve_backend(TranslationMemory(), model_name="tm") as srv:
        yield srv


@pytest.fixture()
def en_data(tmp_path) -> Path:
    p = tmp_path / "en.jsonl"
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS), encoding="utf-8")
    return p


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from vinaforge.chat import apply_chat_template
    from vinaforge.model.tiny import build_tiny_model, save_model
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    tok = resolve_tokenizer("mistral-v0.1")
    apply_chat_template(tok, "mistral")
    model = build_tiny_model("mistral", vocab_size=len(tok), layers=2, hidden=64, heads=4,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, seed=0)  # fmt: skip
    out = tmp_path_factory.mktemp("tiny_chat")
    save_model(model, tok, out)
    return out
