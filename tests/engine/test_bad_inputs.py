"""Bad input gives a one-line error naming the file, key or option (issue 10), never a traceback,
a hang or a silently wrong figure. Real tiny models and tokenizers; the CLI runs in-process.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vinaforge.cli import app

REPO = Path(__file__).resolve().parents[2]
HELDOUT = str(REPO / "examples" / "heldout_vi.txt")


def cli(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    return result.exit_code, " ".join(text.split())  # no test depends on the terminal width


def assert_one_line_error(code: int, text: str, *needles: str) -> None:
    assert code == 2, text
    assert "Traceback" not in text
    for needle in needles:
        assert needle in text, (needle, text)


@pytest.fixture(scope="module")
def small_tok(tmp_path_factory):
    """A real byte-level BPE tokenizer (300 ids) trained on our example documents."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from vinaforge.io import iter_texts

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(iter_texts(REPO / "examples" / "corpus" / "vi_docs.jsonl"), trainer)
    out = tmp_path_factory.mktemp("small_tok")
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>").save_pretrained(out)
    return out


def _tiny(tokenizer, out: Path, vocab: int) -> Path:
    from vinaforge.model.tiny import build_tiny_model, save_model

    model = build_tiny_model(
        "mistral",
        vocab_size=vocab,
        layers=1,
        hidden=32,
        heads=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    save_model(model, tokenizer, out)
    return out


@pytest.fixture(scope="module")
def mistral_model(tmp_path_factory):
    """A tiny random model on Mistral-v0.1's 32,000-id vocabulary (shipped tokenizer, no download)."""
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    return _tiny(resolve_tokenizer("mistral-v0.1"), tmp_path_factory.mktemp("mistral") / "m", 32000)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory, small_tok):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(small_tok)
    return _tiny(tok, tmp_path_factory.mktemp("small") / "m", len(tok))


