"""Checks every stage and command shares, so each refuses bad input the same way, in one line.

- :func:`check_output_dir`: an output folder that can be created and written (not an existing
  file, not under a read-only folder), checked before any work starts;
- :func:`check_output_file`: the same for one output file (not an existing folder, which an
  atomic write would replace);
- :func:`check_tokenizer_fits`: the tokenizer belongs to the model (no id without an embedding
  row, not a much smaller vocabulary), the check CPT and eval already made, now for every stage
  that takes a model and a tokenizer (tune, merge).

Hand-written: the rules are vinaforge's; the row counts come from transformers' models.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class InputCheckError(ValueError):
    """A path or an artifact that cannot be used as given; the message names it."""


def check_output_dir(path: str | Path, what: str = "output", option: str = "--output") -> Path:
    """``path`` as a folder this process can create or write into; raise naming it otherwise."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputCheckError(f"{what} {out}: exists and is a file, not a folder (pick another {option})")
    return _check_creatable(out, what)


def check_output_file(path: str | Path, what: str = "output", option: str = "--output") -> Path:
    """``path`` as a file this process can create or replace; an existing folder is refused."""
    out = Path(path)
    if out.is_dir():
        raise InputCheckError(f"{what} {out}: is a folder, not a file (pick another {option})")
    _check_creatable(out.parent, what, out)
    return out


def _check_creatable(out: Path, what: str, named: Path | None = None) -> Path:
    """Raise unless the nearest existing ancestor of ``out`` is a writable folder."""
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InputCheckError(f"{what} {named or out}: {probe} is a file, so the folder cannot be created")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputCheckError(f"{what} {named or out}: {probe} is not writable")
    return out


def check_tokenizer_fits(model: Any, tokenizer: Any, where: str, *, added_ids: int = 0,
                         allow_smaller: bool = False) -> None:  # fmt: skip
    """Raise unless ``tokenizer`` is ``model``'s own; ``added_ids`` are ids a chat template just added.

    The template's new tokens (ChatML's ``<|im_start|>``) may exceed the rows, since the caller
    resizes for them; any other excess means another model's tokenizer, which used to train a
    33k-row model on a 49k-token tokenizer without a word.
    """
    from vinaforge.model.resize import TokenizerMismatchError, check_vocab_fits, tokenizer_name

    rows = model.get_input_embeddings().weight.shape[0]
    try:
        check_vocab_fits(rows, len(tokenizer) - added_ids, tokenizer_name(tokenizer), allow_smaller)
    except TokenizerMismatchError as err:
        raise InputCheckError(f"{where}: {err}") from None


def check_safetensors_complete(path: str | Path, what: str = "weights") -> list[Path]:
    """Every ``*.safetensors`` file at ``path`` (a file or a folder), checked to be whole.

    ``safetensors`` checks at open time that the header is whole and that the data covers every
    tensor it declares, so this reads only the headers. A file cut short (a copy that stopped)
    used to fail deep inside mergekit or PEFT, as a traceback.
    """
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    files = [p] if p.is_file() else sorted(p.glob("*.safetensors"))
    for f in files:
        try:
            with safe_open(str(f), framework="numpy"):
                pass
        except (SafetensorError, OSError) as err:
            raise InputCheckError(f"{what} {f}: truncated or damaged safetensors file "
                                  f"({str(err).strip().splitlines()[0]})") from None  # fmt: skip
    return files
