"""``vinaforge train plan``: will this CPT config fit on N GPUs of M GiB, and if not, what to change.

Per GPU, for each strategy (DDP, FSDP2, ZeRO-2, ZeRO-3; LoRA and QLoRA follow the config's
phases or are tried as changes), the estimate adds:

- **weights**: parameters x bytes of ``model_dtype`` (QLoRA: 4-bit NF4 blocks with double-quantised
  scales for the blocks' linear layers, the rest in fp32 as PEFT's ``prepare_model_for_kbit_training``
  leaves it); sharded over the GPUs by FSDP2 and ZeRO-3, plus one layer gathered at a time;
- **gradients**: trainable parameters x bytes of their dtype; sharded by FSDP2, ZeRO-2 and ZeRO-3;
- **optimizer**: AdamW's two moments (8 bytes per trainable parameter in fp32, 4 in bf16, 2 for
  bitsandbytes' 8-bit AdamW); sharded by FSDP2, ZeRO-2 and ZeRO-3;
- **autocast copies**: bf16 copies of fp32 matrices kept for the backward pass under bf16 autocast;
- **activations** saved for the backward pass: per token and layer, 7h + 2h_kv + 4i elements for a
  Llama/Mistral block with SDPA or flash attention (norm inputs and outputs, q/k/v, attention output
  and its reshaped copy, the SwiGLU branches), or one hidden state per layer with gradient
  checkpointing plus one layer recomputed; plus one layer's activations for the gradients in
  flight during its backward pass; the fp32 log-softmax of the logits and two gradients (12 bytes per token x vocab
  entry) unless ``fused_loss`` avoids them;
- **overhead**: 1.5 GiB of CUDA context and allocator slack per GPU.

The parameter counts are exact (the model is built on the meta device from its config.json); the
activation term is the usual first-order count (Korthikanti et al. 2022, adapted to SwiGLU + GQA),
checked against measured peak memory of tiny models on CPU in ``tests/train/test_plan.py``.

Hand-written: no installed library estimates memory for our phases, LoRA and 8-bit settings
(accelerate's ``estimate-memory`` counts weights only).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

GIB = 2**30
STRATEGIES = ("ddp", "fsdp2", "zero2", "zero3")
OVERHEAD_BYTES = int(1.5 * GIB)


@dataclass(frozen=True)
class Shape:
    """Parameter counts and sizes of a causal LM (from its config, without loading weights)."""

    total: int
    embed: int
    head: int  # 0 when tied to the embeddings
    norms: int
    block_linear: int  # parameters of the transformer blocks' linear layers
    lora_per_rank: int  # LoRA parameters per unit of rank over those linear layers (in + out per matrix)
    layers: int
    hidden: int
    kv_hidden: int
    intermediate: int
    vocab: int


@dataclass
class Settings:
    """What the estimate depends on; :func:`settings_from_config` fills it from a CptConfig."""

    seq_len: int
    micro_batch: int
    precision: str = "bf16"  # autocast precision on the GPU
    model_dtype: str = "fp32"
    optimizer: str = "adamw"
    gradient_checkpointing: bool = False
    fused_loss: str = "none"
    loss_chunk: int = 1024
    trainable: str = "all"  # the largest trainable set among the phases
    lora_r: int = 16
    qlora: bool = False


@dataclass
class Estimate:
    strategy: str
    gpus: int
    parts: dict[str, float] = field(default_factory=dict)  # bytes per GPU
    gpu_bytes: float = 0.0

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    @property
    def fits(self) -> bool:
        return self.total <= self.gpu_bytes

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(total=self.total, fits=self.fits)
        return d


def model_shape(config) -> Shape:
    """Exact parameter counts of the model a transformers config describes (built on ``meta``)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    emb = model.get_input_embeddings().weight
    head_mod = model.get_output_embeddings()
    tied = head_mod is None or head_mod.weight is emb
    seen, total, norms, block_linear, lora = set(), 0, 0, 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.dim() < 2:
            norms += p.numel()
    for mod in model.modules():
        if isinstance(mod, torch.nn.Linear) and mod is not head_mod:
            block_linear += mod.weight.numel()
            lora += mod.in_features + mod.out_features
    cfg = getattr(config, "text_config", None) or config
    heads = int(cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
    return Shape(
        total=total,
        embed=emb.numel(),
        head=0 if tied else head_mod.weight.numel(),
        norms=norms,
        block_linear=block_linear,
        lora_per_rank=lora,
        layers=int(cfg.num_hidden_layers),
        hidden=int(cfg.hidden_size),
        kv_hidden=int(getattr(cfg, "num_key_value_heads", None) or heads) * head_dim,
        intermediate=int(getattr(cfg, "intermediate_size", 4 * cfg.hidden_size)),
        vocab=int(cfg.vocab_size),
    )


def _bytes(dtype: str) -> int:
    return 2 if dtype in ("bf16", "fp16") else 4


def trainable_params(shape: Shape, s: Settings) -> int:
    """Parameters that get gradients and optimizer state (whole tensors, as the optimizer sees them)."""
    emb_head = shape.embed + shape.head
    if s.qlora or s.trainable == "lora":
        return s.lora_r * shape.lora_per_rank + emb_head  # + the embeddings (full or token rows)
    return {
        "all": shape.total,
        "layers": shape.total - emb_head,
        "embeddings": shape.embed,
        "embeddings+lm_head": emb_head,
        "new_embeddings": emb_head,
    }.get(s.trainable, shape.total)


def activation_bytes(shape: Shape, s: Settings) -> dict[str, float]:
    tokens = s.seq_len * s.micro_batch
    act = _bytes(s.precision if s.model_dtype == "fp32" else s.model_dtype)
    if s.precision == "fp32" and s.model_dtype == "fp32":
        act = 4
    per_layer_token = 7 * shape.hidden + 2 * shape.kv_hidden + 4 * shape.intermediate
    one_layer = tokens * per_layer_token * act
    transient = one_layer  # gradients of one layer's activations while its backward runs
    if s.gradient_checkpointing:
        stored = tokens * shape.layers * shape.hidden * _bytes(s.model_dtype)
        layers = stored + one_layer + transient  # one layer recomputed at a time
    else:
        layers = shape.layers * one_layer + transient
    if s.fused_loss == "none":
        logits = tokens * shape.vocab * 12.0
    else:  # one chunk's logits, probabilities and gradient, plus the fp32 head-gradient accumulator
        logits = min(s.loss_chunk, tokens) * shape.vocab * 16.0 + shape.vocab * shape.hidden * 4.0
    return {"activations": float(layers), "logits": float(logits)}


def estimate(shape: Shape, s: Settings, strategy: str, gpus: int, gpu_gib: float) -> Estimate:
    """Bytes per GPU for one strategy; see the module docstring for each part."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    w = _bytes(s.model_dtype)
    n_train = trainable_params(shape, s)
    if s.qlora:
        quantised = shape.block_linear
        # 4 bits per weight, an 8-bit scale per 64 weights, an fp32 scale per 256 scales (double quant)
        weights = quantised * (0.5 + 1 / 64 + 4 / (64 * 256)) + (shape.total - quantised) * 4
        grad_bytes, opt_bytes = 4, 8
    else:
        weights = shape.total * w
        grad_bytes = w
        opt_bytes = 2 * w
    if s.optimizer != "adamw":
        opt_bytes = 2
    grads = n_train * grad_bytes
    optim = n_train * opt_bytes
    shard_w = gpus if strategy in ("fsdp2", "zero3") else 1
    shard_g = gpus if strategy in ("fsdp2", "zero2", "zero3") else 1
    parts: dict[str, float] = {
        "weights": weights / shard_w,
        "gradients": grads / shard_g,
        "optimizer": optim / shard_g,
    }
    if shard_w > 1:  # one layer (or the embeddings) gathered whole at a time, twice with prefetch
        biggest = max(shape.embed, shape.block_linear / max(shape.layers, 1)) * w
        parts["gathered"] = 2 * biggest
    if s.precision == "bf16" and s.model_dtype == "fp32" and not s.qlora:
        parts["autocast copies"] = shape.block_linear * 2 / (shard_w if strategy == "fsdp2" else 1)
    parts.update(activation_bytes(shape, s))
    parts["overhead"] = OVERHEAD_BYTES
    return Estimate(strategy, gpus, parts, gpu_gib * GIB)


def settings_from_config(cfg) -> Settings:
    """Settings of a :class:`~vinaforge.train.config.CptConfig` (the largest trainable set wins)."""
    order = ["new_embeddings", "embeddings", "embeddings+lm_head", "lora", "layers", "all"]
    biggest = max((p.trainable for p in cfg.phases), key=order.index)
    lora_r = max((p.lora.r for p in cfg.phases if p.lora is not None), default=16)
    precision = "bf16" if cfg.precision in ("auto", "bf16") else "fp32"
    return Settings(
        seq_len=cfg.seq_len,
        micro_batch=cfg.micro_batch_size,
        precision=precision,
        model_dtype=cfg.model_dtype,
        optimizer=cfg.optimizer,
        gradient_checkpointing=cfg.gradient_checkpointing,
        fused_loss=cfg.fused_loss,
        loss_chunk=cfg.loss_chunk_size,
        trainable=biggest,
        lora_r=lora_r,
        qlora=cfg.qlora,
    )


CHANGES: list[tuple[str, dict[str, Any]]] = [
    ("gradient_checkpointing: true", {"gradient_checkpointing": True}),
    ("fused_loss: chunked (or liger)", {"fused_loss": "chunked"}),
    ("optimizer: adamw_8bit", {"optimizer": "adamw_8bit"}),
    ("model_dtype: bf16", {"model_dtype": "bf16"}),
]


def suggestions(shape: Shape, s: Settings, gpus: int, gpu_gib: float) -> list[str]:
    """Changes, cumulative and cheapest first, and the strategy with which each makes the run fit."""
    out: list[str] = []
    current = s
    applied: list[str] = []
    steps = list(CHANGES)
    mb = s.micro_batch
    while mb > 1:
        mb //= 2
        steps.append((f"micro_batch_size: {mb} (raise grad_accum to keep the batch)", {"micro_batch": mb}))
    steps.append(("qlora: true (one phase, trainable: lora)", {"qlora": True, "trainable": "lora"}))
    for label, change in steps:
        if all(getattr(current, k) == v for k, v in change.items()):
            continue
        current = replace(current, **change)
        applied.append(label)
        for strategy in STRATEGIES:
            if strategy != "ddp" and gpus < 2:
                continue
            est = estimate(shape, current, strategy, gpus, gpu_gib)
            if est.fits:
                out.append(f"{' + '.join(applied)} -> {strategy}: {est.total / GIB:.1f} GiB per GPU")
                return out
    out.append(
        "nothing tried fits: use more GPUs, a smaller seq_len, or parameter offloading (ZeRO-3 offload)"
    )
    return out


def plan(cfg, gpus: int, gpu_gib: float, model_config=None) -> dict:
    """Estimates for every strategy, and what to change when the config's own choice does not fit."""
    if model_config is None:
        from transformers import AutoConfig

        model_config = AutoConfig.from_pretrained(str(cfg.model))
    shape = model_shape(model_config)
    s = settings_from_config(cfg)
    rows = [estimate(shape, s, st, gpus, gpu_gib) for st in STRATEGIES if st == "ddp" or gpus > 1]
    fits = [e.strategy for e in rows if e.fits]
    return {
        "shape": asdict(shape),
        "settings": asdict(s),
        "gpus": gpus,
        "gpu_gib": gpu_gib,
        "estimates": [e.as_dict() for e in rows],
        "fits": fits,
        "suggestions": [] if fits else suggestions(shape, s, gpus, gpu_gib),
    }


def render(result: dict) -> str:
    """A plain-text table (fits in 80 columns) of the plan."""
    shape, s = result["shape"], result["settings"]
    lines = [
        f"model: {shape['total'] / 1e9:.2f}B parameters ({shape['layers']} layers, hidden {shape['hidden']}, "
        f"vocab {shape['vocab']:,})",
        f"run: seq {s['seq_len']} x micro-batch {s['micro_batch']}, {s['precision']} autocast, "
        f"{s['model_dtype']} weights, {s['optimizer']}, trainable {s['trainable']}"
        + (", QLoRA" if s["qlora"] else "")
        + (", grad. checkpointing" if s["gradient_checkpointing"] else "")
        + (f", fused loss {s['fused_loss']}" if s["fused_loss"] != "none" else ""),
        f"per GPU (GiB), {result['gpus']} GPU(s) of {result['gpu_gib']:g} GiB:",
        f"{'strategy':<8} {'weights':>8} {'grads':>7} {'optim':>7} {'activ.':>7} {'logits':>7} {'other':>6} "
        f"{'total':>7}  fits",
    ]
    for e in result["estimates"]:
        p = {k: v / GIB for k, v in e["parts"].items()}
        other = sum(
            v for k, v in p.items() if k not in ("weights", "gradients", "optimizer", "activations", "logits")
        )
        lines.append(
            f"{e['strategy']:<8} {p['weights']:>8.1f} {p['gradients']:>7.1f} {p['optimizer']:>7.1f} "
            f"{p['activations']:>7.1f} {p['logits']:>7.1f} {other:>6.1f} {e['total'] / GIB:>7.1f}  "
            + ("yes" if e["fits"] else "no")
        )
    if result["fits"]:
        lines.append(f"fits with: {', '.join(result['fits'])}")
    else:
        lines.append("does not fit; change:")
        lines.extend(f"  {x}" for x in result["suggestions"])
    return "\n".join(lines)
