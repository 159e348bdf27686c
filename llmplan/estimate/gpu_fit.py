"""Does a plan fit a GPU, and on how many: the smallest ZeRO/FSDP data-parallel degree, the smallest tensor x
pipeline split for inference, or which sharding would be needed; and the largest inference batch that fits."""

from __future__ import annotations

from dataclasses import dataclass, replace

from llmplan.estimate.memory import DEFAULT_HEADROOM, MemoryConfig, estimate_memory, validate
from llmplan.estimate.shapes import tp_options
from llmplan.models.spec import ModelSpec


@dataclass(frozen=True)
class GpuFit:
    fits: bool
    usable_bytes: int
    gpus_needed: int | None
    plan: str            # the sharding that reaches gpus_needed
    suggestion: str      # what would be needed when the chosen sharding cannot fit


def usable_bytes(memory_bytes: int, headroom: float = DEFAULT_HEADROOM, headroom_bytes: int = 0) -> int:
    return int(memory_bytes * (1 - headroom)) - headroom_bytes


def _fits(cfg: MemoryConfig, usable: int) -> bool:
    return estimate_memory(cfg).total_bytes <= usable


def _smallest_dp(cfg: MemoryConfig, usable: int, limit: int = 1 << 20) -> int | None:
    """The fewest data-parallel GPUs that fit; with expert parallelism in training, a multiple of --ep (the
    expert-parallel group is drawn from the data-parallel ranks)."""
    step = cfg.ep if cfg.mode != "infer" else 1
    if not _fits(replace(cfg, dp=limit // step * step), usable):
        return None
    lo, hi = 1, limit // step
    while lo < hi:
        mid = (lo + hi) // 2
        if _fits(replace(cfg, dp=mid * step), usable):
            hi = mid
        else:
            lo = mid + 1
    return lo * step


def _tp_options(spec: ModelSpec) -> list[int]:
    return tp_options(spec)


def fit_on_gpu(cfg: MemoryConfig, memory_bytes: int, headroom: float = DEFAULT_HEADROOM,
               headroom_bytes: int = 0) -> GpuFit:
    """Does the plan fit, and the fewest GPUs that fit under the chosen sharding (ZeRO/FSDP: the smallest dp;
    inference: the smallest tensor x pipeline split)."""
    cfg = validate(cfg)
    usable = usable_bytes(memory_bytes, headroom, headroom_bytes)
    fits = _fits(cfg, usable)
    mp = cfg.tp * cfg.pp
    if cfg.mode == "infer":
        for gpus, tp, pp in sorted((t * q, t, q) for t in _tp_options(cfg.spec)
                                   for q in range(1, cfg.spec.total_layers + 1) if cfg.spec.total_layers % q == 0):
            if _fits(replace(cfg, tp=tp, pp=pp, dp=1, zero=0), usable):
                return GpuFit(fits, usable, gpus, f"tp {tp} x pp {pp}" if gpus > 1 else "one GPU", "")
        return GpuFit(fits, usable, None, "", "no tensor x pipeline split fits, down to one layer and one head per GPU: lower --batch or "
                      "--seq (the KV cache and prefill grow with both), --kv-dtype fp8, or quantized --dtype int4/fp8")
    if cfg.zero >= 1:
        dp = _smallest_dp(cfg, usable)
        if dp is not None:
            return GpuFit(fits, usable, dp * mp, f"ZeRO-{cfg.zero} over dp {dp}{_mp(cfg.tp, cfg.pp)}", "")
    elif fits:
        return GpuFit(fits, usable, mp, f"one replica{_mp(cfg.tp, cfg.pp)}; data parallelism adds whole replicas",
                      "")
    return GpuFit(fits, usable, None, "", _suggest(cfg, usable))


def _mp(tp: int, pp: int) -> str:
    return "".join(f" x {k} {v}" for k, v in (("tp", tp), ("pp", pp)) if v > 1)


def _suggest(cfg: MemoryConfig, usable: int) -> str:
    """Which sharding would fit, each with the GPUs it takes: ZeRO-3 over more GPUs, full recomputation (alone or
    with ZeRO-3), or tensor parallelism with sequence parallelism."""
    mp = cfg.tp * cfg.pp
    ideas = []

    def gpus(dp: int, tp: int = cfg.tp) -> str:
        n = dp * tp * cfg.pp
        return f"{n} GPU{'s' if n > 1 else ''}"

    if cfg.zero < 3:
        dp = _smallest_dp(replace(cfg, zero=3), usable)
        if dp is not None:
            ideas.append(f"--fsdp (--zero 3) with --dp {dp}: {gpus(dp)}")
    if cfg.recompute != "full":
        full = replace(cfg, recompute="full")
        if _fits(full, usable):
            ideas.append(f"--recompute full at this sharding: {gpus(cfg.dp if cfg.zero else 1)}"
                         + ("" if cfg.zero else " per replica"))
        else:
            dp = _smallest_dp(replace(full, zero=3), usable)
            if dp is not None:
                ideas.append(f"--recompute full --fsdp --dp {dp}: {gpus(dp)}")
    for tp in _tp_options(cfg.spec):
        if tp <= cfg.tp:
            continue
        sharded = replace(cfg, tp=tp, sp=True)
        if cfg.zero >= 1:
            dp = _smallest_dp(sharded, usable)
            if dp is not None:
                ideas.append(f"--tp {tp} --sp with ZeRO-{cfg.zero} --dp {dp}: {gpus(dp, tp)}")
                break
        elif _fits(sharded, usable):
            ideas.append(f"--tp {tp} --sp: {gpus(1, tp)} per replica")
            break
    if not ideas:
        return (f"activations alone exceed the GPU even sharded {mp}-way: lower --batch or --seq, or add "
                "--recompute full, --pp, --tp with --sp")
    return "needs " + "; or ".join(ideas)


def largest_inference_batch(spec: ModelSpec, gpu, seq: int, dtype: str = "bf16", kv_dtype: str | None = None,
                            headroom: float = DEFAULT_HEADROOM, tp: int = 1, attention: str = "flash",
                            beams: int = 1) -> int:
    """The largest batch of `seq`-token sequences whose weights, KV cache and activations fit one GPU (0: none).

    `gpu` is a catalog GPU (or its name) or a memory size in bytes."""
    if isinstance(gpu, str):
        from llmplan.hardware import get_gpu

        gpu = get_gpu(gpu)
    memory = gpu if isinstance(gpu, int) else gpu.memory_bytes
    usable = usable_bytes(memory, headroom)
    base = MemoryConfig(spec=spec, mode="infer", dtype=dtype, seq=seq, kv_dtype=kv_dtype, tp=tp,
                        attention=attention, beams=beams)
    if not _fits(base, usable):
        return 0
    hi = 1
    while _fits(replace(base, batch=hi * 2), usable):
        hi *= 2
        if hi > 1 << 24:
            return hi
    lo, hi = hi, hi * 2  # fits at lo, not at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _fits(replace(base, batch=mid), usable):
            lo = mid
        else:
            hi = mid
    return lo
