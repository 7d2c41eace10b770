"""Model FLOPs per token and peak device FLOP/s, for the MFU shown while training.

MFU (model FLOPs utilisation, PaLM appendix B) = achieved model FLOP/s / peak FLOP/s, with
model FLOPs per trained token = 6 N + 12 L H T (N: parameters of every matrix multiply, input
embedding lookup excluded; L layers, H hidden size, T sequence length; forward + backward,
activation recomputation not counted). Frozen weights still cost their forward and input-gradient
FLOPs; the formula keeps the usual 6 N so figures compare with torchtitan and fms-fsdp.

Peak: the vendor's dense figure for known GPUs; on a CPU no vendor figure applies to our run, so
the peak is *measured* once (a large GEMM in the training dtype), and reports say so.

Hand-written: neither accelerate nor transformers exposes MFU; the formula is PaLM's.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

# Dense (no sparsity) peak TFLOP/s per GPU: bf16/fp16 tensor cores, and fp32 (TF32 tensor cores).
GPU_PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H200": {"bf16": 989.4, "fp32": 494.7},
    "H100 SXM": {"bf16": 989.4, "fp32": 494.7},
    "H100 80GB HBM3": {"bf16": 989.4, "fp32": 494.7},
    "H100 NVL": {"bf16": 835.0, "fp32": 417.5},
    "H100 PCIe": {"bf16": 756.0, "fp32": 378.0},
    "H100": {"bf16": 989.4, "fp32": 494.7},
    "GH200": {"bf16": 989.4, "fp32": 494.7},
    "B200": {"bf16": 2250.0, "fp32": 1125.0},
    "A100": {"bf16": 312.0, "fp32": 156.0},
    "A10G": {"bf16": 125.0, "fp32": 62.5},
    "A10": {"bf16": 125.0, "fp32": 62.5},
    "L40S": {"bf16": 362.0, "fp32": 183.0},
    "L4": {"bf16": 121.0, "fp32": 60.0},
    "RTX 4090": {"bf16": 165.2, "fp32": 82.6},
    "V100": {"bf16": 125.0, "fp32": 15.7},
}


def matmul_params(model) -> int:
    """Parameters that take part in matrix multiplies (the input embedding lookup is free)."""
    seen: set[int] = set()
    total = 0
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    head_w = head.weight if head is not None else None
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
    if head_w is None or head_w.data_ptr() != emb.data_ptr():
        total -= emb.numel()  # untied: the input table is only indexed
    # tied: the one matrix is both looked up (free) and multiplied (counted once), nothing to subtract
    return total


def flops_per_token(model, seq_len: int) -> float:
    """6 N + 12 L H T model FLOPs per trained token (PaLM)."""
    cfg = model.config
    cfg = getattr(cfg, "text_config", None) or cfg
    layers = int(cfg.num_hidden_layers)
    hidden = int(cfg.hidden_size)
    return 6.0 * matmul_params(model) + 12.0 * layers * hidden * seq_len


def gpu_peak_tflops(name: str, dtype: str) -> float | None:
    key = "bf16" if dtype in ("bf16", "fp16") else "fp32"
    for pattern, table in GPU_PEAK_TFLOPS.items():  # most specific names first
        if pattern.lower() in name.lower():
            return table[key]
    return None


def measured_gemm_tflops(dtype: str = "fp32", size: int = 1024, seconds: float = 0.5) -> float:
    """Achieved TFLOP/s of a square matrix multiply on the CPU (our CPU 'peak')."""
    import torch

    tdtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    a = torch.randn(size, size, dtype=tdtype)
    b = torch.randn(size, size, dtype=tdtype)
    torch.mm(a, b)  # warm up
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        n += 1
    elapsed = time.perf_counter() - start
    return 2.0 * size**3 * n / elapsed / 1e12


def peak_tflops(device, dtype: str, override: float | None = None) -> tuple[float | None, str]:
    """(peak TFLOP/s per device, where the figure comes from)."""
    if override:
        return override, "configured"
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = gpu_peak_tflops(name, dtype)
        if peak is None:
            log.warning("no peak FLOP/s known for GPU %r: MFU is not shown (set peak_tflops)", name)
            return None, f"unknown GPU {name}"
        return peak, f"{name} dense {dtype} spec"
    if getattr(device, "type", str(device)) == "cpu":
        peak = measured_gemm_tflops(dtype)
        return peak, f"measured {dtype} GEMM on this CPU ({peak:.3f} TFLOP/s)"
    return None, f"no peak known for device {device}"


def mfu(
    tokens_per_s: float, flops_token: float, peak_tflops_per_device: float | None, devices: int
) -> float | None:
    if not peak_tflops_per_device:
        return None
    return tokens_per_s * flops_token / (peak_tflops_per_device * 1e12 * devices)
