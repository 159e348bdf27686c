"""Kernel measurements that calibrate the step-time and serving models on this machine (`llmplan bench --calibrate`).

Measured here, each as warm-up calls, then several samples timed between device synchronisations (CUDA events on a
GPU), each sample long enough to dwarf the timer, and the median with the interquartile spread reported:
- GEMM: C = A B for A (m x k), B (k x n) over square and skinny shapes (small m, as in decode); 2 m n k FLOPs.
- Memory streaming bandwidth (HBM on a GPU, main memory on a CPU): a copy of a buffer larger than the caches,
  counted as read + write, 2 x bytes (McCalpin's STREAM "Copy" convention).
- Attention through torch.nn.functional.scaled_dot_product_attention: prefill (causal, seq x seq; 4 b h s^2 d FLOPs
  halved for the causal mask, as FlashAttention's benchmarks count them) and decode (one query over a KV cache of
  length L: 4 b h L d FLOPs, and the K and V bytes read, 2 b h_kv L d x element size, beside the query and output).
The result is plain data under the keys of the calibration profile (llmplan/calibration.py): gemm_curve,
hbm_bytes_per_s, attention. torch is imported inside the functions.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

from llmplan.bench.device import DeviceInfo
from llmplan.errors import LlmplanError

TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
ELEMENT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass(frozen=True)
class KernelPlan:
    """What to measure: GEMM shapes (m, n, k) per dtype, the streamed buffer, attention shapes, and how often."""

    gemm_shapes: tuple[tuple[int, int, int], ...]
    dtypes: tuple[str, ...]
    stream_bytes: int                                        # size of the copied buffer (2x that moves)
    prefill: tuple[tuple[int, int, int, int], ...]           # (batch, heads, seq, head_dim), causal
    decode: tuple[tuple[int, int, int, int, int], ...]       # (batch, heads, kv_heads, kv_len, head_dim)
    attention_dtype: str
    warmup: int = 2
    repeats: int = 5
    sample_seconds: float = 0.005                            # each timed sample runs the kernel at least this long

    @property
    def count(self) -> int:
        """Measurements in the plan (one progress step each)."""
        return len(self.gemm_shapes) * len(self.dtypes) + 1 + len(self.prefill) + len(self.decode)

    @property
    def predicted_seconds(self) -> float:
        """About how long the plan takes: per measurement, the samples plus about as many again for the warm-up,
        the calls that size a sample and the tensors' set-up (a CPU's `--quick` plan: about a second)."""
        return self.count * 2 * (self.repeats + 1) * self.sample_seconds


def _square_and_skinny(squares, skinny_m, wide) -> tuple[tuple[int, int, int], ...]:
    """Square GEMMs of power-of-two sizes and skinny ones (m x wide x wide), wide = 3 x a power of two: a skinny
    shape then never has the FLOPs of a square one (2 m wide^2 is not 2 s^3), so a curve read by FLOPs
    (llmplan.hardware.efficiency) gets one point per FLOP count."""
    return tuple((s, s, s) for s in squares) + tuple((m, wide, wide) for m in skinny_m)


def plan_for(device: DeviceInfo, quick: bool = False) -> KernelPlan:
    """Sizes for the device: a CPU run takes seconds; a GPU run well under a minute (bf16 and fp32 GEMMs)."""
    if device.kind == "cpu":
        if quick:
            return KernelPlan(gemm_shapes=_square_and_skinny((64, 128, 256, 512), (1, 8, 64), 768),
                              dtypes=("fp32",), stream_bytes=64 << 20,
                              prefill=((1, 4, 256, 64),), decode=((1, 8, 2, 4096, 64),), attention_dtype="fp32",
                              warmup=1, repeats=5, sample_seconds=0.003)
        return KernelPlan(gemm_shapes=_square_and_skinny((64, 128, 256, 512, 1024), (1, 8, 64, 256), 1536),
                          dtypes=("fp32",), stream_bytes=256 << 20,
                          prefill=((1, 4, 256, 64), (1, 8, 1024, 64)),
                          decode=((1, 8, 2, 4096, 64), (4, 8, 2, 16384, 64)), attention_dtype="fp32",
                          warmup=2, repeats=7, sample_seconds=0.02)
    low = device.dtype if device.dtype in ("bf16", "fp16") else "bf16" if device.kind == "cuda" else "fp32"
    dtypes = (low, "fp32") if low != "fp32" else ("fp32",)
    squares = (256, 512, 1024, 2048, 4096) if quick else (256, 512, 1024, 2048, 4096, 8192)
    skinny = (1, 16, 128, 1024) if quick else (1, 8, 32, 128, 512, 2048)
    return KernelPlan(gemm_shapes=_square_and_skinny(squares, skinny, 3072 if quick else 6144), dtypes=dtypes,
                      stream_bytes=(256 << 20) if quick else (1 << 30),
                      prefill=((4, 16, 1024, 128), (1, 16, 4096, 128)) if quick else
                      ((4, 16, 1024, 128), (2, 16, 4096, 128), (1, 16, 8192, 128)),
                      decode=((8, 32, 8, 4096, 128),) if quick else
                      ((1, 32, 8, 32768, 128), (16, 32, 8, 8192, 128), (16, 32, 8, 32768, 128)),
                      attention_dtype=low, warmup=3, repeats=5 if quick else 7,
                      sample_seconds=0.01 if quick else 0.025)


def _sync(device: DeviceInfo) -> None:
    import torch

    if device.kind == "cuda":
        torch.cuda.synchronize(device.torch_device)
    elif device.kind == "mps":
        torch.mps.synchronize()


def time_kernel(fn: Callable[[], object], device: DeviceInfo, warmup: int, repeats: int,
                sample_seconds: float) -> dict:
    """Seconds per call of fn: `warmup` untimed calls, then `repeats` samples of n calls each (n chosen so that a
    sample lasts at least sample_seconds), timed with CUDA events on a GPU, else perf_counter between syncs."""
    import torch

    for _ in range(max(warmup, 1)):
        fn()
    _sync(device)
    inner = 1
    while True:  # calls per sample: 1, 2, 5, 10, 20, ... until a sample lasts sample_seconds (timeit's autorange)
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        _sync(device)
        elapsed = time.perf_counter() - t
        if elapsed >= sample_seconds or inner >= 10_000:
            break
        inner = next(x * 10 ** e for e in range(6) for x in (1, 2, 5) if x * 10 ** e > inner)
    cuda = device.kind == "cuda"
    samples = []
    for _ in range(repeats):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1000.0 / inner)
        else:
            t = time.perf_counter()
            for _ in range(inner):
                fn()
            _sync(device)
            samples.append((time.perf_counter() - t) / inner)
    median = statistics.median(samples)
    q = statistics.quantiles(samples, n=4, method="inclusive") if len(samples) > 1 else [median] * 3
    return {"seconds": median, "seconds_min": min(samples), "seconds_max": max(samples),
            "spread_pct": (q[2] - q[0]) / median * 100.0, "repeats": repeats, "calls_per_sample": inner}


def _dtype(torch, name: str):
    return getattr(torch, TORCH_DTYPES[name])


def measure_gemm(device: DeviceInfo, m: int, n: int, k: int, dtype: str, plan: KernelPlan) -> dict:
    import torch

    dt, dev = _dtype(torch, dtype), device.torch_device
    a = torch.randn(m, k, device=dev, dtype=dt)
    b = torch.randn(k, n, device=dev, dtype=dt)
    c = torch.empty(m, n, device=dev, dtype=dt)
    timing = time_kernel(lambda: torch.matmul(a, b, out=c), device, plan.warmup, plan.repeats, plan.sample_seconds)
    flops = 2.0 * m * n * k  # one multiply and one add per (i, j, l)
    return {"m": m, "n": n, "k": k, "dtype": dtype, "flops_per_s": flops / timing["seconds"], "flops": flops,
            **timing}


def measure_stream(device: DeviceInfo, nbytes: int, plan: KernelPlan) -> dict:
    import torch

    n = max(nbytes // 4, 1)
    src = torch.ones(n, device=device.torch_device, dtype=torch.float32)
    dst = torch.empty_like(src)
    timing = time_kernel(lambda: dst.copy_(src), device, plan.warmup, plan.repeats, plan.sample_seconds)
    moved = 2.0 * n * 4  # STREAM Copy: every byte read once and written once
    return {"method": "copy of a buffer (read + write counted, STREAM Copy)", "buffer_bytes": n * 4,
            "bytes_moved": moved, "bytes_per_s": moved / timing["seconds"], **timing}


def _sdpa(torch, q, k, v, causal: bool):
    import torch.nn.functional as F

    if k.shape[1] == q.shape[1]:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    try:  # grouped-query attention without copying K and V (torch 2.5 and later)
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
    except TypeError:
        rep = q.shape[1] // k.shape[1]
        return F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1),
                                              is_causal=causal)


def measure_prefill(device: DeviceInfo, batch: int, heads: int, seq: int, head_dim: int, dtype: str,
                    plan: KernelPlan) -> dict:
    import torch

    dt, dev = _dtype(torch, dtype), device.torch_device
    q, k, v = (torch.randn(batch, heads, seq, head_dim, device=dev, dtype=dt) for _ in range(3))
    timing = time_kernel(lambda: _sdpa(torch, q, k, v, True), device, plan.warmup, plan.repeats,
                         plan.sample_seconds)
    # QK^T and PV: 2 x 2 b h s^2 d, of which the causal mask leaves half (FlashAttention's benchmark convention)
    flops = 4.0 * batch * heads * seq * seq * head_dim / 2
    moved = 4.0 * batch * heads * seq * head_dim * ELEMENT_BYTES[dtype]  # Q, K, V read, O written
    return {"kind": "prefill", "seq": seq, "batch": batch, "heads": heads, "kv_heads": heads, "head_dim": head_dim,
            "dtype": dtype, "causal": True, "flops": flops, "flops_per_s": flops / timing["seconds"],
            "bytes": moved, "bytes_per_s": moved / timing["seconds"], **timing}


def measure_decode(device: DeviceInfo, batch: int, heads: int, kv_heads: int, kv_len: int, head_dim: int,
                   dtype: str, plan: KernelPlan) -> dict:
    import torch

    if heads % kv_heads:
        raise LlmplanError(f"decode attention: {heads} query heads are not a multiple of {kv_heads} KV heads")
    dt, dev = _dtype(torch, dtype), device.torch_device
    q = torch.randn(batch, heads, 1, head_dim, device=dev, dtype=dt)
    k, v = (torch.randn(batch, kv_heads, kv_len, head_dim, device=dev, dtype=dt) for _ in range(2))
    timing = time_kernel(lambda: _sdpa(torch, q, k, v, False), device, plan.warmup, plan.repeats,
                         plan.sample_seconds)
    flops = 4.0 * batch * heads * kv_len * head_dim  # one query: q K^T and p V over L keys
    e = ELEMENT_BYTES[dtype]
    moved = 2.0 * batch * kv_heads * kv_len * head_dim * e + 2.0 * batch * heads * head_dim * e  # K, V; q, out
    return {"kind": "decode", "seq": kv_len, "batch": batch, "heads": heads, "kv_heads": kv_heads,
            "head_dim": head_dim, "dtype": dtype, "causal": False, "flops": flops,
            "flops_per_s": flops / timing["seconds"], "bytes": moved, "bytes_per_s": moved / timing["seconds"],
            **timing}


def _is_oom(exc: BaseException) -> bool:
    from llmplan.bench.runner import _is_oom as runner_oom

    return runner_oom(exc)


def measure_kernels(device: DeviceInfo, plan: KernelPlan,
                    on_step: Callable[[str], None] | None = None) -> dict:
    """Every measurement of the plan; a shape that does not fit in memory is left out with a note.
    KeyboardInterrupt stops the loop and keeps what was measured (interrupted: true)."""
    step = on_step or (lambda what: None)
    gemm, attention, notes = [], [], []
    stream = None
    t0 = time.perf_counter()
    jobs: list[tuple[str, Callable[[], dict]]] = []
    for dtype in plan.dtypes:
        for m, n, k in plan.gemm_shapes:
            jobs.append((f"GEMM {m}x{n}x{k} {dtype}", lambda m=m, n=n, k=k, d=dtype: measure_gemm(
                device, m, n, k, d, plan)))
    jobs.append(("memory bandwidth", lambda: measure_stream(device, plan.stream_bytes, plan)))
    for b, h, s, d in plan.prefill:
        jobs.append((f"attention prefill b{b} h{h} s{s}", lambda b=b, h=h, s=s, d=d: measure_prefill(
            device, b, h, s, d, plan.attention_dtype, plan)))
    for b, h, hkv, length, d in plan.decode:
        jobs.append((f"attention decode b{b} kv {length}", lambda b=b, h=h, hkv=hkv, length=length, d=d:
                     measure_decode(device, b, h, hkv, length, d, plan.attention_dtype, plan)))
    interrupted = False
    try:
        for what, job in jobs:
            step(what)
            try:
                result = job()
            except Exception as exc:
                if not _is_oom(exc):
                    raise
                notes.append(f"{what}: out of memory, not measured")
                _free(device)
                continue
            if what == "memory bandwidth":
                stream = result
            elif what.startswith("GEMM"):
                gemm.append(result)
            else:
                attention.append(result)
            _free(device)
    except KeyboardInterrupt:
        interrupted = True
    return {"gemm_curve": gemm, "hbm_bytes_per_s": stream["bytes_per_s"] if stream else None,
            "memory_bandwidth": stream, "attention": attention, "seconds": time.perf_counter() - t0,
            "interrupted": interrupted, "notes": notes,
            "settings": {"warmup": plan.warmup, "repeats": plan.repeats, "sample_seconds": plan.sample_seconds,
                         "dtypes": list(plan.dtypes), "attention_dtype": plan.attention_dtype}}


def _free(device: DeviceInfo) -> None:
    import gc

    gc.collect()
    if device.kind == "cuda":
        import torch

        torch.cuda.empty_cache()
