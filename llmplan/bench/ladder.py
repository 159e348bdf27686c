"""Plans of several runs: a ladder of model sizes within a time budget, and a real model's shape extrapolated from a
few layers to its full depth.

Ladder: LLaMA-style decoders (RMSNorm, SwiGLU, rotary, untied head, no biases; Touvron et al. 2023) from tiny to as
large as the budget and memory allow, each rung about twice the parameters of the one before, all at the same batch
and sequence. A rung whose predicted duration would overrun the budget is not started. Out of memory: the rung is
recorded as not fitting, memory is freed, the micro-batch halved and the rung tried again. Ctrl-C stops cleanly and
keeps what was measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

from llmplan.bench.device import DeviceInfo
from llmplan.bench.runner import BenchConfig, RunResult, run_config
from llmplan.errors import LlmplanError
from llmplan.models.spec import ModelSpec

# (hidden, layers): about 2x parameters per rung with a 32000 vocabulary; head_dim 64 up to 1024, then 128.
RUNGS = ((64, 2), (128, 2), (192, 3), (256, 4), (384, 6), (512, 8), (768, 12), (1024, 16), (1536, 16), (2048, 20),
         (2560, 24), (3072, 28), (4096, 32), (5120, 40), (6144, 48), (8192, 56))


NOISY_SPREAD_PCT = 25.0  # a step-time spread above this means the device was shared: say the fit is unreliable


def ladder_spec(hidden: int, layers: int, vocab: int, seq: int) -> ModelSpec:
    head_dim = 64 if hidden <= 1024 else 128
    ffn = -(-int(hidden * 8 / 3) // 64) * 64  # SwiGLU width 8h/3 rounded up to a multiple of 64 (LLaMA)
    return ModelSpec(name=f"ladder-h{hidden}-l{layers}", arch="decoder", layers=layers, hidden=hidden,
                     heads=max(hidden // head_dim, 1), ffn=ffn, vocab=vocab, context=seq, mlp="gated",
                     activation="silu", position="rotary", tied_embeddings=False, norm="rmsnorm",
                     source="llmplan bench ladder (LLaMA-style block)")


@dataclass(frozen=True)
class LadderResult:
    runs: tuple[RunResult, ...]
    fit: object | None                  # llmplan.fit.throughput.ThroughputFit
    fit_note: str                       # why there is no fit, or which form and why
    stopped: str                        # why the ladder ended
    interrupted: bool
    elapsed_seconds: float
    budget_seconds: float
    notes: tuple[str, ...] = field(default=())


def failure_text(exc: BaseException) -> str:
    """One line about an unexpected failure of a run (the CLI prints no traceback)."""
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first}" + ("; try --no-compile" if "compile" in repr(exc).lower()
                                                or "inductor" in repr(exc).lower() or "dynamo" in repr(exc).lower()
                                                else "")


def fit_runs(runs) -> tuple[object | None, str]:
    """Fit achieved FLOP/s against parameters over the runs that fitted in memory."""
    from llmplan.fit.throughput import MIN_POINTS, fit_throughput

    ok = [r for r in runs if r.status == "ok" and r.achieved_flops]
    if len({r.params for r in ok}) < MIN_POINTS:
        return None, f"no fit: {len({r.params for r in ok})} sizes measured, at least {MIN_POINTS} are needed"
    fit = fit_throughput([r.params for r in ok], [r.achieved_flops for r in ok])
    return fit, fit.why


def _available_bytes(device: DeviceInfo) -> int | None:
    """Memory a new rung may use: free device memory on CUDA, MemAvailable for the CPU."""
    if device.kind == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device.torch_device)[0])
    if device.kind == "cpu":
        try:
            with open("/proc/meminfo", encoding="utf-8") as fh:
                for line in fh:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
    return device.memory_bytes


def run_ladder(device: DeviceInfo, base: BenchConfig, budget_seconds: float, vocab: int = 32000,
               max_rungs: int | None = None, on_event: Callable[[str, dict], None] | None = None) -> LadderResult:
    """Climb RUNGS at base.batch x base.seq until the budget, the memory or the rungs run out.

    on_event(kind, info): "start" (rung config), "step" (phase), "done" (RunResult) for progress displays."""
    from llmplan.bench.memory_check import predicted_bytes

    if not budget_seconds > 0:
        raise LlmplanError(f"--budget-seconds must be greater than zero, got {budget_seconds}")
    emit = on_event or (lambda kind, info: None)
    t0 = time.monotonic()
    runs: list[RunResult] = []
    notes: list[str] = []
    batch = base.batch
    stopped, interrupted = "the largest rung was measured", False
    last: RunResult | None = None
    rungs = RUNGS[:max_rungs] if max_rungs else RUNGS
    try:  # Ctrl-C (or SIGTERM) anywhere between or inside rungs keeps the rungs measured
        for hidden, layers in rungs:
            spec = ladder_spec(hidden, layers, vocab, base.seq)
            cfg = replace(base, spec=spec, layers=None, batch=batch)
            if last is not None and last.step_seconds:
                # The next rung's cost: its steps at the last step time scaled by model FLOPs per step, plus the last
                # rung's warm-up beyond its steps (compilation, allocator growth), which does not grow with FLOPs.
                from llmplan.estimate.flops import train_flops_per_token

                scale = train_flops_per_token(spec, base.seq) / last.flops_per_token * (batch / last.batch)
                steps = cfg.warmup_steps + cfg.timed_steps + (1 if cfg.count_memory and not cfg.compile else 0)
                setup = max((last.warmup_seconds or 0.0) - cfg.warmup_steps * last.step_seconds, 0.0)
                expected = scale * last.step_seconds * steps + setup
                if time.monotonic() - t0 + expected > budget_seconds:
                    stopped = f"time budget: the next rung ({hidden} wide, {layers} layers) would take about " \
                              f"{expected:.0f} s more"
                    break
            predicted = predicted_bytes(cfg, device)
            available = _available_bytes(device)
            if predicted and predicted[0] and available and predicted[0] > 0.95 * available and device.kind != "cuda":
                stopped = f"memory: the next rung needs about {predicted[0] / 2**30:.1f} GiB, " \
                          f"{available / 2**30:.1f} GiB available"
                break
            try:
                while True:
                    emit("start", {"spec": spec, "batch": cfg.batch, "seq": cfg.seq})
                    result = run_config(cfg, device, on_step=lambda phase: emit("step", {"phase": phase}))
                    runs.append(result)
                    emit("done", {"result": result})
                    if result.status == "ok" or cfg.batch == 1:
                        break
                    notes.append(f"{spec.name} did not fit at batch {cfg.batch}; halving the micro-batch")
                    batch = cfg.batch // 2
                    cfg = replace(cfg, batch=batch)
            except KeyboardInterrupt:
                stopped, interrupted = "interrupted (Ctrl-C); the runs measured so far are kept", True
                break
            except Exception as exc:  # a failed compile or kernel: stop, keep what was measured, say why
                stopped = f"failed on {spec.name}: {failure_text(exc)}"
                break
            if result.status != "ok":
                stopped = f"memory: {spec.name} does not fit even at batch 1"
                break
            last = result
            if time.monotonic() - t0 > budget_seconds:
                stopped = "time budget reached"
                break
    except KeyboardInterrupt:
        stopped, interrupted = "interrupted (Ctrl-C); the runs measured so far are kept", True
    noisy = [r.name for r in runs if r.status == "ok" and (r.step_spread_pct or 0) > NOISY_SPREAD_PCT]
    if noisy:
        notes.append(f"step times of {', '.join(noisy)} spread more than {NOISY_SPREAD_PCT:g}% (interquartile "
                     "range over median): the device was busy with other work, so the fit is unreliable")
    try:
        fit, why = fit_runs(runs)
    except KeyboardInterrupt:  # during the final fit: the runs stand without it
        fit, why, interrupted = None, "no fit: interrupted during the fit", True
        stopped = "interrupted (Ctrl-C) during the fit; the runs measured are kept"
    return LadderResult(runs=tuple(runs), fit=fit, fit_note=why, stopped=stopped, interrupted=interrupted,
                        elapsed_seconds=time.monotonic() - t0, budget_seconds=budget_seconds, notes=tuple(notes))


@dataclass(frozen=True)
class Extrapolation:
    """A real model's step at full depth, from runs of a few of its layers."""

    spec_name: str
    full_layers: int
    full_params: int
    measured_layers: tuple[int, ...]
    method: str
    step_seconds: float | None
    tokens_per_second: float | None
    flops_per_token: float
    achieved_flops: float | None
    mfu: float | None
    peak_bytes_measured: int | None      # extrapolated linearly in depth
    peak_bytes_predicted: int | None     # llmplan memory for the full depth
    memory_error_pct: float | None
    fits_device: bool | None
    interrupted: bool = False
    failure: str | None = None              # why a run failed (not out of memory), if one did


