"""Learning: a tiny model trained briefly on real Vietnamese (Wikipedia sample) cuts held-out bits per byte.

Uses ../shared/data (skips without it). The tokenizer is a byte-level BPE trained on the training
articles; the held-out paragraphs come from other articles. Bits per byte does not depend on the
tokenizer, so the figure is comparable to any other model's on the same text.
"""

from __future__ import annotations

import gzip
import json

import pytest

from vinaforge.train.config import CptConfig
from vinaforge.train.engine import train_cpt


@pytest.mark.slow
@pytest.mark.shared_data
def test_tiny_model_learns_vietnamese(tmp_path, shared_data, train_tokenizer, make_tiny_model):
    articles = []
    with gzip.open(shared_data / "vi_text" / "viwiki_undertheseanlp.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            text = json.loads(line)["text"]
            if len(text) > 2000:
                articles.append(text)
            if len(articles) >= 460:
                break
    train, heldout = articles[:400], articles[400:]
    data = tmp_path / "vi_train.jsonl"
    data.write_text(
        "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in train), encoding="utf-8"
    )
    held = tmp_path / "heldout.txt"
    paragraphs = [p for t in heldout for p in t.split("\n") if len(p) > 200][:60]
    held.write_text("\n".join(paragraphs) + "\n", encoding="utf-8")
    tok = train_tokenizer(train, tmp_path / "tok", vocab_size=1024)
    model_dir = make_tiny_model(tok, tmp_path / "model", hidden=64, layers=2)

    cfg = CptConfig.model_validate(
        {
            "model": str(model_dir),
            "data": {"sources": {"viwiki": {"paths": [str(data)]}}},
            "heldout": {"paths": [str(held)], "max_texts": 60, "batch_size": 16},
            "phases": [{"name": "all", "trainable": "all", "max_steps": 200, "lr": 1e-2, "warmup_steps": 10}],
            "seq_len": 128,
            "micro_batch_size": 8,
            "eval_every": 50,
            "save_every": 1000,
            "report_to": [],
            "progress": False,
            "cpu_threads": 1,
        }
    )
    summary = train_cpt(cfg, tmp_path / "run")
    init, final = summary["init_bpb"], summary["final_bpb"]
    assert init > 2.5  # a random model spreads its probability over the whole vocabulary
    # measured: 3.13 -> 2.30 bits per byte after 200 steps (205k tokens)
    assert final < init - 0.5 and final < 0.8 * init, (init, final)