@pytest.fixture
def truncated_model(tmp_path, mistral_model):
    out = tmp_path / "truncated"
    shutil.copytree(mistral_model, out)
    weights = out / "model.safetensors"
    with open(weights, "r+b") as fh:
        fh.truncate(weights.stat().st_size // 2)
    return out


# ----------------------------------------------------------------------------- damaged weights


def test_truncated_safetensors_in_eval_bpb_model_and_train(tmp_path, truncated_model, mistral_model):
    weights = str(truncated_model / "model.safetensors")
    code, text = cli("eval", "bpb", "-m", truncated_model, "-t", HELDOUT)
    assert_one_line_error(code, text, weights, "truncated or damaged safetensors")
    code, text = cli("model", "info", truncated_model)  # exited 0 before
    assert_one_line_error(code, text, weights, "truncated")
    code, text = cli(
        "model",
        "extend",
        "--model",
        truncated_model,
        "--tokenizer",
        mistral_model,
        "--output",
        tmp_path / "x",
    )
    assert_one_line_error(code, text, weights, "truncated")
    cfg = tmp_path / "cpt.yaml"
    cfg.write_text(
        f"model: {truncated_model}\ndata: {{sources: {{vi: {{paths: [{HELDOUT}]}}}}}}\n"
        "phases: [{name: p, max_steps: 1}]\nseq_len: 16\nreport_to: []\nprogress: false\n"
    )
    code, text = cli("train", "cpt", "--config", cfg, "--output", tmp_path / "out")
    assert_one_line_error(code, text, weights, "truncated")


def test_model_info_on_malformed_config_names_the_file(tmp_path, mistral_model):
    broken = tmp_path / "broken"
    shutil.copytree(mistral_model, broken)
    (broken / "config.json").write_text('{\n  "vocab_size": 32000,,\n}\n')
    code, text = cli("model", "info", broken)
    assert_one_line_error(code, text, f"{broken / 'config.json'}:2: not valid JSON")
    code, text = cli("eval", "bpb", "-m", broken, "-t", HELDOUT)
    assert_one_line_error(code, text, f"{broken / 'config.json'}:2")


# ----------------------------------------------------------------------------- tokenizer vs model


def test_tokenizer_larger_than_the_model_is_an_error_not_an_index_error(small_model, mistral_model):
    code, text = cli("eval", "bpb", "-m", small_model, "--tokenizer", mistral_model, "-t", HELDOUT)
    assert_one_line_error(code, text, "has 32000 ids but the model has only 300 embedding rows")


def test_tokenizer_much_smaller_than_the_model_is_refused_unless_allowed(tmp_path, small_tok, mistral_model):
    code, text = cli("eval", "bpb", "-m", mistral_model, "--tokenizer", small_tok, "-t", HELDOUT)
    assert_one_line_error(
        code, text, "has 300 ids but the model has 32000 embedding rows", "--allow-vocab-mismatch"
    )
    code, text = cli(
        "eval",
        "bpb",
        "-m",
        mistral_model,
        "--tokenizer",
        small_tok,
        "-t",
        HELDOUT,
        "--allow-vocab-mismatch",
        "--max-texts",
        "2",
    )
    assert code == 0 and "bits per byte:" in text
    from vinaforge.model.resize import TokenizerMismatchError
    from vinaforge.train.config import CptConfig
    from vinaforge.train.engine import train_cpt

    cfg = {
        "model": str(mistral_model),
        "tokenizer": str(small_tok),
        "data": {"sources": {"vi": {"paths": [HELDOUT]}}},
        "phases": [{"name": "p", "max_steps": 1}],
        "seq_len": 16,
        "report_to": [],
        "progress": False,
    }
    with pytest.raises(TokenizerMismatchError, match="300 ids but the model has 32000"):
        train_cpt(CptConfig.model_validate(cfg), tmp_path / "cpt")


def test_the_models_own_padded_vocabulary_is_accepted(mistral_model):
    from transformers import AutoTokenizer

    from vinaforge.model.load import load_causal_lm
    from vinaforge.model.resize import check_fits_model

    model = load_causal_lm(str(mistral_model), dtype="float32")
    model.resize_token_embeddings(32000 + 64)  # padding to a multiple, as published models do
    check_fits_model(model, AutoTokenizer.from_pretrained(mistral_model))


# ----------------------------------------------------------------------------- options


def test_eval_bpb_rejects_zero_length_and_zero_batch(mistral_model):
    code, text = cli("eval", "bpb", "-m", mistral_model, "-t", HELDOUT, "--max-length", "0")
    assert code == 2 and "--max-length" in text  # it never finished before (memory grew)
    code, text = cli("eval", "bpb", "-m", mistral_model, "-t", HELDOUT, "--batch-size", "0")
    assert code == 2 and "--batch-size" in text  # "range() arg 3 must not be zero" before
    from vinaforge.model.bpb import bits_per_byte, text_windows

    with pytest.raises(ValueError, match="max_length must be at least 1"):
        text_windows([1, 2, 3], 0, 0)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        bits_per_byte(None, None, ["x"], batch_size=0)


def test_eval_rejects_zero_batch(mistral_model):
    code, text = cli("eval", "--model", mistral_model, "--tasks", "vmlu_mini", "--batch-size", "0")
    assert_one_line_error(code, text, "batch_size")


def test_curate_output_that_is_a_file(tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    code, text = cli("data", "curate", REPO / "examples" / "corpus", "-o", target)
    assert_one_line_error(code, text, f"output {target} is an existing file")
    assert target.read_text() == "not a folder"


# ----------------------------------------------------------------------------- data records


def test_train_cpt_record_missing_its_text_field(tmp_path, mistral_model):
    data = tmp_path / "docs.jsonl"
    data.write_text('{"text": "xin chào các bạn"}\n{"body": "thiếu trường văn bản"}\n', encoding="utf-8")
    cfg = tmp_path / "cpt.yaml"
    cfg.write_text(
        f"model: {mistral_model}\ndata: {{sources: {{vi: {{paths: [{data}]}}}}}}\n"
        "phases: [{name: p, max_steps: 1}]\nseq_len: 16\nreport_to: []\nprogress: false\n"
    )
    code, text = cli("train", "cpt", "--config", cfg, "--output", tmp_path / "out")
    assert_one_line_error(code, text, f"{data}:2: record has no field 'text' (fields: body)")


def test_truncated_kept_shard_names_the_file(tmp_path, mistral_model):
    from vinaforge.io import iter_texts

    shard = tmp_path / "kept" / "00000.jsonl.gz"
    shard.parent.mkdir()
    with gzip.open(shard, "wt", encoding="utf-8") as fh:
        for i in range(400):
            fh.write(json.dumps({"text": f"văn bản số {i} " * 20}, ensure_ascii=False) + "\n")
    raw = shard.read_bytes()
    shard.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=rf"{shard}: truncated or damaged gzip file"):
        list(iter_texts(shard))
    cfg = tmp_path / "cpt.yaml"
    cfg.write_text(
        f"model: {mistral_model}\ndata: {{sources: {{vi: {{paths: [{shard.parent}]}}}}}}\n"
        "phases: [{name: p, max_steps: 1}]\nseq_len: 16\nreport_to: []\nprogress: false\n"
    )
    code, text = cli("train", "cpt", "--config", cfg, "--output", tmp_path / "out")  # EOFError before
    assert_one_line_error(code, text, str(shard), "truncated")


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_of_an_older_model_is_refused_on_resume(tmp_path, mistral_model):
    """Issue 10.2 outside the engine: `train cpt --resume` after the model was rebuilt in place."""
    import os
    import signal

    from vinaforge.model.tiny import build_tiny_model, save_model
    from vinaforge.tokenizer.resolve import resolve_tokenizer
    from vinaforge.train.checkpoint import CheckpointMismatchError
    from vinaforge.train.config import CptConfig
    from vinaforge.train.engine import TrainingInterrupted, train_cpt

    model = tmp_path / "model"
    shutil.copytree(mistral_model, model)
    cfg = CptConfig.model_validate(
        {
            "model": str(model),
            "data": {"sources": {"vi": {"paths": [HELDOUT]}}},
            "phases": [{"name": "p", "max_steps": 4}],
            "seq_len": 16,
            "micro_batch_size": 2,
            "save_every": 2,
            "peak_tflops": 1.0,  # no GEMM measurement for MFU
            "cpu_threads": 1,
            "report_to": [],
            "progress": False,
        }
    )

    def stop_at_3(record: dict) -> None:
        if record.get("step") == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted):
        train_cpt(cfg, tmp_path / "out", callbacks=[stop_at_3])
    tok = resolve_tokenizer("mistral-v0.1")
    rebuilt = build_tiny_model(
        "mistral", vocab_size=32000, layers=1, hidden=32, heads=2, eos_token_id=tok.eos_token_id, seed=7
    )
    save_model(rebuilt, tok, model)  # same path, same settings, other weights
    with pytest.raises(CheckpointMismatchError, match=r"other settings.*inputs"):
        train_cpt(cfg, tmp_path / "out", resume=True)
