"""Extend a ``tokenizers`` BPE ``tokenizer.json`` (GPT-2, SmolLM, Llama-3, Qwen-style byte level,
or Metaspace BPE) by appending vocabulary entries and merges.

New merges go after every base merge (so they apply last), each new token is the concatenation
of two tokens that exist before it (its bytes are buildable from the base alphabet), and new ids
start after the highest id in use, counting added tokens such as SmolLM's ``[PAD]`` at 49152.
``vocab.json``/``merges.txt`` are rewritten when the base folder has them, so no stale copy
remains.

Hand-written: ``tokenizers`` can train a BPE model but not add merges to an existing one; the
edit is a few list appends on the serialized model, validated by loading it back.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from vinaforge.tokenizer.candidates import Alphabet, NewToken
from vinaforge.tokenizer.resolve import BaseTokenizer, TokenizerError, read_tokenizer_json
from vinaforge.tokenizer.simulate import TokenizersBpe

log = logging.getLogger(__name__)

COPIED_FILES = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
)


def _component_types(section: Any) -> list[dict]:
    """Flatten a pre_tokenizer/decoder section (possibly a Sequence) into its parts."""
    if not isinstance(section, dict):
        return []
    if section.get("type") == "Sequence":
        parts = section.get("pretokenizers") or section.get("decoders") or section.get("normalizers") or []
        return [p for part in parts for p in _component_types(part)]
    return [section]


def detect_alphabet(data: dict, where: Path) -> Alphabet:
    """Byte-level or Metaspace: how the model's tokens spell a space and non-ASCII text."""
    parts = _component_types(data.get("pre_tokenizer")) + _component_types(data.get("decoder"))
    types = {p.get("type") for p in parts}
    if "ByteLevel" in types:
        return Alphabet(byte_level=True)
    for p in parts:
        if p.get("type") == "Metaspace":
            return Alphabet(byte_level=False, space=p.get("replacement", "▁"))
    normalizer = _component_types(data.get("normalizer"))
    for p in normalizer:
        if p.get("type") == "Replace" and p.get("content") == "▁":
            return Alphabet(byte_level=False)
    raise TokenizerError(
        f"{where}: unsupported BPE pre-tokenization {sorted(t for t in types if t)}; "
        "expected byte-level (GPT-2 style) or Metaspace (SentencePiece style)"
    )


def _parse_merges(raw: list) -> list[tuple[str, str]]:
    out = []
    for m in raw:
        if isinstance(m, str):
            a, _, b = m.partition(" ")
            out.append((a, b))
        else:
            out.append((m[0], m[1]))
    return out


class TokenizersBpeBase:
    """A BPE ``tokenizer.json`` base: its JSON, a replay of its encoder, and the writer."""

    family = "bpe"

    def __init__(self, base: BaseTokenizer):
        self.base = base
        self.data = read_tokenizer_json(base.model_file)
        model = self.data["model"]
        if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
            raise TokenizerError(
                f"{base.model_file}: BPE with a continuing-subword prefix or end-of-word suffix "
                "is not supported"
            )
        self.alphabet = detect_alphabet(self.data, base.model_file)
        self.merges_as_strings = bool(model["merges"]) and isinstance(model["merges"][0], str)
        self.base_merges = _parse_merges(model["merges"])
        self.vocab: dict[str, int] = dict(model["vocab"])
        self.sim = TokenizersBpe(
            self.vocab,
            self.base_merges,
            byte_fallback=bool(model.get("byte_fallback")),
            ignore_merges=bool(model.get("ignore_merges")),
        )

    @property
    def vocab_size(self) -> int:
        """Ids in use: the model vocabulary plus added tokens outside it (SmolLM's ``[PAD]``)."""
        ids = set(self.vocab.values()) | {t["id"] for t in self.data.get("added_tokens", [])}
        return max(ids) + 1

    def base_tokens(self) -> list[str]:
        inv = {i: t for t, i in self.vocab.items()}
        for t in self.data.get("added_tokens", []):
            inv.setdefault(t["id"], t["content"])
        return [inv.get(i, "") for i in range(self.vocab_size)]

    def write(self, added: list[NewToken], placeholders: list[str], out_dir: Path) -> list[str]:
        """Write the extended HF folder into ``out_dir``; returns the new tokens in id order."""
        data = json.loads(json.dumps(self.data))
        model = data["model"]
        vocab = model["vocab"]
        merges = model["merges"]
        # Added tokens outside the model vocabulary (SmolLM's [PAD] at 49152) join it at their own
        # id: the tokenizers library re-numbers such tokens after the model's last id on loading,
        # which would move them once new entries follow.
        taken = set(vocab.values())
        for t in data.get("added_tokens", []):
            if t["id"] not in taken and t["content"] not in vocab:
                vocab[t["content"]] = t["id"]
        next_id = self.vocab_size
        new_tokens: list[str] = []
        for t in added:
            if t.new_entry:
                if t.token in vocab:
                    raise TokenizerError(f"internal error: planned token {t.token!r} is already in the vocab")
                vocab[t.token] = next_id
                next_id += 1
                new_tokens.append(t.token)
            if t.left is not None and t.right is not None:
                if t.left not in vocab or t.right not in vocab:
                    raise TokenizerError(
                        f"internal error: merge {t.left!r} + {t.right!r} uses unknown tokens"
                    )
                merges.append(f"{t.left} {t.right}" if self.merges_as_strings else [t.left, t.right])
        for name in placeholders:
            vocab[name] = next_id
            next_id += 1
            new_tokens.append(name)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "tokenizer.json").write_text(
            json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        src_dir = self.base.hf_dir
        if src_dir is not None:
            for name in COPIED_FILES:
                if (src_dir / name).is_file():
                    shutil.copyfile(src_dir / name, out_dir / name)
            if (src_dir / "vocab.json").is_file():
                (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
            if (src_dir / "merges.txt").is_file():
                pairs = _parse_merges(merges)
                text = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in pairs)
                (out_dir / "merges.txt").write_text(text, encoding="utf-8")
        if not (out_dir / "tokenizer_config.json").is_file():
            cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False}
            (out_dir / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
        return new_tokens
