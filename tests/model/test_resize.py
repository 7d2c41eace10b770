"""Resizing to the real extended Mistral tokenizer and initialising the new rows."""

from __future__ import annotations

import json

import pytest
import torch

from vinaforge.model.resize import TokenizerMismatchError, extend_model


def snapshot(model):
    w_in = model.get_input_embeddings().weight.detach().clone()
    w_out = model.get_output_embeddings().weight.detach().clone()
    return w_in, w_out


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_mean_init_each_new_row_is_the_mean_of_its_base_subtokens(make_tiny, base_tok, ext_tok, tie):
    model = make_tiny(tie=tie)
    base_in, base_out = snapshot(model)
    info = extend_model(model, base_tok, ext_tok, init="mean")
    w_in, w_out = snapshot(model)

    n_base = len(base_tok)
    assert info.num_base_rows == n_base == info.num_base_tokens
    assert info.new_token_ids == list(range(n_base, len(ext_tok)))
    assert info.num_new_tokens > 100
    assert info.num_rows % 64 == 0 and info.num_rows >= len(ext_tok)
    assert w_in.shape[0] == w_out.shape[0] == info.num_rows == model.config.vocab_size
    assert info.tied is tie and (w_in.data_ptr() == w_out.data_ptr()) is False  # snapshots are copies
    assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) is tie
    assert info.num_fallback == 0

    # base rows untouched, bit for bit
    assert torch.equal(w_in[:n_base], base_in)
    assert torch.equal(w_out[:n_base], base_out)

    for src in info.sources:
        assert src.base_ids, src
        expect_in = base_in[src.base_ids].mean(0)
        expect_out = base_out[src.base_ids].mean(0)
        torch.testing.assert_close(w_in[src.id], expect_in, rtol=0, atol=1e-7)
        torch.testing.assert_close(w_out[src.id], expect_out, rtol=0, atol=1e-7)

    if not tie:  # input and output rows are averaged from their own matrices
        new = torch.tensor(info.new_token_ids)
        assert not torch.allclose(w_in[new], w_out[new])


def test_mean_init_uses_the_base_tokenizers_own_segmentation(make_tiny, base_tok, ext_tok):
    """Independent check of the sub-tokens: a new word-initial token ``▁xyz`` is averaged over
    exactly the ids the base tokenizer gives for the text ``xyz``, and the pieces spell the token."""
    info = extend_model(make_tiny(), base_tok, ext_tok, init="mean")
    word_initial = [s for s in info.sources if s.token.startswith("▁") and len(s.token) > 1]
    assert len(word_initial) > 50
    for src in word_initial:
        assert src.base_ids == base_tok(src.text, add_special_tokens=False)["input_ids"], src
        assert base_tok.convert_tokens_to_string(base_tok.convert_ids_to_tokens(src.base_ids)) == src.text
    for src in info.sources:
        pieces = "".join(base_tok.convert_ids_to_tokens(src.base_ids))
        if not any(p.startswith("<0x") for p in base_tok.convert_ids_to_tokens(src.base_ids)):
            assert pieces == src.token, src  # the pieces concatenate to the new token


def test_new_rows_are_distinct_vectors_not_one_scalar(make_tiny, base_tok, ext_tok):
    """VinaSmol's released code averaged the whole selection into one scalar: guard against it."""
    model = make_tiny()
    info = extend_model(model, base_tok, ext_tok, init="mean")
    new = model.get_input_embeddings().weight[info.new_token_ids].detach()
    # each row varies across dimensions (not a broadcast scalar)
    assert (new.std(dim=1) > 1e-4).all()
    # rows with different sub-token sets are different vectors
    distinct_sets = {tuple(sorted(s.base_ids)) for s in info.sources}
    assert len({tuple(r.tolist()) for r in new}) == len(distinct_sets)


def test_padding_rows_get_the_mean_of_base_rows(make_tiny, base_tok, ext_tok):
    model = make_tiny()
    base_in, base_out = snapshot(model)
    info = extend_model(model, base_tok, ext_tok, init="mean")
    assert info.num_padding_rows == info.num_rows - len(ext_tok) > 0
    w_in, w_out = snapshot(model)
    pad = slice(len(ext_tok), info.num_rows)
    torch.testing.assert_close(w_in[pad], base_in.mean(0).expand_as(w_in[pad]))
    torch.testing.assert_close(w_out[pad], base_out.mean(0).expand_as(w_out[pad]))


def test_mean_resizing_and_random_are_seeded_and_leave_base_rows(make_tiny, base_tok, ext_tok):
    n_base = len(base_tok)
    rows = {}
    for init in ("mean_resizing", "random"):
        for run in range(2):
            model = make_tiny()
            base_in, _ = snapshot(model)
            info = extend_model(model, base_tok, ext_tok, init=init, seed=7)
            w_in, w_out = snapshot(model)
            assert torch.equal(w_in[:n_base], base_in)
            rows[(init, run)] = (w_in[n_base:], w_out[n_base:])
            assert info.init == init
        assert torch.equal(rows[(init, 0)][0], rows[(init, 1)][0])  # same seed, same rows
    mr_in, _ = rows[("mean_resizing", 0)]
    # transformers' method: N(mean, 1e-9 * covariance): every row sits at the mean of the old rows
    torch.testing.assert_close(mr_in, base_in.mean(0).expand_as(mr_in), rtol=0, atol=1e-5)
    rnd_in, rnd_out = rows[("random", 0)]
    assert abs(rnd_in.std().item() - 0.02) < 0.002 and abs(rnd_in.mean().item()) < 0.002
    assert not torch.equal(rnd_in, rnd_out)
    model = make_tiny()
    base_in, _ = snapshot(model)
    extend_model(model, base_tok, ext_tok, init="zero")
    w_in, w_out = snapshot(model)
    assert torch.equal(w_in[:n_base], base_in) and not w_in[n_base:].any() and not w_out[n_base:].any()


