"""Resize a model's input embeddings and output head to an extended tokenizer, and initialise new rows.

transformers' ``resize_token_embeddings`` does the structural part (new matrices, tied weights,
``config.vocab_size``). Hand-written here is the initialisation it lacks: ``mean`` sets each new
token's row to the mean of the base model's rows for the *base tokenizer's* segmentation of that
token's text, separately for the input embeddings and the output head (one matrix when they are
tied). Each new row is its own vector mean over its own sub-tokens; VinaSmol's released code
reduced the whole selection to one scalar by mistake, and the tests check that ours does not.

``mean_resizing`` follows transformers' method (mean and covariance of the old rows, the covariance
scaled by 1e-9 as transformers does) but over the rows of the base tokenizer only and with a seeded
generator; ``random`` draws N(0, ``initializer_range``); ``zero`` sets new rows to 0 (the
control of the seeds' "init matters" claim: a zero head row gives the new token logit 0, a zero
input row carries no information until trained). Padding rows (beyond the tokenizer, up to a
multiple of ``pad_to_multiple_of``) get the mean of the base rows: never produced by the tokenizer,
but their head rows still take part in the softmax, where the mean row takes little probability.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

InitMethod = Literal["mean", "mean_resizing", "random", "zero"]
INIT_METHODS = ("mean", "mean_resizing", "random", "zero")


class TokenizerMismatchError(ValueError):
    """The tokenizer does not belong to the model, or the new tokenizer does not extend the base."""


@dataclass
class TokenSource:
    """How one new token was initialised: its text and the base ids averaged for it."""

    id: int
    token: str
    text: str
    base_ids: list[int]
    how: str  # "model-vocab", "decoded-text", "reserved" (placeholder: mean of all rows) or "fallback-mean"


@dataclass
class ResizeInfo:
    """What :func:`extend_model` did.

    ``num_base_rows`` rows (one per base-tokenizer id) keep the base model's values; they are the
    rows a ``new_embeddings`` stage freezes (pass this number to ``apply_trainable``).
    ``num_rows_before`` is the embedding matrix size before resizing (it may exceed the base
    tokenizer when the base was already padded).
    """

    num_base_rows: int
    num_base_tokens: int
    new_token_ids: list[int]
    num_rows: int
    init: str
    num_rows_before: int = 0
    tied: bool = False
    num_fallback: int = 0
    num_reserved: int = 0
    sources: list[TokenSource] = field(default_factory=list, repr=False)

    @property
    def num_new_tokens(self) -> int:
        return len(self.new_token_ids)

    @property
    def num_padding_rows(self) -> int:
        return self.num_rows - self.num_base_tokens - len(self.new_token_ids)

    def to_dict(self, with_sources: bool = False) -> dict:
        d = asdict(self)
        d.pop("sources")
        if with_sources:
            d["sources"] = [asdict(s) for s in self.sources]
        d["num_new_tokens"] = self.num_new_tokens
        d["num_padding_rows"] = self.num_padding_rows
        return d

    def summary(self) -> dict:
        """Small JSON-able record (no per-token lists) for configs and reports."""
        d = self.to_dict()
        ids = d.pop("new_token_ids")
        d["first_new_id"] = ids[0] if ids else None
        d["last_new_id"] = ids[-1] if ids else None
        return d


def tokenizer_name(tokenizer) -> str:
    return getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__


def id_to_token_table(tokenizer, n: int) -> list[str | None]:
    """Token string for each id below ``n`` (None for a hole in the id space)."""
    table: list[str | None] = [None] * n
    for tok, idx in tokenizer.get_vocab().items():
        if 0 <= idx < n:
            table[idx] = tok
    return table


def check_extends(base_tokenizer, new_tokenizer) -> None:
    """Raise unless every base id maps to the same token string in the new tokenizer."""
    n_base = len(base_tokenizer)
    n_new = len(new_tokenizer)
    if n_new < n_base:
        raise TokenizerMismatchError(
            f"new tokenizer {tokenizer_name(new_tokenizer)} has {n_new} ids, fewer than the base tokenizer "
            f"{tokenizer_name(base_tokenizer)} ({n_base}): it does not extend it"
        )
    base = id_to_token_table(base_tokenizer, n_base)
    new = id_to_token_table(new_tokenizer, n_base)
    diffs = [i for i in range(n_base) if base[i] != new[i]]
    if diffs:
        examples = ", ".join(f"id {i}: base {base[i]!r} vs new {new[i]!r}" for i in diffs[:5])
        raise TokenizerMismatchError(
            f"new tokenizer {tokenizer_name(new_tokenizer)} does not extend base tokenizer "
            f"{tokenizer_name(base_tokenizer)}: {len(diffs)} of the first {n_base} ids differ ({examples})"
        )


def vocab_slack(rows: int) -> int:
    """Embedding rows a model may have beyond its tokenizer (padding to a multiple, reserved ids).

    Published models pad by up to a few percent (Qwen2: 271 rows, DeepSeek-V2: 2.3%); a tokenizer
    that leaves more rows unused than this is not the model's own.
    """
    return max(256, math.ceil(0.03 * rows))


def check_fits_model(model, tokenizer, allow_smaller: bool = False) -> None:
    """Raise when the tokenizer does not belong to the model.

    A tokenizer with ids the model has no row for would crash (``IndexError``); one much smaller
    than the model's vocabulary silently gives a wrong figure (bits per byte, training), so it
    is refused too, unless ``allow_smaller`` says the user meant it.
    """
    rows = model.get_input_embeddings().weight.shape[0]
    check_vocab_fits(rows, len(tokenizer), tokenizer_name(tokenizer), allow_smaller)


def check_vocab_fits(rows: int, n: int, name: str, allow_smaller: bool = False) -> None:
    """:func:`check_fits_model` on counts: ``n`` tokenizer ids against ``rows`` embedding rows."""
    if n > rows:
        raise TokenizerMismatchError(
            f"tokenizer {name} has {n} ids but the model has only {rows} "
            "embedding rows: this tokenizer does not belong to this model (pass the model's own tokenizer)"
        )
    if not allow_smaller and rows - n > vocab_slack(rows):
        raise TokenizerMismatchError(
            f"tokenizer {name} has {n} ids but the model has {rows} embedding rows: "
            "it is not this model's tokenizer (use the model's own, or allow_vocab_mismatch / "
            "--allow-vocab-mismatch if you mean it)"
        )


def padded_rows(n: int, multiple: int) -> int:
    if multiple <= 1:
        return n
    return int(math.ceil(n / multiple) * multiple)


@functools.cache
def _placeholder_re() -> re.Pattern:
    from vinaforge.tokenizer.extend import PLACEHOLDER

    return re.compile(re.escape(PLACEHOLDER).replace(re.escape("{}"), r"\d+"))


def is_placeholder(token: str) -> bool:
    """A reserved slot the tokenizer extension padded its vocabulary with (not a real token).

    It gets the mean of all base rows, like a padding row: its text means nothing.
    """
    return bool(_placeholder_re().fullmatch(token))


def model_vocab(tokenizer) -> set[str]:
    """Tokens of the tokenizer's BPE/Unigram model proper (added tokens excluded)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return set(backend.get_vocab(with_added_tokens=False)) if backend is not None else set()


