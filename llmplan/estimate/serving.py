"""Serving a decoder: FLOPs per generated token, prefill and decode time on a GPU, tokens per second.

Roofline model (Williams et al. 2009; applied to LLM decoding by Pope et al. 2022, "Efficiently Scaling Transformer
Inference"): each step takes the longer of its compute time (FLOPs / (peak x MFU)) and its memory time (bytes read /
bandwidth). Prefill processes the whole prompt at once and is compute-bound; each decode step reads every weight and
the KV cache once for a handful of tokens and is memory-bound until the batch is large.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmplan.errors import LlmplanError
from llmplan.estimate.flops import forward_parts
from llmplan.estimate.timecost import check_mfu, peak_for, resolve_gpu
from llmplan.models import ModelSpec, count_params
from llmplan.models.params import expert_mlp_params
from llmplan.units import DTYPE_BYTES


INTEGER_DTYPES = ("int8", "int4", "nf4")
WEIGHT_ONLY_DTYPES = ("int4", "nf4")  # no 4-bit tensor-core matmuls in common serving stacks


def attention_flops_per_context_token(spec: ModelSpec) -> float:
    """QK^T and AV for one query against one cached token, all layers: 4 x layers x heads x head_dim."""
    return 4.0 * spec.layers * spec.q_dim


def kv_bytes_per_token(spec: ModelSpec, kv_dtype: str) -> float:
    """2 (K and V) x layers x kv_heads x head_dim x bytes per value, per token of one sequence."""
    return 2.0 * spec.layers * spec.kv_dim * DTYPE_BYTES[kv_dtype]


def weight_bytes_read(spec: ModelSpec, batch: int, dtype: str) -> float:
    """Weights read once per decode step. Mixture-of-experts: the experts the batch's tokens touch, with uniform
    routing each expert of a layer is idle for a step with probability (1 - k/E)^batch."""
    b = count_params(spec)
    if not spec.is_moe:
        return b.total * DTYPE_BYTES[dtype]
    expert_weights = spec.total_layers * spec.experts * expert_mlp_params(spec)
    touched = 1.0 - (1.0 - spec.experts_per_token / spec.experts) ** batch
    return (b.total - expert_weights + touched * expert_weights) * DTYPE_BYTES[dtype]


def _sum_max_linear(a1: float, b1: float, a2: float, b2: float, t0: int, t1: int) -> float:
    """sum over integer t in [t0, t1] of max(a1 + b1 t, a2 + b2 t), exactly (the two lines cross at most once)."""
    def s(a: float, b: float, lo: int, hi: int) -> float:
        return 0.0 if hi < lo else a * (hi - lo + 1) + b * (lo + hi) * (hi - lo + 1) / 2.0

    if b1 == b2:
        return s(max(a1, a2), b1, t0, t1)
    cross = (a2 - a1) / (b1 - b2)  # the lines meet here; the steeper one is the larger after it
    k = min(max(math.floor(cross), t0 - 1), t1)
    shallow, steep = ((a2, b2), (a1, b1)) if b1 > b2 else ((a1, b1), (a2, b2))
    return s(*shallow, t0, k) + s(*steep, k + 1, t1)


@dataclass(frozen=True)
class ServingEstimate:
    gpu: str
    n_gpus: int
    dtype: str
    kv_dtype: str
    batch: int
    prompt_tokens: int
    new_tokens: int
    mfu: float
    mfu_source: str
    flops_per_new_token: float        # at the first decode step: 2 N + attention over the prompt
    prefill_flops: float              # whole batch
    decode_flops: float               # whole batch, all new tokens
    weights_bytes_per_step: float
    kv_bytes_per_token: float         # one sequence
    prefill_seconds: float
    prefill_bound: str                # "compute" or "memory"
    first_step_seconds: float
    first_step_bound: str
    last_step_seconds: float
    last_step_bound: str
    decode_seconds: float
    total_seconds: float
    tokens_per_s_per_sequence: float  # new tokens / decode time
    tokens_per_s_batch: float
    max_batch: int | None             # largest batch that fits on the n_gpus (memory model), if known
    assumptions: tuple[str, ...] = ()


def serving_estimate(spec: ModelSpec, gpu, prompt_tokens: int, new_tokens: int, batch: int = 1, n_gpus: int = 1,
                     mfu: float = 0.4, dtype: str = "bf16", kv_dtype: str | None = None,
                     mfu_source: str = "", bandwidth_util: float = 1.0) -> ServingEstimate:
    """Prefill and decode time of `batch` sequences of `prompt_tokens` + `new_tokens` on n_gpus GPUs.

    Several GPUs are treated as ideal tensor parallelism: compute and bandwidth add up, communication is free."""
    if spec.arch != "decoder":
        raise LlmplanError(f"--mode infer models autoregressive decoding; {spec.name} is {spec.arch} "
                           "(give a decoder-only model)")
    for value, what, low in ((prompt_tokens, "--prompt-tokens", 0), (new_tokens, "--new-tokens", 1),
                             (batch, "--batch", 1), (n_gpus, "--gpus", 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise LlmplanError(f"{what} must be a whole number of at least {low}, got {value!r}")
    if not 0.0 < bandwidth_util <= 1.0:
        raise LlmplanError(f"bandwidth utilisation must be in (0, 1], got {bandwidth_util!r}")
    g = resolve_gpu(gpu)
    if not g.bandwidth_bytes_per_s > 0:
        raise LlmplanError(f"no memory bandwidth figure for {g.name}, and decoding is bound by it; "
                           "give a catalog --gpu (see `llmplan hardware`)")
    mfu = check_mfu(mfu)
    if dtype not in DTYPE_BYTES or (kv_dtype is not None and kv_dtype not in DTYPE_BYTES):
        raise LlmplanError(f"unknown dtype {dtype!r} or {kv_dtype!r}; choose one of {', '.join(DTYPE_BYTES)}")
    # Weight-only quantisation (GPTQ, AWQ, bitsandbytes 4-bit) stores weights in 4 bits but dequantises them for
    # 16-bit matmuls and keeps the KV cache in 16 bits; int8 weights usually come with 16-bit KV too.
    sixteen = "bf16" if g.peak("bf16") is not None else "fp16"
    compute_dtype = sixteen if dtype in WEIGHT_ONLY_DTYPES else dtype
    kv_dtype = kv_dtype or (sixteen if dtype in INTEGER_DTYPES else dtype)
    flops_rate = n_gpus * peak_for(g, compute_dtype) * mfu
    byte_rate = n_gpus * g.bandwidth_bytes_per_s * bandwidth_util

    parts = forward_parts(spec, 1)
    base = parts.matmul + parts.logits          # 2 N per token (without the input embedding lookup)
    a = attention_flops_per_context_token(spec)
    kv = kv_bytes_per_token(spec, kv_dtype)
    P, G, B = prompt_tokens, new_tokens, batch

    # Prefill: causal attention, token i attends i tokens (sum = P(P+1)/2); weights read once.
    prefill_flops = B * (P * base + a * P * (P + 1) / 2.0)
    prefill_compute = prefill_flops / flops_rate
    prefill_memory = (weight_bytes_read(spec, B * max(P, 1), dtype) + B * kv * P) / byte_rate if P else 0.0
    prefill_seconds = max(prefill_compute, prefill_memory)

    # Decode step at context t (t = P+1 .. P+G): compute B (base + a t); memory weights + B kv t.
    w = weight_bytes_read(spec, B, dtype)
    c0, c1 = B * base / flops_rate, B * a / flops_rate
    m0, m1 = w / byte_rate, B * kv / byte_rate
    t0, t1 = P + 1, P + G
    decode_seconds = _sum_max_linear(c0, c1, m0, m1, t0, t1)

    def step(t: int) -> tuple[float, str]:
        c, m = c0 + c1 * t, m0 + m1 * t
        return (c, "compute") if c >= m else (m, "memory")

    first, first_bound = step(t0)
    last, last_bound = step(t1)
    decode_flops = B * (G * base + a * (t0 + t1) * G / 2.0)

    max_batch = None
    assumptions = [
        f"weights and KV cache read once per decode step at {bandwidth_util:.0%} of the datasheet bandwidth "
        f"({g.bandwidth_bytes_per_s / 1e12:g} TB/s per GPU): a lower bound on time",
        f"compute at MFU {mfu:.3g} of the dense {compute_dtype} peak"
        + (f" ({dtype} weights dequantised for 16-bit matmuls)" if compute_dtype != dtype else "")
        + "; causal attention (each token attends only earlier ones)",
        "no scheduling, sampling, tokenisation or network time; every sequence has the same length",
    ]
    if n_gpus > 1:
        assumptions.append(f"{n_gpus} GPUs as ideal tensor parallelism (compute and bandwidth add, no communication)")
    try:
        from llmplan.estimate.memory import max_inference_batch
    except ImportError:
        assumptions.append("largest batch not computed: the memory model is not available")
    else:
        # per GPU group: the weights and KV cache split over n_gpus by tensor parallelism
        max_batch = int(max_inference_batch(spec, g, P + G, dtype=dtype, kv_dtype=kv_dtype, tp=n_gpus))
    return ServingEstimate(
        gpu=g.name, n_gpus=n_gpus, dtype=dtype, kv_dtype=kv_dtype, batch=B, prompt_tokens=P, new_tokens=G, mfu=mfu,
        mfu_source=mfu_source, flops_per_new_token=base + a * t0, prefill_flops=prefill_flops,
        decode_flops=decode_flops, weights_bytes_per_step=w, kv_bytes_per_token=kv, prefill_seconds=prefill_seconds,
        prefill_bound="compute" if prefill_compute >= prefill_memory else "memory", first_step_seconds=first,
        first_step_bound=first_bound, last_step_seconds=last, last_step_bound=last_bound,
        decode_seconds=decode_seconds, total_seconds=prefill_seconds + decode_seconds,
        tokens_per_s_per_sequence=G / decode_seconds, tokens_per_s_batch=B * G / decode_seconds,
        max_batch=max_batch, assumptions=tuple(assumptions),
    )