def test_resize_is_recorded_in_the_saved_config(make_tiny, base_tok, ext_tok, tmp_path):
    from transformers import AutoModelForCausalLM

    from vinaforge.model.resize import read_resize_info
    from vinaforge.model.tiny import is_random_init, save_model

    model = make_tiny()
    info = extend_model(model, base_tok, ext_tok)
    save_model(model, ext_tok, tmp_path / "m")
    rec = read_resize_info(tmp_path / "m")
    assert rec["num_base_rows"] == info.num_base_rows and rec["num_rows"] == info.num_rows
    assert is_random_init(tmp_path / "m")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert torch.equal(loaded.get_output_embeddings().weight, model.get_output_embeddings().weight)
    assert loaded.config.vocab_size == info.num_rows


def test_tokenizer_with_more_ids_than_model_rows_is_refused(make_tiny, ext_tok):
    model = make_tiny()  # 32,000 rows; the extended tokenizer has more ids
    with pytest.raises(
        TokenizerMismatchError, match=r"has \d+ ids but the model has only 32000 embedding rows"
    ):
        extend_model(model, ext_tok, ext_tok)


def test_new_tokenizer_that_does_not_extend_the_base_is_refused(make_tiny, base_tok, ext_tok_dir, tmp_path):
    from vinaforge.model.load import load_tokenizer

    # the extended tokenizer with two base ids swapped: same size, different id space
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in ext_tok_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    spec = json.loads((bad / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = spec["model"]["vocab"]
    a, b = "▁the", "▁and"
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (bad / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(
        TokenizerMismatchError, match=r"does not extend base tokenizer .*2 of the first 32000 ids differ"
    ):
        extend_model(make_tiny(), base_tok, load_tokenizer(str(bad)))


def test_unknown_init_is_refused(make_tiny, base_tok, ext_tok):
    with pytest.raises(ValueError, match="unknown init method 'zeros'"):
        extend_model(make_tiny(), base_tok, ext_tok, init="zeros")


def test_reserved_placeholders_get_the_mean_of_base_rows(make_tiny, base_tok, vi_texts, tmp_path):
    """A small corpus leaves the extension short of its multiple: its placeholders are padding."""
    from vinaforge.model.load import load_tokenizer
    from vinaforge.tokenizer.extend import ExtendSettings, extend_tokenizer

    corpus = tmp_path / "small.jsonl"
    corpus.write_text(json.dumps({"text": vi_texts[0][:600]}, ensure_ascii=False) + "\n", encoding="utf-8")
    settings = ExtendSettings(max_new_tokens=200, pad_to_multiple_of=64, min_frequency=1)
    result = extend_tokenizer(
        "mistral-v0.1", tmp_path / "tok", corpus=[corpus], settings=settings, progress=False
    )
    assert result.placeholders > 0
    model = make_tiny()
    base_in, _ = snapshot(model)
    info = extend_model(model, base_tok, load_tokenizer(str(tmp_path / "tok")), init="mean")
    assert info.num_reserved == result.placeholders and info.num_fallback == 0
    w_in = model.get_input_embeddings().weight.detach()
    for src in info.sources:
        if src.how == "reserved":
            torch.testing.assert_close(w_in[src.id], base_in.mean(0))
        else:
            torch.testing.assert_close(w_in[src.id], base_in[src.base_ids].mean(0), rtol=0, atol=1e-7)


def test_base_already_padded_beyond_its_tokenizer(base_tok, ext_tok):
    """Rows past the base tokenizer held nothing: new tokens take them, base rows stay."""
    from vinaforge.model.tiny import build_tiny_model

    model = build_tiny_model("llama", vocab_size=len(base_tok) + 64, layers=1, hidden=32, heads=2)
    base_in, base_out = snapshot(model)
    info = extend_model(model, base_tok, ext_tok, init="mean")
    assert info.num_rows_before == 32064 and info.num_base_rows == 32000
    assert info.new_token_ids[0] == 32000 and info.num_rows == 32320
    w_in, w_out = snapshot(model)
    assert torch.equal(w_in[:32000], base_in[:32000]) and torch.equal(w_out[:32000], base_out[:32000])
    src = info.sources[0]
    torch.testing.assert_close(w_in[src.id], base_in[src.base_ids].mean(0), rtol=0, atol=1e-7)


def test_same_tokenizer_only_pads(base_tok):
    from vinaforge.model.tiny import build_tiny_model

    model = build_tiny_model("mistral", vocab_size=len(base_tok), layers=1, hidden=32, heads=2)
    before = model.get_input_embeddings().weight.detach().clone()
    info = extend_model(model, base_tok, base_tok, pad_to_multiple_of=128)
    assert info.new_token_ids == [] and info.num_rows == 32000  # already a multiple of 128
    assert torch.equal(model.get_input_embeddings().weight, before)
