"""Prepare what bench/gpu_check.sh needs on a GPU machine that has no network and no ../shared/data.

Writes ``bench/out/gpu_bundle/`` (git-ignored; pass it to the device run with ``carry``):

- ``wheels/``: cp312 manylinux wheels of the pure dependencies the GPU machines lack (pydantic and
  its core, xxhash, rich, ...) at the versions of this venv, installed there with ``--no-deps``
  into a separate folder; optionally bitsandbytes (``--bitsandbytes``, 43 MB) for the 8-bit checks;
- ``tokenizer/``: the Mistral-7B-v0.1 tokenizer as a HF folder (so mistral-common is not needed);
- ``text.jsonl.gz``: the Vietnamese text sample the benchmark trains on (the first ``--docs``
  articles of ../shared/data/vi_text/news_baomoi_magizbox.jsonl.gz, else the example corpus).

    .venv/bin/python bench/gpu_bundle.py [--bitsandbytes]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata as md
import itertools
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "gpu_bundle"
SHARED_TEXT = REPO.parent / "shared" / "data" / "vi_text" / "news_baomoi_magizbox.jsonl.gz"
EXAMPLE_TEXT = REPO / "examples" / "corpus" / "vi_docs.jsonl"
# distributions vinaforge.train imports that a torch + transformers + accelerate machine may lack
PACKAGES = [
    "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions",
    "xxhash", "rich", "markdown-it-py", "mdurl", "pygments", "pyyaml",
]  # fmt: skip


def download_wheels(out: Path, with_bnb: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    pins = [f"{p}=={md.version(p)}" for p in PACKAGES]
    if with_bnb:
        pins.append(f"bitsandbytes=={md.version('bitsandbytes')}")
    cmd = [
        sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
        "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_24_x86_64",
        "--platform", "any", "-d", str(out), *pins,
    ]  # fmt: skip
    subprocess.run(cmd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--bitsandbytes", action="store_true", help="also ship bitsandbytes (43 MB)")
    args = parser.parse_args()
    download_wheels(OUT / "wheels", args.bitsandbytes)
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    resolve_tokenizer("mistral-v0.1").save_pretrained(OUT / "tokenizer")
    src = SHARED_TEXT if SHARED_TEXT.is_file() else EXAMPLE_TEXT
    opener = gzip.open if src.name.endswith(".gz") else open
    with opener(src, "rt", encoding="utf-8") as fh, gzip.open(OUT / "text.jsonl.gz", "wt", encoding="utf-8") as out:
        for line in itertools.islice(fh, args.docs):
            out.write(json.dumps({"text": json.loads(line)["text"]}, ensure_ascii=False) + "\n")
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"{OUT}: {size / 2**20:.1f} MiB (text from {src})")


if __name__ == "__main__":
    main()