def _linear(d1: int, v1: float, d2: int, v2: float, depth: int) -> float:
    """Value at `depth` on the line through (d1, v1) and (d2, v2): a fixed part (embeddings, head, loss) plus a
    per-layer part, since every layer of a model is the same shape."""
    per_layer = (v2 - v1) / (d2 - d1)
    return v2 + (depth - d2) * per_layer


def run_model(device: DeviceInfo, base: BenchConfig, layers: int,
              on_event: Callable[[str, dict], None] | None = None) -> tuple[tuple[RunResult, ...], Extrapolation]:
    """Run `layers` (and half as many) layers of base.spec, and extrapolate the step to the full depth."""
    from llmplan.bench.memory_check import predicted_bytes
    from llmplan.bench.model import built_params
    from llmplan.estimate.flops import train_flops_per_token

    spec = base.spec
    if not 1 <= layers <= spec.layers:
        raise LlmplanError(f"--layers must be between 1 and {spec.name}'s {spec.layers} layers, got {layers}")
    emit = on_event or (lambda kind, info: None)
    depths = sorted({max(1, layers // 2), layers}) if layers < spec.layers else [layers]
    runs: list[RunResult] = []
    interrupted, failure = False, None
    try:
        for depth in depths:
            cfg = replace(base, layers=depth)
            emit("start", {"spec": spec, "batch": cfg.batch, "seq": cfg.seq, "layers": depth})
            result = run_config(cfg, device, on_step=lambda phase: emit("step", {"phase": phase}))
            runs.append(result)
            emit("done", {"result": result})
            if result.status != "ok":
                break
    except KeyboardInterrupt:
        interrupted = True
    except Exception as exc:  # a failed compile or kernel: keep the depths measured, say why
        failure = failure_text(exc)
    full = spec.with_(param_count=None)
    flops_tok = train_flops_per_token(full, base.seq)
    ok = [r for r in runs if r.status == "ok"]
    step = mem = None
    method = "nothing measured"
    if len(ok) >= 2:
        a, b = ok[0], ok[-1]
        if a.peak_bytes_measured and b.peak_bytes_measured:
            mem = int(_linear(a.layers, a.peak_bytes_measured, b.layers, b.peak_bytes_measured, spec.layers))
        if b.step_seconds > a.step_seconds:
            step = _linear(a.layers, a.step_seconds, b.layers, b.step_seconds, spec.layers)
            method = f"linear in depth through {a.layers} and {b.layers} layers (fixed part + per-layer part)"
        else:  # timing noise hid the per-layer cost: a line through the two would fall with depth
            step = b.step_seconds * flops_tok / b.flops_per_token
            method = (f"{b.layers} layers scaled by model FLOPs per token ({a.layers} layers ran no faster, so "
                      "fixed and per-layer cost could not be told apart; memory linear in depth)")
    elif ok:
        r = ok[0]
        step = r.step_seconds * flops_tok / r.flops_per_token
        mem = r.peak_bytes_measured if r.layers == spec.layers else None
        method = (f"measured at full depth ({r.layers} layers)" if r.layers == spec.layers else
                  f"{r.layers} layers scaled by model FLOPs per token")
    predicted = predicted_bytes(replace(base, layers=spec.layers), device)
    pred_total = predicted[0] if predicted else None
    tokens = base.batch * base.seq / step if step else None
    achieved = flops_tok * tokens if tokens else None
    ext = Extrapolation(
        spec_name=spec.name, full_layers=spec.layers, full_params=built_params(full),
        measured_layers=tuple(r.layers for r in ok), method=method, step_seconds=step, tokens_per_second=tokens,
        flops_per_token=flops_tok, achieved_flops=achieved,
        mfu=achieved / device.peak_flops if achieved and device.peak_flops else None,
        peak_bytes_measured=mem, peak_bytes_predicted=pred_total,
        memory_error_pct=(pred_total - mem) / mem * 100 if mem and pred_total else None,
        fits_device=(mem <= device.memory_bytes) if mem and device.memory_bytes else None, interrupted=interrupted,
        failure=failure)
    return tuple(runs), ext
