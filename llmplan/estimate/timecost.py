"""From FLOPs to wall-clock time, GPU-hours, cost and energy on a given accelerator, and back (budget from time).

MFU (model FLOPs utilisation, Chowdhery et al. 2022, PaLM Appendix B) is the fraction of the dense peak that the
model FLOPs reach: time = model FLOPs / (GPUs x dense peak x MFU).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.errors import LlmplanError
from llmplan.hardware import GPU, get_gpu
from llmplan.units import PFLOPS_DAY

# Published bf16 MFU anchors on H100s: MPT-1B 41.8% (llm-foundry benchmark tables), Llama 3.1 8B about 39%
# (torchtitan, FSDP + torch.compile). 0.40 sits between them.
DEFAULT_MFU = 0.40
DEFAULT_MFU_SOURCE = ("default 0.40 (published bf16 anchors on 8x H100: MPT-1B 41.8% MFU, llm-foundry; "
                      "Llama 3.1 8B about 39%, torchtitan)")

# The devices one petaFLOP/s-day is usually expressed in, with the format each is quoted at.
EQUIVALENT_DEVICES = (("V100-16GB", "fp16"), ("A100-80GB", "bf16"), ("H100-SXM", "bf16"), ("H200", "bf16"))

FOLKLORE = ("'1 PF/s-day is about 8 V100s or 2 A100s for a day': true for V100s (8.0 at 125 TFLOP/s fp16); an "
            "A100 day is 0.312 PF/s-days at dense bf16, so 1 PF/s-day is 3.2 A100-days; the 1.6 that '2 A100s' "
            "rounds holds only at the 2:4-sparse 624 TFLOP/s, which dense training never reaches")


def check_mfu(mfu: float) -> float:
    if not isinstance(mfu, (int, float)) or isinstance(mfu, bool) or not 0.0 < mfu <= 1.0:
        raise LlmplanError(f"MFU must be a fraction in (0, 1], e.g. 0.4 for 40%; got {mfu!r}")
    return float(mfu)


def resolve_gpu(gpu: GPU | str) -> GPU:
    return get_gpu(gpu) if isinstance(gpu, str) else gpu


def peak_for(gpu: GPU, dtype: str) -> float:
    """Dense peak FLOP/s of `gpu` for `dtype`, or a clear error when the chip has no such mode."""
    peak = gpu.peak(dtype)
    if peak is None:
        raise LlmplanError(f"{gpu.name} has no {dtype} tensor rate in the catalog; choose --dtype from "
                           f"{', '.join(gpu.peak_flops)}")
    return peak


@dataclass(frozen=True)
class TrainingRun:
    """Time, cost and energy of executing `executed_flops` on n_gpus GPUs."""

    gpu: str
    n_gpus: int
    dtype: str
    peak_flops_per_gpu: float   # dense datasheet peak for dtype
    mfu: float                  # utilisation of that peak for the work executed
    mfu_source: str
    model_flops: float          # detailed model FLOPs (the MFU numerator)
    executed_flops: float       # model FLOPs plus recomputation
    wall_seconds: float
    gpu_hours: float
    effective_mfu: float        # model FLOPs / (time x peak): lower than mfu when recomputing
    price_per_gpu_hour: float | None
    cost: float | None
    power_watts: float | None
    pue: float | None
    energy_kwh: float | None
    energy_counted: str
    assumptions: tuple[str, ...] = ()


def training_run(model_flops: float, executed_flops: float, gpu: GPU | str, n_gpus: int, mfu: float,
                 dtype: str = "bf16", mfu_source: str = DEFAULT_MFU_SOURCE, price_per_gpu_hour: float | None = None,
                 pue: float | None = None) -> TrainingRun:
    """Wall-clock time = executed FLOPs / (n_gpus x dense peak x mfu).

    `mfu` is read as the utilisation the GPUs reach on the work they execute (the MFU of a run without
    recomputation), so recomputation lengthens the run and lowers the effective MFU by model/executed.
    Energy: GPU board power at its rated limit x GPUs x time (x PUE when given)."""
    g = resolve_gpu(gpu)
    mfu = check_mfu(mfu)
    if not isinstance(n_gpus, int) or isinstance(n_gpus, bool) or n_gpus < 1:
        raise LlmplanError(f"number of GPUs must be a whole number of at least 1, got {n_gpus!r}")
    if not model_flops > 0 or executed_flops < model_flops:
        raise LlmplanError(f"FLOPs must be positive and executed >= model FLOPs, got {model_flops}, {executed_flops}")
    if price_per_gpu_hour is not None and not price_per_gpu_hour >= 0:
        raise LlmplanError(f"price per GPU-hour must be zero or more, got {price_per_gpu_hour!r}")
    if pue is not None and not pue >= 1.0:
        raise LlmplanError(f"PUE (facility power / IT power) must be at least 1.0, got {pue!r}")
    peak = peak_for(g, dtype)
    wall = executed_flops / (n_gpus * peak * mfu)
    gpu_hours = n_gpus * wall / 3600.0
    cost = None if price_per_gpu_hour is None else price_per_gpu_hour * gpu_hours
    if g.power_watts:
        energy_kwh = g.power_watts * n_gpus * wall * (pue or 1.0) / 3.6e6  # 1 kWh = 3.6e6 J
        counted = (f"GPU board power only, at the full rated {g.power_watts:g} W per GPU for the whole run; "
                   + (f"x PUE {pue:g} for the facility (cooling, power delivery)" if pue
                      else "no host CPUs, memory, network, storage or cooling (no PUE; give --pue to add it)"))
    else:
        energy_kwh = None
        counted = f"not estimated: no published power figure for {g.name}"
    assumptions = [
        f"{dtype} dense peak of {peak / 1e12:g} TFLOP/s per GPU ("
        + (f"from the {g.source}" if g.source.startswith("calibration profile") else "datasheet")
        + "; sparse figures never used)",
        f"MFU {mfu:.3g} sustained for the whole run (no failures, restarts, evaluation or checkpoint stalls)",
    ]
    if executed_flops > model_flops:
        assumptions.append("recomputation runs at the same utilisation as the rest of the step")
    return TrainingRun(
        gpu=g.name, n_gpus=n_gpus, dtype=dtype, peak_flops_per_gpu=peak, mfu=mfu, mfu_source=mfu_source,
        model_flops=model_flops, executed_flops=executed_flops, wall_seconds=wall, gpu_hours=gpu_hours,
        effective_mfu=mfu * model_flops / executed_flops, price_per_gpu_hour=price_per_gpu_hour, cost=cost,
        power_watts=g.power_watts, pue=pue, energy_kwh=energy_kwh, energy_counted=counted,
        assumptions=tuple(assumptions),
    )


def pflops_days(flops: float) -> float:
    """FLOPs in petaFLOP/s-days: 1 PF/s-day = 1e15 FLOP/s x 86,400 s = 8.64e19 FLOPs (GPT-3 paper, Appendix D)."""
    return flops / PFLOPS_DAY


@dataclass(frozen=True)
class DeviceEquivalent:
    gpu: str
    dtype: str
    peak_flops: float
    device_days_per_pflops_day: float   # 1e15 / dense peak


def device_equivalents(devices=EQUIVALENT_DEVICES) -> list[DeviceEquivalent]:
    """Device-days that one PF/s-day takes at dense peak (100% utilisation): 1e15 FLOP/s / peak."""
    out = []
    for name, dtype in devices:
        g = get_gpu(name)
        peak = peak_for(g, dtype)
        out.append(DeviceEquivalent(g.name, dtype, peak, 1e15 / peak))
    return out


@dataclass(frozen=True)
class BudgetSizing:
    """The FLOP budget that n GPUs deliver in a time, and the compute-optimal size it buys under a law."""

    gpu: str
    n_gpus: int
    dtype: str
    seconds: float
    mfu: float
    mfu_source: str
    flops: float
    pflops_days: float
    law: str
    optimal_params: float
    optimal_tokens: float


def budget_sizing(gpu: GPU | str, n_gpus: int, seconds: float, mfu: float, dtype: str = "bf16",
                  law: str = "rule20", mfu_source: str = DEFAULT_MFU_SOURCE) -> BudgetSizing:
    """C = GPUs x peak x MFU x time, then (N, D) = law.optimal(C) (laws use C = 6 N D)."""
    from llmplan.estimate.flops import flops_budget
    from llmplan.estimate.laws import get_law

    g = resolve_gpu(gpu)
    peak_for(g, dtype)
    flops = flops_budget(g, n_gpus, seconds, check_mfu(mfu), dtype)
    chosen = get_law(law)
    n, d = chosen.optimal(flops)
    return BudgetSizing(gpu=g.name, n_gpus=n_gpus, dtype=dtype, seconds=seconds, mfu=mfu, mfu_source=mfu_source,
                        flops=flops, pflops_days=pflops_days(flops), law=chosen.name, optimal_params=n,
                        optimal_tokens=d)
