"""GPU correctness checks for the training levers, and the memory plan against measured peaks.

Run by bench/gpu_check.sh on one CUDA GPU (never in the CPU test suite):

    python bench/gpu_check.py checks --out OUT/gpu_checks.json
    python bench/gpu_check.py plan-vs-measured OUT/train_throughput.json --out OUT/plan_check.json

``checks`` (tiny real models, about a minute): each lever against the plain path on CUDA:

- ``fused_loss: chunked`` in fp32: same loss and gradients;
- Liger (``liger_kernels`` + ``fused_loss: liger``) in fp32: same loss and gradients within 1e-3;
- document masking with ``flex_attention`` (block mask built by transformers from position ids)
  against ``sdpa`` with the same position ids, and against each document run alone: same loss and
  gradients (flex attention has no backward on CPU, so this check only exists here);
- a short CPT run with ``optimizer: adamw_8bit`` and a QLoRA run on CUDA (bitsandbytes).

``plan-vs-measured``: ``vinaforge train plan``'s estimate for each benchmark variant's settings
against its measured ``torch.cuda.max_memory_allocated`` (the estimate's CUDA-context overhead is
left out: the allocator does not see it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a dry run of this script


def _model(attn="sdpa", vocab=32000, hidden=256, layers=2):
    from vinaforge.model.tiny import build_tiny_model

    return build_tiny_model(
        "llama", vocab_size=vocab, layers=layers, hidden=hidden, heads=4, kv_heads=2, seed=0, attn_implementation=attn
    ).to(_device())


def _loss_and_grads(model, **batch):
    model.zero_grad(set_to_none=True)
    out = model(**batch, use_cache=False)
    out.loss.backward()
    return out.loss.item(), {n: p.grad.detach().float().clone() for n, p in model.named_parameters() if p.grad is not None}


def _max_rel(a: dict, b: dict) -> float:
    worst = 0.0
    for k in a:
        denom = b[k].abs().max().item() or 1.0
        worst = max(worst, (a[k] - b[k]).abs().max().item() / denom)
    return worst


def _batch(vocab=32000, rows=4, seq=512):
    import torch

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (rows, seq), generator=g).to(_device())
    labels = ids.clone()
    labels[:, :32] = -100
    return ids, labels


def check_chunked() -> dict:
    from vinaforge.train.levers import enable_chunked_loss

    ids, labels = _batch()
    m = _model()
    ref_loss, ref = _loss_and_grads(m, input_ids=ids, labels=labels)
    enable_chunked_loss(m, 1000)
    loss, got = _loss_and_grads(m, input_ids=ids, labels=labels)
    ok = abs(loss - ref_loss) < 1e-4 and _max_rel(got, ref) < 1e-3
    return {"ok": ok, "loss_diff": abs(loss - ref_loss), "grad_max_rel_diff": _max_rel(got, ref)}


def check_liger() -> dict:
    if _device() != "cuda":
        return {"ok": None, "skipped": "no CUDA"}
    from vinaforge.train.levers import apply_levers

    ids, labels = _batch()
    m = _model()
    ref_loss, ref = _loss_and_grads(m, input_ids=ids, labels=labels)
    apply_levers(m, fused_loss="liger", liger_kernels=True)
    loss, got = _loss_and_grads(m, input_ids=ids, labels=labels)
    ok = abs(loss - ref_loss) < 1e-3 and _max_rel(got, ref) < 1e-2
    return {"ok": ok, "loss_diff": abs(loss - ref_loss), "grad_max_rel_diff": _max_rel(got, ref)}


def check_flex_doc_masking() -> dict:
    import torch

    if _device() != "cuda":
        return {"ok": None, "skipped": "no CUDA (flex attention has no backward on CPU)"}

    seq, cut = 512, 200
    ids, labels = _batch(rows=2, seq=seq)
    pos = torch.cat([torch.arange(cut), torch.arange(seq - cut)]).repeat(2, 1).to(_device())
    labels[:, cut] = -100  # the first token of a document is not predicted from the previous one
    results = {}
    for attn in ("sdpa", "flex_attention"):
        m = _model(attn)
        t0 = time.perf_counter()
        results[attn] = _loss_and_grads(m, input_ids=ids, labels=labels, position_ids=pos)
        results[attn + "_s"] = time.perf_counter() - t0
    m = _model("sdpa")
    alone = m(input_ids=ids[:, cut:], use_cache=False).logits
    packed = _model("flex_attention")(input_ids=ids, position_ids=pos, use_cache=False).logits[:, cut:]
    loss_diff = abs(results["sdpa"][0] - results["flex_attention"][0])
    grad = _max_rel(results["flex_attention"][1], results["sdpa"][1])
    sep = (alone - packed).abs().max().item()
    return {
        "ok": loss_diff < 1e-4 and grad < 1e-3 and sep < 1e-3,
        "loss_diff_vs_sdpa": loss_diff,
        "grad_max_rel_diff_vs_sdpa": grad,
        "logits_vs_document_alone": sep,
    }


def _tiny_cpt(work: Path, **overrides) -> dict:
    from transformers import AutoTokenizer

    from vinaforge.model.tiny import build_tiny_model, save_model
    from vinaforge.train.config import CptConfig
    from vinaforge.train.engine import train_cpt

    bundle = Path(os.environ.get("VF_GPU_BUNDLE", REPO / "bench" / "out" / "gpu_bundle"))
    tok = AutoTokenizer.from_pretrained(bundle / "tokenizer")
    model_dir = work / "model"
    if not model_dir.is_dir():
        m = build_tiny_model("llama", vocab_size=len(tok), layers=2, hidden=128, heads=4, seed=0,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
        save_model(m, tok, model_dir)
    phases = overrides.pop("phases", [{"name": "all", "trainable": "all", "max_steps": 6, "lr": 3e-3}])
    cfg = CptConfig.model_validate(
        {
            "model": str(model_dir),
            "data": {"sources": {"vi": {"paths": [str(bundle / "text.jsonl.gz")], "max_docs": 300}}},
            "phases": phases,
            "seq_len": 256,
            "micro_batch_size": 4,
            "report_to": [],
            "progress": False,
            "save_every": 1000,
            **overrides,
        }
    )
    return train_cpt(cfg, work / f"run-{len(list(work.iterdir()))}")


def check_8bit_and_qlora() -> dict:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return {"ok": None, "skipped": "bitsandbytes is not installed (bench/gpu_bundle.py --bitsandbytes)"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        adam8 = _tiny_cpt(work, optimizer="adamw_8bit", precision="bf16")
        qlora = _tiny_cpt(
            work,
            qlora=True,
            precision="bf16",
            phases=[{"name": "q", "trainable": "lora", "max_steps": 6, "lr": 1e-3, "lora": {"r": 8}}],
        )
    return {
        "ok": adam8["final_loss"] < adam8["first_loss"] and qlora["final_loss"] < qlora["first_loss"],
        "adamw_8bit_loss": [adam8["first_loss"], adam8["final_loss"]],
        "qlora_loss": [qlora["first_loss"], qlora["final_loss"]],
    }


CHECKS = {
    "chunked_loss": check_chunked,
    "liger": check_liger,
    "flex_doc_masking": check_flex_doc_masking,
    "adamw_8bit_and_qlora": check_8bit_and_qlora,
}


def run_checks(out: Path) -> int:
    import torch

    results = {"device": torch.cuda.get_device_name(0) if _device() == "cuda" else "cpu", "torch": torch.__version__}
    failed = 0
    for name, fn in CHECKS.items():
        t0 = time.perf_counter()
        try:
            r = fn()
        except Exception as err:  # report and go on: one broken lever must not hide the others
            r = {"ok": False, "error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()[-2000:]}
        r["seconds"] = round(time.perf_counter() - t0, 1)
        results[name] = r
        failed += r.get("ok") is False
        print(f"{name:24s} {'ok' if r.get('ok') else ('skipped' if r.get('ok') is None else 'FAILED')} {r}", flush=True)
    out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 1 if failed else 0


def plan_vs_measured(bench_file: Path, out: Path) -> int:
    from transformers import LlamaConfig

    from vinaforge.model.tiny import default_intermediate
    from vinaforge.train.plan import GIB, Settings, estimate, model_shape

    bench = json.loads(bench_file.read_text())
    m = bench["model"]
    shape = model_shape(
        LlamaConfig(vocab_size=32000, hidden_size=m["hidden"], intermediate_size=m["intermediate"] or default_intermediate(m["hidden"]),
                    num_hidden_layers=m["layers"], num_attention_heads=m["heads"], num_key_value_heads=m["kv_heads"])
    )  # fmt: skip
    rows = {}
    for variant, fused in (("vinaforge", "none"), ("vinaforge+chunked", "chunked"), ("hf", "none")):
        r = bench["variants"].get(variant, {})
        if r.get("status") != "ok":
            continue
        s = Settings(seq_len=bench["seq_len"], micro_batch=bench["batch"], precision=bench["precision"], fused_loss=fused)
        est = estimate(shape, s, "ddp", 1, 80)
        predicted = (est.total - est.parts["overhead"]) / GIB
        measured = r["peak_memory_mb"] / 1024
        rows[variant] = {"predicted_gib": predicted, "measured_gib": measured, "ratio": measured / predicted}
        print(f"{variant:18s} predicted {predicted:6.1f} GiB  measured {measured:6.1f} GiB  ({measured / predicted:.2f})")
    out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("checks")
    c.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("plan-vs-measured")
    p.add_argument("bench", type=Path)
    p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sys.exit(run_checks(args.out) if args.cmd == "checks" else plan_vs_measured(args.bench, args.out))


if __name__ == "__main__":
    main()
