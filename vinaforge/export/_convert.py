"""Run llama.cpp's ``convert_hf_to_gguf.py`` with its bundled gguf-py and correct token scores.

Usage (a subprocess, so the bundled ``gguf`` never meets PyPI's in our process)::

    python _convert.py LLAMA_CPP_DIR MODEL_DIR --outtype f16 --outfile model.gguf

Why the patch: for a Llama/Mistral tokenizer saved as ``tokenizer.json`` only (no
sentencepiece ``tokenizer.model`` — how transformers 5 and ``vinaforge tokenizer extend`` save
it), the converter's ``LlamaHfVocab`` gives every token the placeholder score −1000. llama.cpp's
SPM tokenizer merges by score, so with all scores equal it splits words differently from the
Hugging Face tokenizer (573 of 692 lines of our example corpus differed). We give each token the
score −(rank of the first BPE merge that produces it), which makes llama.cpp's score-ordered
merging follow the BPE merge order: all 692 lines then tokenize identically. Tokens that no
merge produces (single characters, bytes, specials) keep a very low score.

Second patch: a model whose embedding rows are padded past its tokenizer (vinaforge pads to a
multiple of 64) gets ``[PAD<i>]`` tokens of type UNUSED for those rows, as the converter's own
sentencepiece path does; without them llama.cpp refuses to load the file.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path


def _merge_ranks(tokenizer_json: Path) -> dict[int, int]:
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    vocab = data["model"].get("vocab") or {}
    ranks: dict[int, int] = {}
    for i, merge in enumerate(data["model"].get("merges") or []):
        a, b = merge.split(" ", 1) if isinstance(merge, str) else merge
        token_id = vocab.get(a + b)
        if token_id is not None and token_id not in ranks:
            ranks[token_id] = i
    return ranks


def main() -> None:
    llama_dir = Path(sys.argv[1])
    script = llama_dir / "convert_hf_to_gguf.py"
    sys.argv = [str(script), *sys.argv[2:]]
    sys.path.insert(0, str(llama_dir / "gguf-py"))
    sys.path.insert(0, str(llama_dir))
    from gguf.vocab import LlamaHfVocab

    original_init = LlamaHfVocab.__init__

    original_all_tokens = LlamaHfVocab.all_tokens

    def init(self, base_path, *args, **kwargs):
        original_init(self, base_path, *args, **kwargs)
        self._vinaforge_ranks = _merge_ranks(Path(base_path) / "tokenizer.json")
        rows = json.loads((Path(base_path) / "config.json").read_text(encoding="utf-8")).get("vocab_size") or 0
        self._vinaforge_pad = max(0, int(rows) - self.vocab_size)
        self.vocab_size += self._vinaforge_pad

    def all_tokens(self):
        from gguf import TokenType

        yield from original_all_tokens(self)
        for i in range(self._vinaforge_pad):  # embedding rows past the tokenizer (padded to a multiple)
            yield f"[PAD{i}]".encode(), -1e9, TokenType.UNUSED

    def score(self, token_id: int) -> float:
        rank = self._vinaforge_ranks.get(token_id)
        return -float(rank) if rank is not None else -1e9

    LlamaHfVocab.__init__ = init
    LlamaHfVocab.get_token_score = score
    LlamaHfVocab.all_tokens = all_tokens
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
