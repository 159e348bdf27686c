"""Per-GPU memory for training, fine-tuning (full, LoRA, QLoRA) and inference, with a breakdown a person can check.

Model states follow the ZeRO paper (Rajbhandari et al. 2019, section 5): with Nd data-parallel GPUs, stage 1 shards
optimizer states, stage 2 also gradients, stage 3 also parameters (FSDP full sharding is stage 3). Activations
follow Korthikanti et al. 2022 (llmplan.estimate.activations); the KV cache is 2 x layers x kv_heads x head_dim x
tokens x batch x bytes (x beams). See docs/methodology.md, section Memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from llmplan.errors import LlmplanError
from llmplan.estimate.activations import ActivationConfig, activation_memory, inference_activation_bytes
from llmplan.estimate.optimizers import (OPTIMIZERS, TRAIN_DTYPES, adafactor_state_bytes, adapter_adafactor_bytes,
                                         adapter_state_bytes, check_optimizer, state_bytes)
from llmplan.estimate.quantization import raw_weight_bytes, stored_weight_bytes, weight_storage
from llmplan.estimate.kvcache import cache_bytes
from llmplan.estimate.memory_notes import assumptions, rule_of_thumb
from llmplan.estimate.shapes import (LINEAR_MODULES, block_linears, check_ep, layer_slice, stage_params,
                                     tp_problem)
from llmplan.models.params import count_params
from llmplan.models.spec import ModelSpec
from llmplan.units import GiB

MODES = ("train", "finetune", "lora", "qlora", "infer")
DTYPES = ("fp32", "fp16", "bf16", "int8", "int4", "fp8")
OFFLOADS = ("none", "optimizer", "params")
KV_DTYPES = ("fp32", "fp16", "bf16", "fp8", "int8", "int4")

# Runtime overhead default: the CUDA context with cuBLAS/cuDNN workspaces (about 0.5 GiB under PyTorch on Ampere and
# Hopper GPUs, outside torch.cuda.memory_allocated) plus 5% of the tensors for the caching allocator's fragmentation
# and short-lived buffers. A calibration profile from `llmplan bench` replaces both with the measured overhead.
CONTEXT_BYTES = GiB // 2
FRAGMENTATION = 0.05
DEFAULT_HEADROOM = 0.05  # fraction of the GPU's memory left free when judging a fit
DEFAULT_LORA_RANK = 16
DEFAULT_LORA_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")  # all linear layers, as in QLoRA (Dettmers 2023)


@dataclass(frozen=True)
class MemoryConfig:
    spec: ModelSpec
    mode: str = "train"
    dtype: str = "bf16"
    batch: int = 1                      # micro-batch per GPU
    seq: int | None = None              # default: the model's context length
    optimizer: str = "adamw"
    recompute: str = "none"
    attention: str = "flash"
    dp: int = 1
    zero: int = 0                       # 3 = FSDP full sharding
    tp: int = 1
    pp: int = 1
    ep: int = 1                         # expert parallelism: routed experts / ep on each GPU
    sp: bool = False
    offload: str = "none"
    lora_rank: int = DEFAULT_LORA_RANK
    lora_targets: tuple[str, ...] = DEFAULT_LORA_TARGETS
    adapter_dtype: str = "fp32"         # PEFT's default; the QLoRA reference script uses bf16
    kv_dtype: str | None = None         # default: the activation dtype (bf16, or fp32 for fp32)
    beams: int = 1
    grad_dtype: str = "auto"            # "fp32": Megatron's fp32 gradient accumulation
    amp: bool = False                   # PyTorch autocast: fp32 weights/gradients, 16-bit copies, fp32 residual
    dropout: bool | None = None         # None: as the family trains (see default_dropout)
    impl: str = "fused"                 # activation accounting: "fused" (Korthikanti), "pytorch" (plain ops on the
                                        # CPU, as measured) or "pytorch-cuda" (the same ops on a GPU)
    quant_group: int | None = None      # int4 group size (default 128)
    measured_overhead_bytes: int | None = None  # from a calibration profile
    overhead_source: str = ""
    stored_weights: bool = False        # inference: weights in the checkpoint's stored format (spec.weight_format)


@dataclass(frozen=True)
class MemoryEstimate:
    params: int
    trainable_params: int
    breakdown: dict[str, int] = field(hash=False)   # bytes per GPU: weights, gradients, optimizer, activations,
                                                    # kv_cache, state (recurrent layers), overhead
    total_bytes: int                                # their sum
    cpu_bytes: int                                  # host memory per GPU for offloaded states
    stage: str                                      # the pipeline stage reported: "only", "first" or "last"
    seq: int
    activation_detail: dict[str, float] = field(hash=False)
    activation_terms: tuple[tuple[str, int], ...]  # one layer's saved tensors by name (bytes, one micro-batch)
    weights_by_dtype: dict[str, int] = field(hash=False)
    rule_of_thumb_bytes: int | None
    rule_of_thumb: str
    assumptions: tuple[str, ...]
    layer_kinds: dict[str, int] = field(default_factory=dict, hash=False)  # cache layers of each kind (inference)
    activation_layers: tuple[tuple[str, int, int], ...] = ()  # (layer make, layers, bytes per layer) if they differ

    @property
    def model_states_bytes(self) -> int:
        """Weights + gradients + optimizer states (the ZeRO paper's 'model states')."""
        b = self.breakdown
        return b["weights"] + b["gradients"] + b["optimizer"]

    @property
    def allocated_bytes(self) -> int:
        """Tensors alone (what torch.cuda.max_memory_allocated measures): the total less the runtime overhead."""
        return self.total_bytes - self.breakdown["overhead"]


def _bad(msg: str) -> LlmplanError:
    return LlmplanError(msg)


def validate(cfg: MemoryConfig) -> MemoryConfig:
    """Check every input; return the config with seq and kv_dtype filled in."""
    spec = cfg.spec
    if cfg.mode not in MODES:
        raise _bad(f"unknown mode {cfg.mode!r}; accepted: {', '.join(MODES)}")
    if cfg.dtype not in DTYPES:
        raise _bad(f"unknown dtype {cfg.dtype!r}; accepted: {', '.join(DTYPES)}")
    if cfg.mode in ("train", "finetune") and cfg.dtype not in TRAIN_DTYPES:
        raise _bad(f"--dtype {cfg.dtype} cannot train all weights; use fp32, fp16, bf16 or fp8, or --mode lora/qlora "
                   "for a quantized frozen base")
    if cfg.mode == "qlora" and cfg.dtype not in ("fp32", "fp16", "bf16"):
        raise _bad(f"--mode qlora keeps the base in NF4 and computes in --dtype fp32, fp16 or bf16, not {cfg.dtype}")
    check_optimizer(cfg.optimizer)
    if cfg.amp and (cfg.mode not in ("train", "finetune") or cfg.dtype not in ("fp16", "bf16")):
        raise _bad("--amp (PyTorch autocast) applies to --mode train/finetune with --dtype fp16 or bf16")
    for name in ("batch", "dp", "tp", "pp", "ep", "beams"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < 1:
            raise _bad(f"--{name} must be a whole number of at least 1, got {value!r}")
    seq = spec.context if cfg.seq is None else cfg.seq
    if not isinstance(seq, int) or seq < 1:
        raise _bad(f"--seq must be a whole number of at least 1, got {seq!r}")
    if cfg.zero not in (0, 1, 2, 3):
        raise _bad(f"--zero must be 0, 1, 2 or 3 (3 is FSDP full sharding), got {cfg.zero!r}")
    if cfg.offload not in OFFLOADS:
        raise _bad(f"unknown offload {cfg.offload!r}; accepted: {', '.join(OFFLOADS)}")
    problem = tp_problem(spec, cfg.tp)
    if problem:
        raise _bad(problem)
    check_ep(spec, cfg.ep, cfg.dp if cfg.mode != "infer" else None)
    if spec.total_layers % cfg.pp:
        raise _bad(f"--pp {cfg.pp} does not divide the {spec.total_layers} layers of {spec.name}")
    if cfg.mode == "infer":
        if cfg.zero in (1, 2):
            raise _bad("--zero 1 and 2 shard optimizer states and gradients, which inference does not have; "
                       "use --zero 3 (or --tp) to shard weights")
        if cfg.offload == "optimizer":
            raise _bad("--offload optimizer needs training; inference can offload params")
    elif cfg.offload == "params" and cfg.zero != 3:
        raise _bad("--offload params needs --zero 3 (or --fsdp): only sharded parameters can live on the CPU")
    if cfg.mode in ("lora", "qlora"):
        if cfg.lora_rank < 1:
            raise _bad(f"--lora-rank must be at least 1, got {cfg.lora_rank}")
        unknown = set(cfg.lora_targets) - set(LINEAR_MODULES)
        if unknown or not cfg.lora_targets:
            raise _bad(f"unknown LoRA target(s) {', '.join(sorted(unknown)) or '(none)'}; accepted: "
                       f"{', '.join(LINEAR_MODULES)}, all")
    p = 4.0 if cfg.dtype == "fp32" else 2.0
    kv = cfg.kv_dtype or ("fp32" if p == 4.0 else "bf16")
    if kv not in KV_DTYPES:
        raise _bad(f"unknown --kv-dtype {kv!r}; accepted: {', '.join(KV_DTYPES)}")
    dropout = default_dropout(spec) if cfg.dropout is None else cfg.dropout
    return replace(cfg, seq=seq, kv_dtype=kv, dropout=dropout)


def matmul_fraction(spec: ModelSpec) -> float:
    """Share of parameters that enter matmuls (block linears and the output projection): what autocast copies."""
    b = count_params(spec)
    head = spec.vocab * (spec.embed_dim or spec.hidden)
    return min((b.attention + b.mlp + head) / b.total, 1.0)


def default_dropout(spec: ModelSpec) -> bool:
    """GPT-2/3, BERT, OPT and T5 train with dropout 0.1 (learned, sinusoidal or relative positions); LLaMA-style
    rotary models, BLOOM and Falcon train without it."""
    return spec.position in ("learned", "sinusoidal", "relative")


def adapter_params(spec: ModelSpec, rank: int, targets: tuple[str, ...]) -> float:
    """LoRA (Hu et al. 2021): A (r x d_in) and B (d_out x r) per targeted matrix: r (d_in + d_out) parameters."""
    mats = block_linears(spec)
    return sum(rank * (m.d_in + m.d_out) * m.count for m in mats if m.targeted(targets))


def kv_cache_bytes(spec: ModelSpec, tokens: int, batch: int, kv_dtype: str = "bf16", beams: int = 1,
                   tp: int = 1, pp: int = 1, encoder_tokens: int | None = None) -> int:  # KV + recurrent state
    """KV cache and recurrent state on one GPU, x beams (llmplan.estimate.kvcache: per layer kind; tp splits heads,
    pp splits layers). Encoder-decoder decoders also cache the cross-attention K/V of the encoder output."""
    return cache_bytes(spec, tokens, batch * beams, kv_dtype, tp=tp, pp=pp, encoder_tokens=encoder_tokens).total_bytes


def _stage_states(cfg: MemoryConfig, params_on_gpu: float, trainable_on_gpu: float,
                  spec: ModelSpec) -> tuple[float, float, float]:
    """(weights, gradients, optimizer) bytes on one GPU before offload, after ZeRO sharding."""
    dp, z = cfg.dp, cfg.zero
    if cfg.mode in ("train", "finetune"):
        ada = adafactor_state_bytes(spec) if cfg.optimizer == "adafactor" else None
        if cfg.amp:  # autocast: fp32 weights are the master copy; gradients fp32 unless stated
            grad = "fp32" if cfg.grad_dtype == "auto" else cfg.grad_dtype
            sb = state_bytes("fp32", cfg.optimizer, grad, adafactor_bytes=ada)
        else:
            sb = state_bytes(cfg.dtype, cfg.optimizer, cfg.grad_dtype, adafactor_bytes=ada)
        weights = params_on_gpu * sb.weights
        grads, opt = trainable_on_gpu * sb.gradients, trainable_on_gpu * sb.optimizer
        if cfg.amp:  # each matmul's weight cast to 16-bit, kept from forward to backward: whole, even under ZeRO-3
            casts = 2.0 * params_on_gpu * matmul_fraction(spec)
    else:
        base = "nf4" if cfg.mode == "qlora" else cfg.dtype
        weights = weight_storage(spec, params_on_gpu, base, cfg.quant_group).total_bytes
        if cfg.mode == "infer":
            grads = opt = 0.0
        else:
            ada = None
            if cfg.optimizer == "adafactor":
                mats = block_linears(spec)
                m = mats[0]
                ada = adapter_adafactor_bytes(m.d_in, m.d_out, cfg.lora_rank)
            sb = adapter_state_bytes(cfg.optimizer, ada, cfg.adapter_dtype)
            weights += trainable_on_gpu * sb.weights
            grads, opt = trainable_on_gpu * sb.gradients, trainable_on_gpu * sb.optimizer
    if z >= 1:
        opt /= dp
    if z >= 2:
        grads /= dp
    if z == 3:
        weights /= dp
    if cfg.mode in ("train", "finetune") and cfg.amp:
        # Autocast casts the gathered layer and the matmul keeps the cast for backward, so ZeRO-3/FSDP does not
        # shard these (measured on FSDP2 without a mixed-precision policy: docs/methodology.md, Distributed).
        weights += casts
    return weights, grads, opt


def estimate_memory(cfg: MemoryConfig) -> MemoryEstimate:
    """Per-GPU memory of the plan `cfg`: the stage (first or last pipeline stage) that needs the most."""
    cfg = validate(cfg)
    spec, seq = cfg.spec, cfg.seq
    notes: list[str] = list(spec.assumptions)
    total_params = count_params(spec).total
    p = 4.0 if cfg.dtype == "fp32" else 2.0
    stages = stage_params(spec, cfg.tp, cfg.pp, cfg.ep)
    stored = cfg.stored_weights and cfg.mode == "infer" and spec.weight_format is not None
    lora = cfg.mode in ("lora", "qlora")
    adapters = adapter_params(spec, cfg.lora_rank, cfg.lora_targets) if lora else 0.0
    trainable_total = adapters if lora else (0.0 if cfg.mode == "infer" else float(total_params))
    adapters_gpu = adapters / cfg.tp / cfg.pp  # adapters sit on the block linears: split like them

    def states(k: int) -> tuple[float, float, float]:
        """Weights, gradients, optimizer states of stage k; routed experts shard over the expert-data-parallel
        ranks dp / ep under ZeRO (Megatron-Core's expert data parallel group)."""
        params_stage, expert = stages.stages[k], stages.expert_stages[k]
        if stored:
            w = stored_weight_bytes(spec, params_stage - expert, expert, spec.weight_format)
            return (w / cfg.dp if cfg.zero == 3 else w), 0.0, 0.0
        expert_dp = cfg.dp // cfg.ep if cfg.mode != "infer" else cfg.dp
        out = (0.0, 0.0, 0.0)
        for part, dp in ((params_stage - expert, cfg.dp), (expert, expert_dp)):
            if part <= 0:
                continue
            trainable = adapters_gpu * part / params_stage if lora else (0.0 if cfg.mode == "infer" else part)
            parts = _stage_states(replace(cfg, dp=dp), part, trainable, spec)
            out = tuple(x + y for x, y in zip(out, parts))
        return out

    results = []
    if cfg.mode == "infer":
        act = inference_activation_bytes(spec, seq, cfg.batch, p, cfg.attention, cfg.tp)
        cache = cache_bytes(spec, seq, cfg.batch * cfg.beams, cfg.kv_dtype, tp=cfg.tp, pp=cfg.pp)
        layer_kinds = dict(cache.layers)
        if cfg.pp > 1 and spec.groups:  # each stage caches for its own layers (a stage of Gemma 3 may hold more
            # full-attention layers than another, of Nemotron-H more Mamba layers): every stage, the largest reported
            size = spec.layers // cfg.pp
            for k in range(cfg.pp):
                c = cache_bytes(layer_slice(spec, k * size, (k + 1) * size), seq, cfg.batch * cfg.beams,
                                cfg.kv_dtype, tp=cfg.tp)
                w, g, o = states(k)
                results.append(("largest", w, g, o, act, (c.kv_cache_bytes, c.state_bytes),
                                {"prefill_working_set": act}))
        else:
            k_most = max(range(cfg.pp), key=lambda k: stages.stages[k])
            w, g, o = states(k_most)
            results.append(("only" if cfg.pp == 1 else "largest", w, g, o, act,
                            (cache.kv_cache_bytes, cache.state_bytes), {"prefill_working_set": act}))
        layer_terms_out: tuple[tuple[str, int], ...] = ()
        act_layers = ()
    else:
        ac = ActivationConfig(seq=seq, batch=cfg.batch, bytes_per_value=p, attention=cfg.attention,
                              recompute=cfg.recompute, dropout=cfg.dropout, tp=cfg.tp, sp=cfg.sp, impl=cfg.impl,
                              lora_targets=cfg.lora_targets if lora else None, lora_rank=cfg.lora_rank,
                              residual_fp32=cfg.amp)
        a = activation_memory(spec, ac, cfg.pp)
        layer_terms_out = tuple((t.name, int(round(t.bytes))) for t in a.terms)
        act_layers = tuple((label, n, int(round(b))) for label, n, b in a.layer_kinds)
        detail = {"per_layer": a.layer_bytes, "embeddings": a.embedding_bytes, "output_and_loss": a.head_bytes,
                  "logits_transient": a.logits_transient_bytes, "recompute_transient": a.recompute_transient_bytes,
                  "microbatches_in_flight": a.microbatches_in_flight}
        layer_kinds = {}
        if cfg.pp == 1:
            w, g, o = states(0)
            results.append(("only", w, g, o, a.first_stage_bytes, (0, 0), detail))
        else:
            for name, k, act in (("first", 0, a.first_stage_bytes), ("last", cfg.pp - 1, a.last_stage_bytes)):
                w, g, o = states(k)
                results.append((name, w, g, o, act, (0, 0), detail))

    # Offload moves states to host memory; ZeRO-3 gathers one layer at a time (plus the prefetched next).
    finals = []
    for name, w, g, o, act, kv, detail in results:
        cpu = 0.0
        temp = 0.0
        if cfg.offload == "optimizer":
            cpu, o = o, 0.0
        elif cfg.offload == "params":
            cpu, w, g, o = w + g + o, 0.0, 0.0, 0.0
        if cfg.zero == 3 and (cfg.dp > 1 or cfg.offload == "params"):
            dtype = "nf4" if cfg.mode == "qlora" else cfg.dtype
            temp = 2 * weight_storage(spec, stages.largest_layer, dtype, cfg.quant_group).total_bytes
        elif cfg.mode == "infer" and cfg.offload == "params":  # layers streamed in from host memory
            temp = 2 * weight_storage(spec, stages.largest_layer, cfg.dtype, cfg.quant_group).total_bytes
        tensors = w + g + o + act + sum(kv) + temp
        if cfg.measured_overhead_bytes is not None:
            overhead = cfg.measured_overhead_bytes + temp
        else:
            overhead = CONTEXT_BYTES + FRAGMENTATION * tensors + temp
        breakdown = {"weights": int(round(w)), "gradients": int(round(g)), "optimizer": int(round(o)),
                     "activations": int(round(act)), "kv_cache": int(kv[0]), "state": int(kv[1]),
                     "overhead": int(round(overhead))}
        finals.append((sum(breakdown.values()), name, breakdown, int(round(cpu)), detail, temp))
    total, stage, breakdown, cpu, detail, temp = max(finals, key=lambda r: r[0])

    notes += assumptions(cfg, p, temp, stage, stored)
    by_dtype = {d: int(raw_weight_bytes(total_params, d)) for d in ("fp32", "bf16", "int8", "int4")}
    rule, text = rule_of_thumb(cfg, total_params)
    return MemoryEstimate(
        params=total_params, trainable_params=int(round(trainable_total)), breakdown=breakdown, total_bytes=total,
        cpu_bytes=cpu, stage=stage, seq=seq, activation_detail={k: float(v) for k, v in detail.items()},
        activation_terms=layer_terms_out, weights_by_dtype=by_dtype, rule_of_thumb_bytes=rule, rule_of_thumb=text,
        assumptions=tuple(notes), layer_kinds=layer_kinds, activation_layers=act_layers)


def max_inference_batch(spec: ModelSpec, gpu, seq: int, dtype: str = "bf16", kv_dtype: str | None = None,
                        headroom: float = DEFAULT_HEADROOM, tp: int = 1, attention: str = "flash",
                        beams: int = 1) -> int:
    """The largest batch of `seq`-token sequences whose weights, KV cache and activations fit one GPU (0: none).
    `gpu` is a catalog GPU, its name, or a memory size in bytes. See llmplan.estimate.gpu_fit."""
    from llmplan.estimate.gpu_fit import largest_inference_batch

    return largest_inference_batch(spec, gpu, seq, dtype, kv_dtype, headroom, tp, attention, beams)


__all__ = ["MemoryConfig", "MemoryEstimate", "estimate_memory", "max_inference_batch", "kv_cache_bytes",
           "adapter_params", "validate", "MODES", "DTYPES", "OPTIMIZERS", "OFFLOADS"]