def base_pieces(
    base_tokenizer, new_tokenizer, token_id: int, new_model_vocab: set[str] | None = None
) -> TokenSource:
    """The base tokenizer's segmentation of one new token.

    A token of the new tokenizer's own BPE/Unigram vocabulary is written in the model's internal
    alphabet (``▁`` for SentencePiece spaces, ``Ġ`` for byte-level spaces), shared with the base
    tokenizer it extends, so the base *model* segments it directly, exactly as it would inside a
    word. Added tokens (plain-text content) and anything the base model maps to ``<unk>`` are
    decoded to text with the new tokenizer's own decoder and re-encoded by the full base tokenizer.
    """
    if new_model_vocab is None:
        new_model_vocab = model_vocab(new_tokenizer)
    token = new_tokenizer.convert_ids_to_tokens(token_id)
    if is_placeholder(token):
        return TokenSource(token_id, token, token, [], "reserved")
    text = new_tokenizer.convert_tokens_to_string([token])
    unk = base_tokenizer.unk_token_id
    base_backend = getattr(base_tokenizer, "backend_tokenizer", None)
    if base_backend is not None and token in new_model_vocab:
        ids = [t.id for t in base_backend.model.tokenize(token)]
        if ids and unk not in ids:
            return TokenSource(token_id, token, text, ids, "model-vocab")
    ids = list(base_tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []
    ids = [i for i in ids if i < len(base_tokenizer)]
    if ids and unk not in ids:
        return TokenSource(token_id, token, text, ids, "decoded-text")
    return TokenSource(token_id, token, text, [], "fallback-mean")


def new_token_sources(base_tokenizer, new_tokenizer, token_ids: list[int]) -> list[TokenSource]:
    vocab = model_vocab(new_tokenizer)
    return [base_pieces(base_tokenizer, new_tokenizer, i, vocab) for i in token_ids]


def mean_rows(base: torch.Tensor, sources: list[TokenSource]) -> torch.Tensor:
    """One row per source: the mean of ``base`` rows over its ``base_ids`` (all rows when empty)."""
    import torch

    out = torch.empty((len(sources), *base.shape[1:]), dtype=torch.float32)
    overall = base.float().mean(0)
    for k, src in enumerate(sources):
        out[k] = base[src.base_ids].float().mean(0) if src.base_ids else overall
    return out


def mean_cov_sample(base: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` rows drawn as transformers' ``mean_resizing`` does: N(mean, 1e-9 · covariance)."""
    import torch

    x = base.float()
    mu = x.mean(0)
    if x.dim() == 1:  # a bias vector: mean only
        return mu.expand(n).clone()
    centered = x - mu
    cov = centered.T @ centered / x.shape[0]
    chol, info = torch.linalg.cholesky_ex(1e-9 * cov)
    if int(info) != 0:  # not positive definite: transformers falls back to the mean too
        return mu.expand(n, -1).clone()
    z = torch.randn((n, x.shape[1]), generator=generator, dtype=torch.float32)
    return mu + z @ chol.T


def _init_matrix(
    weight: torch.Tensor,
    num_base_tokens: int,
    new_ids: list[int],
    sources: list[TokenSource],
    init: str,
    std: float,
    generator: torch.Generator,
) -> None:
    """Overwrite rows ``num_base_tokens:`` of ``weight`` in place (rows below stay untouched)."""
    import torch

    base = weight[:num_base_tokens].detach().float().clone()
    rows = weight.shape[0]
    tail = list(range(num_base_tokens, rows))
    if not tail:
        return
    if init == "mean":
        values = base.mean(0).expand(len(tail), *base.shape[1:]).clone()  # padding rows
        if new_ids:
            values[torch.tensor(new_ids) - num_base_tokens] = mean_rows(base, sources)
    elif init == "mean_resizing":
        values = mean_cov_sample(base, len(tail), generator)
    elif init == "random":
        values = torch.randn((len(tail), *base.shape[1:]), generator=generator) * std
        if base.dim() == 1:
            values.zero_()  # biases start at zero
    elif init == "zero":
        values = torch.zeros((len(tail), *base.shape[1:]))
    else:
        raise ValueError(f"unknown init method {init!r}; expected one of {', '.join(INIT_METHODS)}")
    with torch.no_grad():
        weight[num_base_tokens:] = values.to(weight.dtype)


def same_tensor(a, b) -> bool:
    return a is b or (a.data_ptr() == b.data_ptr() and a.shape == b.shape)


def is_tied(model) -> bool:
    """True when the output head is the input embedding matrix (one tensor)."""
    out_emb = model.get_output_embeddings()
    return out_emb is not None and same_tensor(out_emb.weight, model.get_input_embeddings().weight)


def untie_embeddings(model) -> None:
    """Give the head its own copy of the tied matrix and record ``tie_word_embeddings: false``.

    Only on request (``extend_model(untie=True)``, ``model extend --untie``): a tied base keeps
    one matrix through extension, CPT, LoRA, merge and export unless the user asks otherwise.
    """
    import torch

    head = model.get_output_embeddings()
    head.weight = torch.nn.Parameter(model.get_input_embeddings().weight.detach().clone())
    model.config.tie_word_embeddings = False
    model.config.get_text_config().tie_word_embeddings = False
    log.warning(
        "untied the input embeddings and the output head on request: %d more parameters, and the "
        "two matrices now train separately",
        head.weight.numel(),
    )


def extend_model(
    model: PreTrainedModel,
    base_tokenizer: PreTrainedTokenizerBase,
    new_tokenizer: PreTrainedTokenizerBase,
    init: InitMethod = "mean",
    pad_to_multiple_of: int = 64,
    seed: int = 0,
    untie: bool = False,
) -> ResizeInfo:
    """Resize ``model`` in place to ``new_tokenizer`` and initialise every row past the base tokenizer.

    Tied input/output embeddings stay one tensor (checked after the resize). ``untie=True`` gives
    the head its own copy first (logged): the base rows stay equal, but the two matrices then train
    apart and the model has ``rows x hidden`` more parameters.
    """
    import torch

    if init not in INIT_METHODS:
        raise ValueError(f"unknown init method {init!r}; expected one of {', '.join(INIT_METHODS)}")
    check_fits_model(model, base_tokenizer)
    check_extends(base_tokenizer, new_tokenizer)
    was_tied = is_tied(model)
    if untie and was_tied:
        untie_embeddings(model)
    num_base_tokens = len(base_tokenizer)
    new_ids = sorted(i for i in new_tokenizer.get_vocab().values() if i >= num_base_tokens)
    needed = max(new_ids[-1] + 1 if new_ids else 0, num_base_tokens)
    rows_before = model.get_input_embeddings().weight.shape[0]
    num_rows = max(padded_rows(needed, pad_to_multiple_of), rows_before)

    generator = torch.Generator().manual_seed(seed)
    if num_rows != rows_before:
        # the structural resize; its own init of the new rows is overwritten below
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model.resize_token_embeddings(num_rows, mean_resizing=False)
    std = float(getattr(model.config.get_text_config(), "initializer_range", 0.02))
    sources = new_token_sources(base_tokenizer, new_tokenizer, new_ids) if init == "mean" else []

    in_emb = model.get_input_embeddings()
    out_emb = model.get_output_embeddings()
    tied = out_emb is not None and same_tensor(out_emb.weight, in_emb.weight)
    if was_tied and not untie and not tied:
        raise RuntimeError(
            "resizing untied the input and output embeddings of a tied model (transformers did not "
            "re-tie them); refusing to go on with two matrices the config says are one"
        )
    _init_matrix(in_emb.weight, num_base_tokens, new_ids, sources, init, std, generator)
    if out_emb is not None and not tied:
        _init_matrix(out_emb.weight, num_base_tokens, new_ids, sources, init, std, generator)
    if out_emb is not None and getattr(out_emb, "bias", None) is not None:
        _init_matrix(out_emb.bias, num_base_tokens, new_ids, sources, init, std, generator)

    info = ResizeInfo(
        num_base_rows=num_base_tokens,
        num_base_tokens=num_base_tokens,
        new_token_ids=new_ids,
        num_rows=num_rows,
        init=init,
        num_rows_before=rows_before,
        tied=tied,
        num_fallback=sum(1 for s in sources if s.how == "fallback-mean"),
        num_reserved=sum(1 for s in sources if s.how == "reserved"),
        sources=sources,
    )
    _record(model, info)
    log.info(
        "resized embeddings %d -> %d rows (%d new tokens, %d padding rows, init=%s, %s)",
        rows_before,
        num_rows,
        info.num_new_tokens,
        info.num_padding_rows,
        init,
        "tied" if tied else "untied",
    )
    if info.num_fallback:
        log.warning("%d new tokens had no base segmentation and got the mean of all rows", info.num_fallback)
    return info


def _record(model, info: ResizeInfo) -> None:
    """Keep the resize in ``config.json`` so a later stage knows which rows are new."""
    from vinaforge.model.tiny import update_vinaforge_meta

    update_vinaforge_meta(model, resize=info.summary())


def read_resize_info(model_or_path) -> dict | None:
    """The summary written by :func:`extend_model` into the model's config, if any."""
    from vinaforge.model.tiny import vinaforge_meta

    return vinaforge_meta(model_or_path).get("resize")
