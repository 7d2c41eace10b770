"""Shared fixtures of the model-family matrix (issue 21): real tokenizers, their extensions, tiny models.

Everything is built once per session and cached on the :class:`Matrix` object that the ``matrix``
fixture returns, so the suite pays for each tokenizer conversion (Llama-3's and Qwen2's 128k/152k
GGUF vocabularies take ~15 s each), each extension and each tiny model once, whichever test asks
first. A family whose data is absent skips the test that asks for it.

Families (base tokenizers, all real):

- ``llama3``, ``qwen2``, ``phi3``, ``gpt2``: llama.cpp's vocab-only GGUF files, imported by
  ``vinaforge tokenizer import-gguf`` (transformers' conversion plus vinaforge's fixes, and Phi-3's
  ``tokenizer.model`` written back; needs the ``gguf`` package);
- ``smollm``: SmolLM-135M's Hugging Face folder (GPT-2-style byte-level BPE, 49152 ids);
- ``llama2``: Llama 2's SentencePiece ``tokenizer.model`` (the Mistral-v0.1 kind: BPE + byte fallback).

Cells (family, arch, tied) pair each tokenizer with the architecture it ships with
(:data:`MODEL_CELLS`); ``docs/model.md`` says why. Use from a test module in this folder::

    def test_x(matrix):
        tok = matrix.ext_tok("qwen2")
        folder = matrix.extended_dir("qwen2", "qwen2")   # tiny model extended with --init mean
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[2]
VI_DOCS = REPO / "examples" / "corpus" / "vi_docs.jsonl"
EN_DOCS = REPO / "examples" / "corpus" / "en_docs.jsonl"

#: new tokens learnt per family for the model cells (a real extension, just a small one)
NEW_TOKENS = 256
#: tiny model shape shared by every cell (GQA: 4 query heads, 2 key/value heads; head size 16)
TINY = {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2}


@dataclass(frozen=True)
class FamilySpec:
    """Where a family's base tokenizer comes from, relative to ``shared/data/tokenizers``."""

    kind: str  # "gguf", "hf" (a folder) or "sentencepiece" (a .model file)
    path: str
    note: str


FAMILIES: dict[str, FamilySpec] = {
    "llama3": FamilySpec("gguf", "llama_cpp_vocab/ggml-vocab-llama-bpe.gguf", "Llama-3 byte-level BPE, 128k"),
    "qwen2": FamilySpec("gguf", "llama_cpp_vocab/ggml-vocab-qwen2.gguf", "Qwen2 byte-level BPE, 152k"),
    "phi3": FamilySpec("gguf", "llama_cpp_vocab/ggml-vocab-phi-3.gguf", "Phi-3 SentencePiece-style BPE, 32k"),
    "gpt2": FamilySpec("gguf", "llama_cpp_vocab/ggml-vocab-gpt-2.gguf", "GPT-2 byte-level BPE, 50k"),
    "smollm": FamilySpec("hf", "smollm_135m", "SmolLM byte-level BPE, 49k"),
    "llama2": FamilySpec("sentencepiece", "llama2/tokenizer.model", "Llama-2 SentencePiece BPE, 32k"),
}


@dataclass(frozen=True)
class ModelCell:
    family: str
    arch: str
    tied: bool
    why: str

    @property
    def id(self) -> str:
        return f"{self.family}-{self.arch}-{'tied' if self.tied else 'untied'}"


MODEL_CELLS: list[ModelCell] = [
    ModelCell("llama3", "llama", True, "Llama-3.2-1B/3B: llama architecture, tied head"),
    ModelCell("qwen2", "qwen2", True, "Qwen2.5-0.5B/1.5B: qwen2 architecture (qkv biases), tied head"),
    ModelCell("phi3", "phi3", False, "Phi-3-mini: phi3 architecture (fused qkv and gate_up), untied"),
    ModelCell("smollm", "llama", True, "SmolLM2-135M/360M: llama architecture, tied head"),
    ModelCell("llama2", "mistral", False, "Mistral-7B-v0.1 / Llama-2: same SentencePiece kind, untied"),
    ModelCell("llama2", "gemma2", True, "Gemma 2 (SentencePiece + byte fallback like Llama-2), tied"),
    ModelCell("llama2", "gemma3", True, "Gemma 3 text model, SentencePiece like Llama-2, tied"),
]


def texts_of(path: Path) -> list[str]:
    from vinaforge.io import iter_texts

    return list(iter_texts(path))


def lines_of(path: Path) -> list[str]:
    return [line.strip() for doc in texts_of(path) for line in doc.split("\n") if line.strip()]


def run_cli(args: list[str]) -> str:
    """Run a ``vinaforge`` command in process; fail the test with its output if it fails."""
    from typer.testing import CliRunner

    from vinaforge.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"vinaforge {' '.join(args)} failed:\n{result.output}"
    return result.output


