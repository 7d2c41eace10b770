"""Issue 21 matrix, cells 2 and 3: tiny models per architecture, ``model extend --init mean``, tied CPT.

One test per (family, architecture, check) on real tokenizers (``tests/matrix/conftest.py``); the
models are random and tiny, so these prove mechanics (shapes, tying, which rows move), not quality.
"""

from __future__ import annotations

import json
import logging
import math
import re

import pytest
import torch

from .conftest import MODEL_CELLS, TINY, VI_DOCS, ModelCell

torch.set_num_threads(1)

TIED_CELLS = [c for c in MODEL_CELLS if c.tied]
GEMMA_CELLS = [c for c in MODEL_CELLS if c.arch.startswith("gemma")]
MODEL_CLASS = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gemma3": "Gemma3ForCausalLM",
    "phi3": "Phi3ForCausalLM",
}


def cell_params(cells: list[ModelCell]):
    return [pytest.param(c, id=c.id) for c in cells]


def load(folder):
    from vinaforge.model.load import load_causal_lm

    return load_causal_lm(str(folder), dtype="float32")


def tied_in(model) -> bool:
    from vinaforge.model.resize import is_tied

    return is_tied(model)


def saved_tensor_names(folder) -> set[str]:
    from safetensors import safe_open

    names: set[str] = set()
    for f in folder.glob("*.safetensors"):
        with safe_open(str(f), framework="pt") as fh:
            names.update(fh.keys())
    return names


