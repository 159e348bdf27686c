"""Does a plan fit a GPU, and on how many: the smallest ZeRO/FSDP data-parallel degree, the smallest tensor x
pipeline split for inference, or which sharding would be needed; and the largest inference batch that fits."""

from __future__ import annotations

from dataclasses import dataclass, replace

from llmplan.estimate.memory import DEFAULT_HEADROOM, MemoryConfig, estimate_memory, validate
from llmplan.estimate.shapes import tp_options
from llmplan.models.spec import ModelSpec


@dataclass(frozen=True)
class Remedy:
    """A change of options that makes the plan fit, and the GPUs it then takes in all."""

    options: str  # as typed on the command line, e.g. "--zero 3 --dp 17 --recompute full"
    gpus: int


@dataclass(frozen=True)
class GpuFit:
    fits: bool
    usable_bytes: int
    gpus_needed: int | None  # the chosen sharding on more GPUs, else the cheapest remedy; None: nothing fits
    plan: str            # the sharding (or remedy) that reaches gpus_needed
    suggestion: str      # the remedies in words, or what to lower when none fits
    remedies: tuple[Remedy, ...] = ()  # when it does not fit as given: single-GPU changes first, then by GPUs


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
    remedies = () if fits else tuple(find_remedies(cfg, usable))
    words = "needs " + "; or ".join(f"{r.options}: {_n(r.gpus)}" for r in remedies) if remedies else ""
    if cfg.mode == "infer":
        split = _smallest_split(cfg, usable)
        if split is not None:
            gpus, tp, pp = split
            return GpuFit(fits, usable, gpus, f"tp {tp} x pp {pp}" if gpus > 1 else "one GPU", words, remedies)
        if remedies:
            best = min(remedies, key=lambda r: r.gpus)
            return GpuFit(fits, usable, best.gpus, best.options, words, remedies)
        return GpuFit(fits, usable, None, "", "no tensor x pipeline split fits, down to one layer and one head per "
                      "GPU: lower --batch or --seq (the KV cache and prefill grow with both), --kv-dtype fp8, or "
                      "quantized --dtype int4/fp8")
    if cfg.zero >= 1:
        dp = _smallest_dp(cfg, usable)
        if dp is not None:
            return GpuFit(fits, usable, dp * mp, f"ZeRO-{cfg.zero} over dp {dp}{_mp(cfg.tp, cfg.pp)}", words,
                          remedies)
    elif fits:
        return GpuFit(fits, usable, mp, f"one replica{_mp(cfg.tp, cfg.pp)}; data parallelism adds whole replicas",
                      "")
    if remedies:
        best = min(remedies, key=lambda r: r.gpus)  # the first of the fewest GPUs: the simplest change
        return GpuFit(fits, usable, best.gpus, best.options, words, remedies)
    return GpuFit(fits, usable, None, "", f"activations alone exceed the GPU even sharded {mp}-way: lower --batch "
                  "or --seq, or add --recompute full, --pp, --tp with --sp")


def _n(gpus: int) -> str:
    return f"{gpus} GPU{'s' if gpus > 1 else ''}"


def _smallest_split(cfg: MemoryConfig, usable: int) -> tuple[int, int, int] | None:
    """Inference: the fewest GPUs of a tensor x pipeline split that fits, as (gpus, tp, pp)."""
    layers = cfg.spec.total_layers
    for gpus, tp, pp in sorted((t * q, t, q) for t in _tp_options(cfg.spec)
                               for q in range(1, layers + 1) if layers % q == 0):
        if _fits(replace(cfg, tp=tp, pp=pp, dp=1, zero=0), usable):
            return gpus, tp, pp
    return None


def _try(cfg: MemoryConfig, usable: int, **changes) -> bool:
    from llmplan.errors import LlmplanError

    try:
        return _fits(validate(replace(cfg, **changes)), usable)
    except LlmplanError:  # a combination the memory model refuses (e.g. QLoRA in fp8) is no remedy
        return False


