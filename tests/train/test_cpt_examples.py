"""Masking: prompt tokens of hybrid instruction data (conversations rendered with a vinaforge.chat template)
and of masked translation examples carry label -100."""

from __future__ import annotations

import gzip
import json

import numpy as np

from vinaforge.train.config import SourceConfig
from vinaforge.train.examples import (
    IGNORE_INDEX,
    encode_conversation,
    encode_examples,
    labels_from_mask,
    translation_examples,
)
from vinaforge.train.packing import pack_source

# Instruction pairs written for these tests.
PAIRS = [
    {"prompt": "Thủ đô của Việt Nam là thành phố nào?", "response": "Thủ đô của Việt Nam là Hà Nội."},
    {
        "prompt": "Hãy kể tên hai món ăn nổi tiếng của miền Bắc.",
        "response": "Phở và bún chả là hai món rất nổi tiếng.",
    },
    {
        "prompt": "Viết một câu chào buổi sáng thân thiện.",
        "response": "Chào buổi sáng, chúc bạn một ngày thật vui!",
    },
]


def _chat(pair: dict) -> list[dict]:
    return [{"role": "user", "content": pair["prompt"]}, {"role": "assistant", "content": pair["response"]}]


def test_prompt_tokens_masked_response_tokens_learned(tokenizer):
    from vinaforge.chat import render

    for pair in PAIRS:
        ids, mask = encode_conversation(tokenizer, _chat(pair), "vi_qa", mask_prompt=True)
        labels = labels_from_mask(ids, mask)
        masked = [i for i, lab in zip(ids, labels, strict=True) if lab == IGNORE_INDEX]
        learned = [lab for lab in labels if lab != IGNORE_INDEX]
        # the Vietnamese "### Câu hỏi / ### Trả lời" format of vinaforge.chat, defined once
        assert tokenizer.decode(masked) == f"### Câu hỏi:\n{pair['prompt']}\n\n### Trả lời:"
        assert learned[-1] == tokenizer.eos_token_id  # the reply and its end-of-turn token are learned
        assert tokenizer.decode(learned[:-1]).strip() == pair["response"]
        text = render(_chat(pair), "vi_qa", bos_token="", eos_token=tokenizer.eos_token).text
        assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]


def test_every_assistant_turn_is_learned_in_a_multi_turn_conversation(tokenizer):
    msgs = [
        {"role": "system", "content": "Bạn là trợ lý."},
        *_chat(PAIRS[0]),
        *_chat(PAIRS[1]),
    ]
    ids, mask = encode_conversation(tokenizer, msgs, "vi_qa", mask_prompt=True)
    learned = tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert PAIRS[0]["response"] in learned and PAIRS[1]["response"] in learned
    assert "Bạn là trợ lý" not in learned and PAIRS[1]["prompt"] not in learned


def test_translation_examples_both_directions(tokenizer):
    exs = translation_examples("Good morning.", "Chào buổi sáng.", "en", "vi")
    assert [e.prompt for e in exs] == [
        "English: Good morning.\nTiếng Việt:",
        "Tiếng Việt: Chào buổi sáng.\nEnglish:",
    ]
    assert [e.response for e in exs] == ["Chào buổi sáng.", "Good morning."]
    (ids, mask), _ = encode_examples(tokenizer, exs, mask_prompt=False, eos_id=tokenizer.eos_token_id)
    assert all(mask)


def test_packed_instruct_source_keeps_the_mask(tmp_path, tokenizer):
    path = tmp_path / "instruct.jsonl.gz"
    sharegpt = {"conversations": [{"from": "human", "value": PAIRS[1]["prompt"]}, {"from": "gpt", "value": "Phở."}]}
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for p in [*PAIRS, {"prompt": "", "response": "trống"}, sharegpt]:
            fh.write(json.dumps(p, ensure_ascii=False) + "\n")
    src = pack_source(
        "instruct",
        SourceConfig(paths=[str(path)], kind="instruct"),
        tokenizer,
        tmp_path / "packed",
        progress=False,
    )
    assert src.meta["n_records"] == 5 and src.meta["n_docs"] == 4  # in = kept + rejected
    assert src.meta["rejected"] == {"message 0 (user) is empty": 1}
    rejected = [json.loads(line) for line in (src.path / "rejected.jsonl").read_text().splitlines()]
    assert rejected[0]["reason"] == "message 0 (user) is empty" and rejected[0]["line"] == 4
    ids, labels, _ = src.block(0, src.n_tokens)
    first = src.doc_starts[1]
    expected = encode_conversation(tokenizer, _chat(PAIRS[0]), "vi_qa", True)
    assert ids[:first].tolist() == expected[0]
    assert (labels[:first] == IGNORE_INDEX).tolist() == [m == 0 for m in expected[1]]
    assert src.meta["n_masked_tokens"] == int((labels == IGNORE_INDEX).sum()) > 0
    assert np.all(ids[np.asarray(src.doc_starts[1:]) - 1] == tokenizer.eos_token_id)


def test_masking_with_the_mistral_sentencepiece_tokenizer():
    """SentencePiece glues the separator's space to the next word (``▁Good``): that token is the answer's."""
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    tok = resolve_tokenizer("mistral-v0.1")
    ids, mask = encode_conversation(tok, _chat(PAIRS[0]), "vi_qa", True)
    assert tok.decode([i for i, m in zip(ids, mask, strict=True) if m]) == PAIRS[0]["response"] + "</s>"
    assert tok.decode([i for i, m in zip(ids, mask, strict=True) if not m]) == (
        f"### Câu hỏi:\n{PAIRS[0]['prompt']}\n\n### Trả lời:"
    )  # "▁Thủ" (the space glued to the word) opens the reply
    exs = translation_examples("Good morning.", "Chào buổi sáng.")
    for ex, (ids, mask) in zip(exs, encode_examples(tok, exs, True, tok.eos_token_id), strict=True):
        prompt = [i for i, m in zip(ids, mask, strict=True) if m == 0]
        learned = [i for i, m in zip(ids, mask, strict=True) if m]
        assert tok.decode(prompt) == ex.prompt
        assert tok.decode(learned[:-1]).strip() == ex.response and learned[-1] == tok.eos_token_id