def sources(folder) -> list[dict]:
    lines = (folder / "vinaforge_new_tokens.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def batch_with_new_tokens(tok, n_base: int) -> torch.Tensor:
    from vinaforge.io import iter_texts

    text = " ".join(list(iter_texts(VI_DOCS))[:2])
    ids = tok(text, return_tensors="pt")["input_ids"][:, :48]
    assert int((ids >= n_base).sum()) > 0
    return ids


# --- cell 2: model tiny --arch X -------------------------------------------------------------------


@pytest.mark.parametrize("cell", cell_params(MODEL_CELLS))
def test_tiny_model_per_architecture(matrix, cell):
    """``model tiny --arch`` builds the family's own architecture, sized to the tokenizer."""
    tok = matrix.base_tok(cell.family)
    folder = matrix.tiny_dir(cell.family, cell.arch, cell.tied)
    model = load(folder)
    cfg = model.config
    assert type(model).__name__ == MODEL_CLASS[cell.arch]
    assert cfg.vocab_size == len(tok) == model.get_input_embeddings().weight.shape[0]
    assert cfg.tie_word_embeddings is cell.tied and tied_in(model) is cell.tied
    assert cfg.vinaforge["random_init"] is True
    assert (cfg.eos_token_id, cfg.bos_token_id) == (tok.eos_token_id, tok.bos_token_id)
    names = {n for n, _ in model.named_parameters()}
    if cell.arch == "phi3":  # fused projections
        assert any(n.endswith("qkv_proj.weight") for n in names)
        assert any(n.endswith("gate_up_proj.weight") for n in names)
    if cell.arch == "qwen2":  # Qwen2's q/k/v biases
        assert any(n.endswith("q_proj.bias") for n in names)
    if cell.arch.startswith("gemma"):
        assert float(model.get_input_embeddings().embed_scale) == pytest.approx(math.sqrt(TINY["hidden"]))
    if cell.arch == "gemma2":
        assert cfg.final_logit_softcapping == 30.0 and cfg.attn_logit_softcapping == 50.0
    ids = tok("Xin chào Việt Nam", return_tensors="pt")["input_ids"]
    assert model(ids).logits.shape == (1, ids.shape[1], len(tok))


def _join_pieces(pieces: list[str]) -> str:
    """The pieces' text, with SentencePiece byte-fallback pieces (``<0xE1>``) turned back into bytes."""
    out, pending = [], bytearray()
    for piece in pieces:
        match = re.fullmatch(r"<0x([0-9A-F]{2})>", piece)
        if match:
            pending.append(int(match.group(1), 16))
            continue
        if pending:
            out.append(pending.decode("utf-8"))
            pending = bytearray()
        out.append(piece)
    if pending:
        out.append(pending.decode("utf-8"))
    return "".join(out)


# --- cell 2: model extend --init mean --------------------------------------------------------------


@pytest.mark.parametrize("cell", cell_params(MODEL_CELLS))
def test_extend_mean_rows_and_reload(matrix, cell):
    """New rows are the mean of their base sub-tokens (input and head); base rows bit-identical."""
    base_tok = matrix.base_tok(cell.family)
    ext_tok = matrix.ext_tok(cell.family)
    before = load(matrix.tiny_dir(cell.family, cell.arch, cell.tied))
    folder = matrix.extended_dir(cell.family, cell.arch, cell.tied)
    after = load(folder)  # AutoModelForCausalLM.from_pretrained
    record = matrix.resize_record(cell.family, cell.arch, cell.tied)

    n_base, n_new = len(base_tok), len(ext_tok)
    rows = after.get_input_embeddings().weight.shape[0]
    assert after.config.vocab_size == rows == record["num_rows"] >= n_new and rows % 64 == 0
    assert record["num_new_tokens"] + n_base + record["num_padding_rows"] == rows
    assert record["tied"] is cell.tied and record["num_fallback"] == 0

    pairs = [(before.get_input_embeddings().weight, after.get_input_embeddings().weight)]
    if not cell.tied:
        pairs.append((before.get_output_embeddings().weight, after.get_output_embeddings().weight))
    srcs = sources(folder)
    assert len(srcs) == n_new - n_base == record["num_new_tokens"]
    for src in srcs:  # the recorded pieces really are the base's segmentation of the new token
        pieces = base_tok.convert_ids_to_tokens(src["base_ids"])
        if src["how"] == "model-vocab":
            assert _join_pieces(pieces) == src["token"], src
        else:
            assert src["how"] == "decoded-text" and base_tok.decode(src["base_ids"]) == src["text"], src
    for old, new in pairs:
        assert torch.equal(new[:n_base], old[:n_base])
        expected = torch.stack([old[s["base_ids"]].mean(0) for s in srcs])
        got = new[[s["id"] for s in srcs]]
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(new[n_new:], old.mean(0).expand(rows - n_new, -1), rtol=0, atol=1e-6)
    ids = batch_with_new_tokens(ext_tok, n_base)  # Vietnamese text that uses new tokens
    assert after(ids).logits.shape[-1] == rows


@pytest.mark.parametrize("cell", cell_params(TIED_CELLS))
def test_extend_keeps_tied_weights_tied(matrix, cell):
    """Tied stays tied: in memory after ``extend_model``, in the saved file and after reloading."""
    from vinaforge.model.resize import extend_model

    model = load(matrix.tiny_dir(cell.family, cell.arch, cell.tied))
    info = extend_model(model, matrix.base_tok(cell.family), matrix.ext_tok(cell.family), init="mean")
    assert info.tied and tied_in(model) and model.config.tie_word_embeddings
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight

    folder = matrix.extended_dir(cell.family, cell.arch, cell.tied)
    names = saved_tensor_names(folder)
    emb_names = {n for n in names if n.endswith("embed_tokens.weight") or n.endswith("lm_head.weight")}
    assert len(emb_names) == 1, emb_names  # one tensor on disk
    reloaded = load(folder)
    assert tied_in(reloaded) and reloaded.config.tie_word_embeddings


def test_untie_only_on_request_with_a_message(matrix, caplog):
    """``extend_model(untie=True)`` (``model extend --untie``): two equal matrices, logged, kept on reload."""
    from vinaforge.model.resize import extend_model
    from vinaforge.model.tiny import save_model

    family, arch = "smollm", "llama"
    model = load(matrix.tiny_dir(family, arch, True))
    with caplog.at_level(logging.WARNING, logger="vinaforge.model.resize"):
        info = extend_model(model, matrix.base_tok(family), matrix.ext_tok(family), untie=True)
    assert "untied the input embeddings and the output head on request" in caplog.text
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert not info.tied and not tied_in(model) and model.config.tie_word_embeddings is False
    assert torch.equal(emb, head)  # same values, two tensors
    out = matrix.root / "untied"
    save_model(model, matrix.ext_tok(family), out)
    reloaded = load(out)
    assert not tied_in(reloaded)
    assert torch.equal(reloaded.get_output_embeddings().weight, head)


@pytest.mark.parametrize("cell", cell_params(GEMMA_CELLS))
def test_gemma_embedding_scale_respected(matrix, cell):
    """Mean init in raw-row space is right under Gemma's constant sqrt(hidden) scale, applied once."""
    base_tok = matrix.base_tok(cell.family)
    folder = matrix.extended_dir(cell.family, cell.arch, cell.tied)
    model = load(folder)
    emb = model.get_input_embeddings()
    assert type(emb).__name__.endswith("ScaledWordEmbedding")  # resize kept the module
    scale = math.sqrt(TINY["hidden"])
    assert float(emb.embed_scale) == pytest.approx(scale)  # not scale**2: nothing double-applies it
    src = next(s for s in sources(folder) if len(s["base_ids"]) > 1)
    with torch.no_grad():
        looked_up = emb(torch.tensor([src["id"]]))[0]  # what the decoder sees for the new token
        pieces = emb(torch.tensor(src["base_ids"])).mean(0)  # the mean of what it sees for the pieces
        raw = emb.weight[src["id"]]
    torch.testing.assert_close(looked_up, pieces, rtol=0, atol=1e-5)
    torch.testing.assert_close(looked_up, raw * scale, rtol=0, atol=1e-5)
    if cell.arch == "gemma2":  # final logit soft-capping still bounds the logits after the resize
        ids = torch.tensor([[base_tok.bos_token_id, src["id"], src["id"]]])
        with torch.no_grad():
            emb.weight.mul_(50.0)  # push the logits far past the cap
            logits = model(ids).logits
        assert float(logits.abs().max()) <= model.config.final_logit_softcapping


# --- cell 3: CPT under tied weights ---------------------------------------------------------------


def cpt_config(model_dir, trainable: str, steps: int = 2, **phase) -> dict:
    return {
        "model": str(model_dir),
        "data": {"sources": {"vi": {"paths": [str(VI_DOCS)]}}},
        "phases": [{"name": "p", "trainable": trainable, "max_steps": steps, "lr": 1e-2, **phase}],
        "seq_len": 32,
        "micro_batch_size": 2,
        "grad_accum": 1,
        "eval_every": 100,
        "save_every": 100,
        "report_to": [],
        "progress": False,
        "seed": 0,
        "cpu_threads": 1,
    }


def run_cpt(matrix, folder, trainable: str, name: str, **phase):
    from vinaforge.train.config import CptConfig
    from vinaforge.train.engine import train_cpt

    out = matrix.root / "cpt" / name
    train_cpt(CptConfig.model_validate(cpt_config(folder, trainable, **phase)), out)
    return load(out / "final")


@pytest.mark.parametrize("cell", cell_params([c for c in TIED_CELLS if c.arch != "gemma3"]))
def test_cpt_new_embeddings_under_tied_weights(matrix, cell):
    """``trainable: new_embeddings``: only new rows move, in the one tied matrix; the rest bit-exact."""
    folder = matrix.extended_dir(cell.family, cell.arch, cell.tied)
    n_base = len(matrix.base_tok(cell.family))
    before = load(folder)
    after = run_cpt(matrix, folder, "new_embeddings", f"new-{cell.id}")
    assert tied_in(after) and after.config.tie_word_embeddings
    assert len([n for n in saved_tensor_names(matrix.root / "cpt" / f"new-{cell.id}" / "final")
                if n.endswith(("embed_tokens.weight", "lm_head.weight"))]) == 1
    old, new = before.get_input_embeddings().weight, after.get_input_embeddings().weight
    assert torch.equal(new[:n_base], old[:n_base])  # bit-exact, weight decay undone
    moved = (new[n_base:] != old[n_base:]).any(dim=1)
    assert bool(moved.all()), f"{int((~moved).sum())} new rows did not move"
    emb_ptr = after.get_input_embeddings().weight
    for (name, p), (_, q) in zip(after.named_parameters(), before.named_parameters(), strict=True):
        if p is not emb_ptr:
            assert torch.equal(p, q), f"{name} changed"


def test_tied_gradient_comes_from_both_uses(matrix):
    """The one tied tensor's gradient = input-side + head-side gradients; base rows masked; restored."""
    from vinaforge.model.trainable import apply_trainable

    family, arch = "qwen2", "qwen2"
    n_base = len(matrix.base_tok(family))
    ids = batch_with_new_tokens(matrix.ext_tok(family), n_base)
    tied = load(matrix.extended_dir(family, arch, True))
    untied = load(matrix.extended_dir(family, arch, True))
    untied.get_output_embeddings().weight = torch.nn.Parameter(untied.get_input_embeddings().weight.clone())
    assert tied_in(tied) and not tied_in(untied)

    state = apply_trainable(tied, "new_embeddings")
    assert state.summary()["trainable_params"] == (tied.config.vocab_size - n_base) * TINY["hidden"]
    tied(ids, labels=ids).loss.backward()
    untied(ids, labels=ids).loss.backward()
    g_in = untied.get_input_embeddings().weight.grad
    g_out = untied.get_output_embeddings().weight.grad
    g = tied.get_input_embeddings().weight.grad
    # a token's input row only gets gradient where a later position is predicted from it
    used_new = sorted({int(i) for i in ids[0, :-1] if i >= n_base})
    assert used_new and g_in[used_new].abs().sum(1).min() > 0 and g_out[used_new].abs().sum(1).min() > 0
    torch.testing.assert_close(g[n_base:], (g_in + g_out)[n_base:], rtol=1e-4, atol=1e-7)
    assert not g[:n_base].any()  # masked

    weight = tied.get_input_embeddings().weight
    saved = weight.detach()[:n_base].clone()
    opt = torch.optim.AdamW(state.param_groups(weight_decay=0.1), lr=1e-2)
    opt.step()
    assert not torch.equal(weight[:n_base], saved)  # decoupled weight decay shrank the base rows...
    state.after_optimizer_step()
    assert torch.equal(weight[:n_base], saved)  # ...and the restore puts them back bit-exactly
    assert tied.get_output_embeddings().weight is weight


def test_cpt_embeddings_and_lm_head_under_tied_weights(matrix):
    """``embeddings+lm_head`` on a tied model trains the one matrix (counted once), still tied after."""
    from vinaforge.model.trainable import apply_trainable

    family, arch = "smollm", "llama"
    folder = matrix.extended_dir(family, arch, True)
    model = load(folder)
    state = apply_trainable(model, "embeddings+lm_head")
    assert state.summary()["trainable_params"] == model.get_input_embeddings().weight.numel()
    before = load(folder)
    after = run_cpt(matrix, folder, "embeddings+lm_head", "emb-head-smollm")
    assert tied_in(after)
    emb = after.get_input_embeddings().weight
    assert not torch.equal(emb, before.get_input_embeddings().weight)
    for (name, p), (_, q) in zip(after.named_parameters(), before.named_parameters(), strict=True):
        if p is not emb:
            assert torch.equal(p, q), f"{name} changed"


def test_lora_with_new_rows_under_tied_weights(matrix):
    """``lora`` (embeddings: new_rows) on a tied model: merged, new rows moved, base rows kept, tied."""
    family, arch = "qwen2", "qwen2"
    folder = matrix.extended_dir(family, arch, True)
    n_base = len(matrix.base_tok(family))
    before = load(folder)
    after = run_cpt(matrix, folder, "lora", "lora-qwen2", lora={"r": 4, "alpha": 8, "embeddings": "new_rows"})
    assert type(after).__name__ == "Qwen2ForCausalLM" and tied_in(after)
    old, new = before.get_input_embeddings().weight, after.get_input_embeddings().weight
    assert torch.equal(new[:n_base], old[:n_base])
    assert bool((new[n_base:] != old[n_base:]).any(dim=1).all())
    layer = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(dict(after.named_parameters())[layer], dict(before.named_parameters())[layer])


def test_sentencepiece_model_travels_with_the_model(matrix):
    """``model extend`` keeps the extended ``tokenizer.model`` (llama.cpp's Gemma/Phi-3 converters read
    only that file); byte-level families have none to keep."""
    from vinaforge.model.load import load_tokenizer, sentencepiece_matches

    spm_folder = matrix.extended_dir("llama2", "mistral", False)
    assert (spm_folder / "tokenizer.model").is_file()
    assert sentencepiece_matches(spm_folder / "tokenizer.model", load_tokenizer(str(spm_folder)))
    assert not (matrix.extended_dir("qwen2", "qwen2", True) / "tokenizer.model").exists()
