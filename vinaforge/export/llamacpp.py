"""llama.cpp's converter and quantizer, found or fetched, and run as subprocesses.

**The converter.** PyPI's ``gguf`` package reads and writes GGUF but has no converter; llama.cpp's
``convert_hf_to_gguf.py``, its ``conversion/`` package and its own bundled ``gguf-py`` (the
converter fails with PyPI's) ship inside the ``llama-cpp-python`` *source distribution* on PyPI.
:func:`converter_dir` finds them, in this order:

1. ``$VINAFORGE_LLAMA_CPP``: a llama.cpp checkout of your own;
2. the cache, ``$VINAFORGE_CACHE/llama.cpp-<version>`` (default ``~/.cache/vinaforge``);
3. otherwise it runs ``pip download --no-binary :all: --no-deps llama-cpp-python==<version>``
   (76 MB, once) and extracts just those three parts (2 MB) into the cache.

It always runs in a subprocess (:mod:`vinaforge.export._convert`), so the bundled ``gguf``
never meets another one in our process.

**Quantization** to k-quants (q4_k_m, q5_k_m, q6_k…) needs llama.cpp's quantizer: a
``llama-quantize`` binary on ``PATH``, or the ``llama_model_quantize`` function of the
llama-cpp-python runtime (the ``gguf`` extra). f16, bf16, q8_0 and f32 come from the converter
directly and need neither.

**Metadata** is read with the bundled gguf-py's ``GGUFReader``, also in a subprocess.

Hand-written glue: locating and running llama.cpp's own tools.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

LLAMA_CPP_PYTHON_VERSION = "0.3.36"  # the sdist whose converter we use, and the runtime we test with
CONVERTER_TYPES = ("f16", "bf16", "q8_0", "f32")
K_QUANTS = ("q2_k", "q3_k_m", "q4_0", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k")
GGUF_TYPES = CONVERTER_TYPES + K_QUANTS
_NEEDED = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")


class ExportError(RuntimeError):
    """An export step that cannot be done; the message says what is missing and how to get it."""


#: architectures whose converter reads the vocabulary from a SentencePiece ``tokenizer.model`` only
NEEDS_SENTENCEPIECE_MODEL = ("Phi3ForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM", "Gemma3ForConditionalGeneration")


def check_convertible(hf_dir: Path) -> None:
    """Refuse, before converting, what llama.cpp's converter would get wrong or fail on.

    - Phi-3 and Gemma read their vocabulary from ``tokenizer.model`` only (the converter raises
      "Missing tokenizer.model", or for Gemma 3 falls back to an unrecognised BPE pre-tokenizer);
    - Gemma is written with ``add_space_prefix = false`` (Gemma's own SentencePiece adds no dummy
      prefix), so a tokenizer whose proto adds one would encode every text's first word
      differently in the GGUF.
    """
    config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    arch = next(iter(config.get("architectures") or []), "")
    if arch not in NEEDS_SENTENCEPIECE_MODEL:
        return
    spm_file = hf_dir / "tokenizer.model"
    if not spm_file.is_file():
        raise ExportError(
            f"{hf_dir}: llama.cpp's converter reads a {arch}'s vocabulary from a SentencePiece tokenizer.model, "
            "and this folder has only tokenizer.json (a tokenizer imported from a .gguf, or saved without its "
            ".model): start from the model's own folder with its tokenizer.model, or export with gguf: []"
        )
    if arch.startswith("Gemma") and _adds_dummy_prefix(spm_file):
        raise ExportError(
            f"{hf_dir}: llama.cpp writes {arch} models without a space prefix (Gemma's tokenizer adds none), "
            "but this tokenizer.model adds one, so the GGUF would encode the first word of every text "
            "differently from Hugging Face: use the model's own Gemma tokenizer, or export with gguf: []"
        )


def _adds_dummy_prefix(spm_file: Path) -> bool:
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(spm_file.read_bytes())
    return bool(proto.normalizer_spec.add_dummy_prefix)


def cache_root() -> Path:
    return Path(os.environ.get("VINAFORGE_CACHE") or Path.home() / ".cache" / "vinaforge")


def _is_converter_dir(p: Path) -> bool:
    return (p / "convert_hf_to_gguf.py").is_file() and (p / "gguf-py" / "gguf").is_dir()


def converter_dir(download: bool = True, version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """The folder holding ``convert_hf_to_gguf.py``, ``conversion/`` and ``gguf-py/``."""
    own = os.environ.get("VINAFORGE_LLAMA_CPP")
    if own:
        p = Path(own)
        if not _is_converter_dir(p):
            raise ExportError(f"$VINAFORGE_LLAMA_CPP={p} has no convert_hf_to_gguf.py and gguf-py/")
        return p
    cached = cache_root() / f"llama.cpp-{version}"
    if _is_converter_dir(cached):
        return cached
    if not download:
        raise ExportError(f"llama.cpp's converter is not in {cached}; run `vinaforge export fetch-converter`")
    return fetch_converter(version)


def fetch_converter(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """Download the llama-cpp-python sdist with pip and keep only the converter parts, atomically."""
    from vinaforge.io import atomic_path

    target = cache_root() / f"llama.cpp-{version}"
    log.info("fetching llama.cpp's converter from the llama-cpp-python %s source distribution", version)
    with tempfile.TemporaryDirectory(prefix="vf-llamacpp-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-q",
               f"llama-cpp-python=={version}", "-d", tmp]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        archives = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if proc.returncode != 0 and not archives:
            raise ExportError(
                f"could not download llama-cpp-python=={version}'s source from PyPI "
                f"({(proc.stderr or proc.stdout).strip().splitlines()[-1:]}); set $VINAFORGE_LLAMA_CPP to a llama.cpp checkout"
            )
        with tarfile.open(archives[0]) as tar, atomic_path(target) as out:
            prefix = f"{archives[0].name.removesuffix('.tar.gz')}/vendor/llama.cpp/"
            members = [m for m in tar.getmembers() if m.name.startswith(prefix)
                       and m.name[len(prefix):].startswith(_NEEDED) and (m.isfile() or m.isdir())]  # fmt: skip
            for m in members:
                m.name = m.name[len(prefix) :]
            tar.extractall(out, members=members, filter="data")
    if not _is_converter_dir(target):
        raise ExportError(f"the llama-cpp-python {version} source has no converter where expected")
    log.info("llama.cpp converter cached in %s", target)
    return target


def convert(hf_dir: Path, out_file: Path, outtype: str = "f16") -> float:
    """HF folder -> GGUF with llama.cpp's converter; returns the seconds it took."""
    import time

    from vinaforge.io import atomic_path

    if outtype not in CONVERTER_TYPES:
        raise ExportError(f"the converter writes {', '.join(CONVERTER_TYPES)}; {outtype!r} needs quantize()")
    llama = converter_dir()
    script = Path(__file__).with_name("_convert.py")
    started = time.time()
    with atomic_path(out_file) as tmp:
        cmd = [sys.executable, str(script), str(llama), str(hf_dir), "--outtype", outtype, "--outfile", str(tmp)]
        env = dict(os.environ)
        env.pop("NO_LOCAL_GGUF", None)  # the converter must use its bundled gguf-py
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0 or not tmp.is_file():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            raise ExportError(f"llama.cpp's converter failed on {hf_dir} ({outtype}):\n{tail}")
    return round(time.time() - started, 2)