def memoized(method):
    """Cache a :class:`Matrix` method's result per arguments on the instance (one per session)."""

    @functools.wraps(method)
    def wrapper(self, *args):
        key = (method.__name__, *args)
        if key not in self.cache:
            self.cache[key] = method(self, *args)
        return self.cache[key]

    return wrapper


class Matrix:
    """Lazily built, cached artefacts of the matrix; every method skips when its data is absent."""

    def __init__(self, root: Path, tokenizers: Path) -> None:
        self.root = root
        self.tokenizers = tokenizers
        self.cache: dict[tuple, object] = {}

    def source(self, family: str) -> Path:
        spec = FAMILIES[family]
        path = self.tokenizers / spec.path
        if not path.exists():
            pytest.skip(f"{family}: tokenizer data {path} is absent")
        return path

    @memoized
    def base_dir(self, family: str) -> Path:
        """The family's base tokenizer as a Hugging Face folder."""
        spec = FAMILIES[family]
        src = self.source(family)
        out = self.root / "base" / family
        if spec.kind == "hf":
            return src
        if spec.kind == "gguf":
            pytest.importorskip("gguf", reason="transformers reads .gguf vocabularies with the gguf package")
            from vinaforge.tokenizer.gguf_import import import_gguf

            # what a user gets from `vinaforge tokenizer import-gguf` or a .gguf base: transformers'
            # conversion with vinaforge's fixes, and a SentencePiece vocabulary's tokenizer.model
            import_gguf(src, out)
            return out
        else:
            from vinaforge.tokenizer.resolve import resolve_tokenizer

            tok = resolve_tokenizer(src)
        tok.save_pretrained(out)
        return out

    @memoized
    def base_tok(self, family: str):
        from vinaforge.model.load import load_tokenizer

        return load_tokenizer(str(self.base_dir(family)))

    @memoized
    def ext_dir(self, family: str) -> Path:
        """The base extended with :data:`NEW_TOKENS` tokens learnt from our Vietnamese examples.

        ``vinaforge tokenizer extend``'s own code (real BPE merges of the base), vocabulary padded to
        a multiple of 64.
        """
        from vinaforge.tokenizer.testing import extended_mistral

        base = self.base_dir(family)
        if FAMILIES[family].kind == "sentencepiece":
            base = self.source(family)  # SentencePiece bases are extended through their .model
        out = self.root / "ext" / family
        return extended_mistral(out, texts_of(VI_DOCS), NEW_TOKENS, pad_to_multiple_of=64, base=str(base))

    @memoized
    def ext_tok(self, family: str):
        from vinaforge.model.load import load_tokenizer

        return load_tokenizer(str(self.ext_dir(family)))

    @memoized
    def tiny_dir(self, family: str, arch: str, tied: bool | None = None) -> Path:
        """``vinaforge model tiny --arch ARCH`` on the family's base tokenizer (the real CLI).

        ``tied=None`` keeps the architecture's own default (qwen2 and gemma tie, the rest do not).
        """
        out = self.root / "tiny" / f"{family}-{arch}-{tied}"
        args = ["model", "tiny", "--tokenizer", str(self.base_dir(family)), "--arch", arch, "--output", str(out)]
        args += [f"--{key.replace('_', '-')}={value}" for key, value in TINY.items()]
        if tied is not None:
            args.append("--tie" if tied else "--no-tie")
        run_cli(args)
        return out

    @memoized
    def extended_dir(self, family: str, arch: str, tied: bool | None = None) -> Path:
        """``vinaforge model extend --init mean`` of :meth:`tiny_dir` to :meth:`ext_dir` (the real CLI)."""
        out = self.root / "extended" / f"{family}-{arch}-{tied}"
        run_cli(
            [
                "model",
                "extend",
                "--model",
                str(self.tiny_dir(family, arch, tied)),
                "--tokenizer",
                str(self.ext_dir(family)),
                "--output",
                str(out),
                "--init",
                "mean",
            ]
        )
        return out

    def resize_record(self, family: str, arch: str, tied: bool | None = None) -> dict:
        folder = self.extended_dir(family, arch, tied)
        return json.loads((folder / "vinaforge_resize.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def matrix(tmp_path_factory, shared_data) -> Matrix:
    """The cached family/architecture artefacts (skips without ``shared/data/tokenizers``)."""
    tokenizers = shared_data / "tokenizers"
    if not tokenizers.is_dir():
        pytest.skip(f"{tokenizers} is absent")
    return Matrix(tmp_path_factory.mktemp("matrix"), tokenizers)


@pytest.fixture(scope="session")
def vi_lines() -> list[str]:
    """Lines of our own Vietnamese example documents (the extensions learn from them)."""
    return lines_of(VI_DOCS)


@pytest.fixture(scope="session")
def en_lines() -> list[str]:
    return lines_of(EN_DOCS)
