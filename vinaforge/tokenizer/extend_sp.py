"""Extend a SentencePiece BPE model (Llama-2, Mistral v0.1, Gemma-style) by editing its proto.

New pieces are appended as ``NORMAL`` pieces after the last id, with scores below every finite
base score (whitespace-only pieces keep their -1e9), so the base's merges always run first and
every original id keeps its piece. The Hugging Face folder holds the edited ``tokenizer.model``
(the "slow" SentencePiece form), a ``tokenizer.json`` that transformers converts from it (vocab
plus merges ordered by id, which is score order here), and a ``tokenizer_config.json``.

Hand-written: sentencepiece can train but not extend a model; the proto edit is ours, the
conversion to ``tokenizer.json`` is transformers' own.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from vinaforge.tokenizer.candidates import Alphabet, NewToken
from vinaforge.tokenizer.resolve import (
    SENTENCEPIECE_TOKENIZER_CONFIG,
    BaseTokenizer,
    TokenizerError,
    check_sentencepiece,
    load_sentencepiece_as_hf,
    sentencepiece_model_type,
)
from vinaforge.tokenizer.simulate import SentencePieceBpe

log = logging.getLogger(__name__)

NORMAL, USER_DEFINED, UNUSED = 1, 4, 5
#: Files of a base HF folder copied as they are (ids do not change, so they stay valid).
COPIED_FILES = ("special_tokens_map.json", "chat_template.jinja", "chat_template.json")
#: tokenizer.json parts that say how text is read (and its added tokens, whose ids do not change),
#: kept from the base's own tokenizer.json.
TEXT_HANDLING_KEYS = ("added_tokens", "normalizer", "pre_tokenizer", "decoder", "post_processor")
#: tokenizer_config.json keys that point at files or are written fresh.
DROPPED_CONFIG_KEYS = ("tokenizer_file", "vocab_file", "auto_map", "name_or_path")


class SentencePieceBase:
    """A SentencePiece BPE base: its proto, a replay of its encoder, and the writer."""

    family = "sentencepiece"

    def __init__(self, base: BaseTokenizer):
        self.base = base
        self.proto = check_sentencepiece(base.model_file)
        kind = sentencepiece_model_type(self.proto)
        if kind != "BPE":
            raise TokenizerError(
                f"{base.model_file}: SentencePiece {kind} model; only BPE models can be extended "
                "(a unigram model scores whole segmentations, so new pieces cannot be appended safely)"
            )
        tj = base.hf_dir / "tokenizer.json" if base.hf_dir is not None else None
        # the base folder's own tokenizer.json, if any: its ids after the pieces, its text handling
        self.base_json = json.loads(tj.read_text(encoding="utf-8")) if tj is not None and tj.is_file() else None
        self._append_added_tokens()
        scores = {p.piece: p.score for p in self.proto.pieces if p.type == NORMAL}
        self.sim = SentencePieceBpe(scores)
        self.alphabet = Alphabet(byte_level=False)

    def _append_added_tokens(self) -> None:
        """Give the proto every id the HF folder has after its last piece, so new pieces come after
        them: Phi-3's 11 chat tokens after its 32,000 pieces (``USER_DEFINED``: matched whole in
        text, as HF's added tokens are), and the padding entries a GGUF vocabulary carries up to
        the model's rows (``UNUSED``: never produced). Without this the first new piece took id
        32,000, ``<|endoftext|>``'s.
        """
        data = self.base_json
        if data is None:
            return
        n = len(self.proto.pieces)
        added = {t["id"]: t["content"] for t in data.get("added_tokens", []) if t["id"] >= n}
        vocab = {i: tok for tok, i in (data.get("model", {}).get("vocab") or {}).items() if i >= n}
        ids = sorted(set(added) | set(vocab))
        if ids != list(range(n, n + len(ids))):
            raise TokenizerError(
                f"{self.base.hf_dir / 'tokenizer.json'}: the ids after the {n:,} SentencePiece pieces are not "
                f"consecutive from {n} ({ids[:8]}...), so new pieces cannot be appended without moving one"
            )
        for i in ids:
            piece = self.proto.pieces.add()
            piece.piece, piece.score = added.get(i, vocab.get(i)), 0.0
            piece.type = USER_DEFINED if i in added else UNUSED
        if ids:
            log.info("kept the %d ids after the SentencePiece pieces in place (%d-%d: %d added tokens)",
                     len(ids), n, ids[-1], len(added))  # fmt: skip

    def _keep_text_handling(self, out_json: Path) -> None:
        """The base's own added tokens, normalizer, pre-tokenizer, decoder and post-processor, when
        its folder has a ``tokenizer.json``: the extension adds pieces, not a new way to read text.
        transformers' conversion of the proto would otherwise split added tokens after putting the
        dummy prefix first (Phi-3's ``<|user|>`` became "▁" + ``<|user|>``)."""
        if self.base_json is None:
            return
        data = json.loads(out_json.read_text(encoding="utf-8"))
        for key in TEXT_HANDLING_KEYS:
            data[key] = self.base_json.get(key)
        out_json.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    @property
    def vocab_size(self) -> int:
        return len(self.proto.pieces)

    def base_tokens(self) -> list[str]:
        return [p.piece for p in self.proto.pieces]

    def tokenizer_config(self) -> dict[str, Any]:
        """The base folder's tokenizer_config.json (minus file pointers), or the Llama default."""
        if self.base.hf_dir is not None and (self.base.hf_dir / "tokenizer_config.json").is_file():
            cfg = json.loads((self.base.hf_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
            for key in DROPPED_CONFIG_KEYS:
                cfg.pop(key, None)
            cfg.setdefault("tokenizer_class", "LlamaTokenizer")
            return cfg
        return dict(SENTENCEPIECE_TOKENIZER_CONFIG)

    def write(self, added: list[NewToken], placeholders: list[str], out_dir: Path) -> list[str]:
        """Write the extended HF folder into ``out_dir``; returns the new pieces in id order."""
        proto = type(self.proto)()
        proto.CopyFrom(self.proto)
        new_pieces: list[str] = []
        for t in added:
            if not t.new_entry:
                continue
            piece = proto.pieces.add()
            piece.piece = t.token
            piece.score = self.sim.score_of(t.token)
            piece.type = NORMAL
            new_pieces.append(t.token)
        score = self.sim.next_score
        for name in placeholders:
            piece = proto.pieces.add()
            piece.piece = name
            piece.score = score
            piece.type = UNUSED
            score -= 1.0
            new_pieces.append(name)
        out_dir.mkdir(parents=True, exist_ok=True)
        model_file = out_dir / "tokenizer.model"
        model_file.write_bytes(proto.SerializeToString())
        check_sentencepiece(model_file)
        cfg = self.tokenizer_config()
        tok = load_sentencepiece_as_hf(model_file, cfg)
        tok.backend_tokenizer.save(str(out_dir / "tokenizer.json"))
        self._keep_text_handling(out_dir / "tokenizer.json")
        (out_dir / "tokenizer_config.json").write_text(
            json.dumps(cfg, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        if self.base.hf_dir is not None:
            for name in COPIED_FILES:
                src = self.base.hf_dir / name
                if src.is_file():
                    shutil.copyfile(src, out_dir / name)
        return new_pieces