def quantizer() -> str | None:
    """``"binary"``, ``"llama_cpp"`` or None: what can make k-quants here."""
    if shutil.which("llama-quantize"):
        return "binary"
    if runtime_available():
        return "llama_cpp"
    return None


def quantize(src: Path, out_file: Path, qtype: str) -> float:
    """A k-quant (or q4_0) from an f16/f32 GGUF, with llama-quantize or the llama-cpp-python runtime."""
    import time

    from vinaforge.io import atomic_path

    how = quantizer()
    if how is None:
        raise ExportError(
            f"{qtype} needs llama.cpp's quantizer: put `llama-quantize` on PATH or install the runtime "
            f"(CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install 'vinaforge[gguf]')"
        )
    started = time.time()
    with atomic_path(out_file) as tmp:
        if how == "binary":
            proc = subprocess.run(["llama-quantize", str(src), str(tmp), qtype.upper()], capture_output=True, text=True)
            ok, detail = proc.returncode == 0, proc.stderr.strip().splitlines()[-1:] if proc.stderr else ""
        else:
            code = (
                "import sys, llama_cpp as L\n"
                "p = L.llama_model_quantize_default_params()\n"
                f"p.ftype = L.LLAMA_FTYPE_MOSTLY_{qtype.upper()}\n"
                "sys.exit(L.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), p))\n"
            )
            proc = subprocess.run([sys.executable, "-c", code, str(src), str(tmp)], capture_output=True, text=True)
            ok, detail = proc.returncode == 0, (proc.stderr or "").strip().splitlines()[-1:]
        if not ok or not tmp.is_file():
            raise ExportError(f"quantizing {src} to {qtype} failed: {detail}")
    return round(time.time() - started, 2)


def runtime_available() -> bool:
    """Whether the llama-cpp-python runtime (the ``gguf`` extra) is importable."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


_READ_METADATA = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from gguf import GGUFReader
r = GGUFReader(sys.argv[2])
out = {}
for name, f in r.fields.items():
    if name.startswith("tokenizer.ggml.") and name.endswith(("tokens", "scores", "token_type", "merges")):
        continue
    try:
        out[name] = f.contents()
    except Exception:
        pass
print(json.dumps(out, default=str))
"""


def read_metadata(gguf_file: Path) -> dict:
    """Key/value metadata of a GGUF file (vocabulary arrays left out), with the bundled gguf-py."""
    llama = converter_dir()
    proc = subprocess.run(
        [sys.executable, "-c", _READ_METADATA, str(llama / "gguf-py"), str(gguf_file)],
        capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise ExportError(f"cannot read GGUF metadata of {gguf_file}: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout)
