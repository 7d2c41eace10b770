"""A family of tiny models for merge and export tests and benchmarks, built in seconds.

``tiny_family(root, texts)`` writes, as Hugging Face folders:

- ``base``: a random tiny Mistral-architecture model on Mistral-v0.1's vocabulary;
- ``instruct``: ``base`` plus a random update, with a chat template (as a real instruct model
  is its base plus tuning);
- ``vi``: ``base`` resized to Mistral-v0.1 extended with Vietnamese tokens learnt from
  ``texts`` (real BPE merges, :func:`vinaforge.tokenizer.testing.extended_mistral`), plus its
  own random update, its rows padded to a multiple of 64 as the ``model`` stage pads them.

Every model is labelled random in ``config.json``. Hand-written test scaffolding.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def _perturb(model, seed: int, scale: float = 0.02) -> None:
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)


def tiny_family(
    root: str | Path,
    texts: Iterable[str],
    new_tokens: int = 120,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    chat_template: str = "mistral",
) -> dict[str, Path]:
    """Build base, instruct and extended-vocabulary ``vi`` models under ``root``; returns their folders."""
    import torch

    from vinaforge.chat.templates import TEMPLATES
    from vinaforge.model.load import load_tokenizer
    from vinaforge.model.tiny import build_tiny_model, save_model
    from vinaforge.tokenizer.resolve import resolve_tokenizer
    from vinaforge.tokenizer.testing import extended_mistral

    root = Path(root)
    names = ("base", "instruct", "vi", "base_tokenizer", "ext_tokenizer")
    if (root / ".complete").is_file():  # built earlier in this session (merge and export tests share it)
        return {name: root / name for name in names}
    root.mkdir(parents=True, exist_ok=True)
    base_tok = resolve_tokenizer("mistral-v0.1")
    base_tok.save_pretrained(root / "base_tokenizer")
    base_tok = load_tokenizer(str(root / "base_tokenizer"))
    ext_tok = load_tokenizer(str(extended_mistral(root / "ext_tokenizer", texts, new_tokens, pad_to_multiple_of=1)))

    def build(vocab: int, seed: int):
        return build_tiny_model("mistral", vocab_size=vocab, layers=layers, hidden=hidden, heads=heads,
                                bos_token_id=base_tok.bos_token_id, eos_token_id=base_tok.eos_token_id,
                                seed=seed)  # fmt: skip

    base = build(len(base_tok), seed=1)
    save_model(base, base_tok, root / "base")

    instruct = build(len(base_tok), seed=1)
    _perturb(instruct, seed=2)
    base_tok.chat_template = TEMPLATES[chat_template].jinja
    save_model(instruct, base_tok, root / "instruct")
    base_tok.chat_template = None

    rows = -(-len(ext_tok) // 64) * 64
    vi = build(len(base_tok), seed=1)
    vi.resize_token_embeddings(rows, mean_resizing=False)
    with torch.no_grad():  # new rows: something distinctive, so tests can tell where rows came from
        gen = torch.Generator().manual_seed(3)
        for emb in (vi.get_input_embeddings(), vi.get_output_embeddings()):
            emb.weight[len(base_tok) :] = torch.randn(rows - len(base_tok), hidden, generator=gen) * 0.05
    _perturb(vi, seed=4)
    save_model(vi, ext_tok, root / "vi")
    (root / ".complete").touch()
    return {name: root / name for name in names}


def load_tensors(folder: str | Path) -> dict:
    """Every tensor of a model folder's safetensors files, by name."""
    from safetensors.torch import load_file

    out: dict = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out