def find_remedies(cfg: MemoryConfig, usable: int, limit: int = 6) -> list[Remedy]:
    """Changes that make the plan fit, each with the GPUs it takes: first those that keep the GPUs as they are
    (8-bit optimizer states, CPU offload, full recomputation, LoRA/QLoRA for fine-tuning; a quantized KV cache or
    weights for inference), then sharding over more GPUs (ZeRO-3, with recomputation, tensor parallelism)."""
    mp = cfg.tp * cfg.pp
    now = cfg.dp * mp if cfg.zero else mp
    single: list[tuple[str, dict]] = []
    if cfg.mode == "infer":
        if cfg.kv_dtype not in ("fp8", "int8"):
            single.append(("--kv-dtype fp8", {"kv_dtype": "fp8"}))
        for dt in ("int8", "int4"):
            if cfg.dtype in ("fp32", "fp16", "bf16"):
                # a --dtype given replaces the checkpoint's stored format (memory's stored_weights)
                single.append((f"--dtype {dt}", {"dtype": dt, "stored_weights": False}))
                single.append((f"--dtype {dt} --kv-dtype fp8", {"dtype": dt, "kv_dtype": "fp8",
                                                                "stored_weights": False}))
    else:
        steps: list[tuple[str, dict]] = []
        if cfg.mode in ("train", "finetune") and cfg.optimizer == "adamw":
            steps.append(("--optimizer adam8bit", {"optimizer": "adam8bit"}))
        if cfg.offload == "none":
            steps.append(("--offload optimizer", {"offload": "optimizer"}))
        if cfg.zero == 3 and cfg.offload != "params":
            steps.append(("--offload params", {"offload": "params"}))
        if cfg.mode == "finetune":
            steps += [("--mode lora", {"mode": "lora", "optimizer": "adamw"})]
        if cfg.mode in ("finetune", "lora"):
            steps += [("--mode qlora", {"mode": "qlora", "optimizer": "adamw"})]
        recompute = [("--recompute full", {"recompute": "full"})] if cfg.recompute != "full" else []
        single = recompute + steps + [(f"{o} {r}", {**c, **rc}) for o, c in steps for r, rc in recompute]
    out = [Remedy(options, now) for options, changes in single if _try(cfg, usable, **changes)]
    if cfg.mode == "infer":
        return out[:limit]
    many: list[tuple[str, MemoryConfig]] = []
    if cfg.zero >= 1:
        many.append(("--dp {dp}", cfg))
    if cfg.zero < 3:
        many.append(("--zero 3 --dp {dp}", replace(cfg, zero=3)))
    if cfg.recompute != "full":
        many.append(("--zero 3 --dp {dp} --recompute full", replace(cfg, zero=3, recompute="full")))
    for text, c in many:
        dp = _smallest_dp(c, usable)
        if dp is not None:
            out.append(Remedy(text.format(dp=dp), dp * mp))
    for tp in _tp_options(cfg.spec):  # the smallest tensor-parallel degree (with sequence parallelism) that fits
        if tp <= cfg.tp:
            continue
        sharded = replace(cfg, tp=tp, sp=True)
        if cfg.zero >= 1:
            dp = _smallest_dp(sharded, usable)
            if dp is not None:
                out.append(Remedy(f"--tp {tp} --sp --dp {dp}", dp * tp * cfg.pp))
                break
        elif _fits(sharded, usable):
            out.append(Remedy(f"--tp {tp} --sp", tp * cfg.pp))
            break
    seen, unique = set(), []
    for r in sorted(out, key=lambda r: (r.gpus > now, r.gpus)):  # single-GPU first, then fewest GPUs; stable
        if r.options not in seen:
            seen.add(r.options)
            unique.append(r)
    return unique[:limit]


def _mp(tp: int, pp: int) -> str:
    return "".join(f" x {k} {v}" for k, v in (("tp", tp), ("pp", pp)) if v > 1)


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
