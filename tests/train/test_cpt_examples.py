"""Masking: prompt tokens of hybrid instruction (and masked translation) examples carry label -100."""

from __future__ import annotations

import gzip
import json

import numpy as np

from vinaforge.train.config import SourceConfig
from vinaforge.train.examples import (
    IGNORE_INDEX,
    encode_examples,
    instruction_example,
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


def test_prompt_tokens_masked_response_tokens_learned(tokenizer):
    examples = [instruction_example(p["prompt"], p["response"]) for p in PAIRS]
    encoded = encode_examples(tokenizer, examples, mask_prompt=True, eos_id=tokenizer.eos_token_id)
    for ex, (ids, mask) in zip(examples, encoded, strict=True):
        labels = labels_from_mask(ids, mask)
        masked = [i for i, lab in zip(ids, labels, strict=True) if lab == IGNORE_INDEX]
        learned = [lab for lab in labels if lab != IGNORE_INDEX]
        assert masked and learned
        # every prompt token is masked, every response token (and the closing EOS) is learned
        assert tokenizer.decode(masked).strip() == ex.prompt.strip()
        assert learned[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(learned[:-1]).strip() == ex.response
        assert ids == tokenizer(ex.text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


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
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for p in [*PAIRS, {"prompt": "", "response": "trống"}]:
            fh.write(json.dumps(p, ensure_ascii=False) + "\n")
    src = pack_source(
        "instruct",
        SourceConfig(paths=[str(path)], kind="instruct"),
        tokenizer,
        tmp_path / "packed",
        progress=False,
    )
    assert src.meta["n_records"] == 4 and src.meta["n_docs"] == 3
    assert src.meta["rejected"] == {"empty prompt or response": 1}
    rejected = [json.loads(line) for line in (src.path / "rejected.jsonl").read_text().splitlines()]
    assert rejected[0]["reason"] == "empty prompt or response" and rejected[0]["line"] == 4
    ids, labels, _ = src.block(0, src.n_tokens)
    first = src.doc_starts[1]
    expected = encode_examples(tokenizer, [instruction_example(**PAIRS[0])], True, tokenizer.eos_token_id)[0]
    assert ids[:first].tolist() == expected[0]
    assert (labels[:first] == IGNORE_INDEX).tolist() == [m == 0 for m in expected[1]]
    assert src.meta["n_masked_tokens"] == int((labels == IGNORE_INDEX).sum()) > 0
    assert np.all(ids[np.asarray(src.doc_starts[1:]) - 1] == tokenizer.eos_token_id)


def test_masking_with_the_mistral_sentencepiece_tokenizer():
    """SentencePiece glues the separator's space to the next word (``▁Good``): that token is the answer's."""
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    tok = resolve_tokenizer("mistral-v0.1")
    exs = [instruction_example(**PAIRS[0]), *translation_examples("Good morning.", "Chào buổi sáng.")]
    for ex, (ids, mask) in zip(exs, encode_examples(tok, exs, True, tok.eos_token_id), strict=True):
        prompt = [i for i, m in zip(ids, mask, strict=True) if m == 0]
        learned = [i for i, m in zip(ids, mask, strict=True) if m]
        assert tok.decode(prompt) == ex.prompt
        assert tok.decode(learned[:-1]).strip() == ex.response and learned[-1] == tok.eos_token_id
