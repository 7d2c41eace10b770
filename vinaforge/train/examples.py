"""Training examples for continued pretraining: En<->Vi translation pairs and hybrid instruction data.

VBD-LLaMA2 trained the new (Vietnamese) latent space on En<->Vi translation before continued
pretraining; SeaLLMs mixed instruction data into pretraining with the source side masked from the
loss. A translation example is a prompt and a response; an instruction example is a conversation
(read by :mod:`vinaforge.chat` from any format it knows) rendered with a chat template of its
registry (``vi_qa``, the "### Câu hỏi / ### Trả lời" format, by default), so that CPT sees the same
text the chat model is later trained and served with. Masked tokens carry label -100; the
responses / assistant replies (and their end-of-turn token) are trained on.

The split is taken from the tokenizer's own character offsets on the *joined* text, so the tokens
are exactly those of the full example (tokenizing prompt and response separately would change how
a SentencePiece or byte-level BPE tokenizer cuts the boundary).

Hand-written: the translation template and masking rule are Vietnamese-recipe specific; chat
templates and conversation readers are vinaforge.chat's, tokenization the Hugging Face tokenizer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

IGNORE_INDEX = -100

LANGUAGE_NAMES = {"en": "English", "vi": "Tiếng Việt"}

DEFAULT_TRANSLATION_TEMPLATE = "{src_name}: {src}\n{tgt_name}:"


@dataclass(frozen=True)
class Example:
    """A prompt (maybe masked from the loss) followed by the response that is learned."""

    prompt: str
    response: str
    separator: str = " "

    @property
    def text(self) -> str:
        return self.prompt + self.separator + self.response

    @property
    def prompt_chars(self) -> int:
        """Characters of :attr:`text` that belong to the prompt.

        The separator goes with the response: SentencePiece and byte-level BPE tokenizers glue a
        space to the next word (``▁Good``), and that token is the first one of the answer.
        """
        return len(self.prompt)


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def translation_examples(
    src: str,
    tgt: str,
    src_lang: str = "en",
    tgt_lang: str = "vi",
    directions: Sequence[str] = ("forward", "backward"),
    template: str | None = None,
) -> list[Example]:
    """One pair -> a translation example per direction (``forward`` = src->tgt, ``backward`` = tgt->src)."""
    template = template or DEFAULT_TRANSLATION_TEMPLATE
    out = []
    for direction in directions:
        if direction == "forward":
            a, b, la, lb = src, tgt, src_lang, tgt_lang
        elif direction == "backward":
            a, b, la, lb = tgt, src, tgt_lang, src_lang
        else:
            raise ValueError(f"unknown translation direction {direction!r}; expected forward or backward")
        prompt = template.format(src=a, src_name=language_name(la), tgt_name=language_name(lb))
        out.append(Example(prompt=prompt, response=b))
    return out


def encode_conversation(
    tokenizer, messages: list[dict], template: str, mask_prompt: bool, add_bos: bool = False
) -> tuple[list[int], list[int]]:
    """Token ids and loss mask (1 = learned) of a conversation rendered with a chat template.

    ``template`` is a registry name or Jinja text with ``{% generation %}`` markers. The rendered
    text is tokenized whole; a token is learned when it overlaps an assistant span (the reply and
    its end-of-turn token), as transformers' ``return_assistant_tokens_mask`` decides. The document
    always ends with EOS, so packed conversations stay separated.
    """
    from vinaforge.chat.templates import render

    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("instruct sources need a fast tokenizer (character offsets for the reply mask)")
    bos = (tokenizer.bos_token or "") if add_bos else ""
    rendered = render(messages, template, bos_token=bos, eos_token=tokenizer.eos_token or "")
    enc = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    mask = []
    for start, end in enc["offset_mapping"]:
        inside = end > start and any(start < e and end > s for s, e in rendered.assistant_spans)
        mask.append(1 if inside or not mask_prompt else 0)
    if not ids or ids[-1] != tokenizer.eos_token_id:
        ids.append(tokenizer.eos_token_id)
        mask.append(1)
    return ids, mask


def encode_examples(
    tokenizer,
    examples: Sequence[Example],
    mask_prompt: bool,
    eos_id: int | None,
    bos_id: int | None = None,
) -> list[tuple[list[int], list[int]]]:
    """Token ids and loss mask (1 = learned, 0 = masked) of each example, EOS appended (learned).

    A token is part of the prompt when it starts inside the prompt's characters (a token that starts
    on the separator, like ``▁Good``, opens the response). Slow (Python) tokenizers have no offsets:
    the prompt is then tokenized on its own to find the split.
    """
    texts = [ex.text for ex in examples]
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        splits = [
            sum(1 for start, _ in offsets if start < ex.prompt_chars)
            for ex, offsets in zip(examples, enc["offset_mapping"], strict=True)
        ]
        ids_list = enc["input_ids"]
    else:
        ids_list = tokenizer(texts, add_special_tokens=False)["input_ids"]
        prompts = tokenizer([ex.prompt for ex in examples], add_special_tokens=False)["input_ids"]
        splits = [len(p) for p in prompts]
    out = []
    for ids, split in zip(ids_list, splits, strict=True):
        ids = list(ids)
        mask = [0 if mask_prompt and i < split else 1 for i in range(len(ids))]
        if bos_id is not None:
            ids.insert(0, bos_id)
            mask.insert(0, 0 if mask_prompt else 1)
        if eos_id is not None:
            ids.append(eos_id)
            mask.append(1)
        out.append((ids, mask))
    return out


def labels_from_mask(input_ids, loss_mask):
    """Labels for a causal LM: the ids themselves, -100 where the loss mask is 0 (tensor or list)."""
    try:
        import torch

        if isinstance(input_ids, torch.Tensor):
            labels = input_ids.clone()
            labels[torch.as_tensor(loss_mask, device=labels.device) == 0] = IGNORE_INDEX
            return labels
    except ImportError:  # torch is a dependency; lists still work without it
        pass
    return [i if m else IGNORE_INDEX for i, m in zip(input_ids, loss_mask, strict=True)]
