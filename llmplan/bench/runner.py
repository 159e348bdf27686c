"""Timing one configuration: real training steps (forward, backward, AdamW) of a model built from a ModelSpec.

Method (as careful benchmarks do): warm-up steps first (they include torch.compile and allocator growth) and are
excluded; the device is synchronised around the timed region and CUDA events time each step; several timed steps,
median and spread reported. Random tokens are the data: throughput and memory do not depend on the text.
Model FLOPs per token are llmplan's own count (llmplan.estimate.flops.train_flops_per_token), so achieved FLOP/s
and MFU here mean what `llmplan compute` means (PaLM Appendix B: model FLOPs, recomputation not credited).
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

from llmplan.bench.device import DeviceInfo, EnergyMeter
from llmplan.bench.memory_check import counted_bytes, predicted_bytes
from llmplan.errors import LlmplanError
from llmplan.models.spec import ModelSpec


@dataclass(frozen=True)
class BenchConfig:
    spec: ModelSpec
    layers: int | None = None    # layers to build (None: the spec's own depth)
    batch: int = 4               # micro-batch, sequences per step
    seq: int = 128               # tokens per sequence
    attention: str = "flash"     # "flash": F.scaled_dot_product_attention; "eager": softmax(QK^T) materialised
    recompute: str = "none"      # "none" | "selective" | "full" activation recomputation
    compile: bool = False        # torch.compile the model (CUDA default in the CLI)
    warmup_steps: int = 2
    timed_steps: int = 5
    count_memory: bool = True    # count model-state and saved-tensor bytes in one extra, untimed step
    seed: int = 0

    @property
    def built_layers(self) -> int:
        return self.layers or self.spec.layers

    @property
    def built_spec(self) -> ModelSpec:
        from llmplan.estimate.shapes import truncated

        return truncated(self.spec.with_(param_count=None), self.built_layers)


@dataclass(frozen=True)
class RunResult:
    status: str                       # "ok", or "oom" (did not fit: nothing timed)
    name: str
    params: int                       # parameters of the model built
    layers: int
    batch: int
    seq: int
    dtype: str
    attention: str
    recompute: str
    compiled: bool
    step_seconds: float | None = None          # median of the timed steps
    step_seconds_min: float | None = None
    step_seconds_max: float | None = None
    step_spread_pct: float | None = None       # interquartile range / median, in percent
    step_times: tuple[float, ...] = ()
    warmup_seconds: float | None = None        # warm-up wall time, compilation included
    tokens_per_second: float | None = None
    flops_per_token: float = 0.0               # llmplan's model FLOPs per training token
    achieved_flops: float | None = None        # model FLOP/s
    mfu: float | None = None                   # achieved / dense peak; None without a known peak
    peak_bytes_measured: int | None = None     # CUDA: max_memory_allocated; elsewhere: counted bytes
    peak_bytes_reserved: int | None = None     # CUDA: max_memory_reserved
    peak_bytes_predicted: int | None = None    # llmplan memory: weights + gradients + optimizer + activations
    memory_error_pct: float | None = None      # (predicted - measured) / measured
    memory_method: str = ""
    measured_breakdown: dict = field(default_factory=dict, hash=False)
    predicted_breakdown: dict = field(default_factory=dict, hash=False)
    energy_joules_per_step: float | None = None
    power_watts: float | None = None
    loss: float | None = None                  # last timed step (random tokens: about ln(vocab))
    free_bytes: int | None = None              # after an out-of-memory failure, once memory was freed
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, getattr(torch, "OutOfMemoryError", ())) or isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _sync(device: DeviceInfo) -> None:
    import torch

    if device.kind == "cuda":
        torch.cuda.synchronize(device.torch_device)
    elif device.kind == "mps":
        torch.mps.synchronize()


def _free(device: DeviceInfo, compiled: bool = False) -> int | None:
    """Release what a run held; free device memory afterwards (CUDA), else None."""
    import torch

    if compiled:
        torch._dynamo.reset()  # compiled graphs keep references to the model's tensors
    gc.collect()
    if device.kind == "cuda":
        torch.cuda.empty_cache()
        return int(torch.cuda.mem_get_info(device.torch_device)[0])
    if device.kind == "mps":
        torch.mps.empty_cache()
    return None


def _base(cfg: BenchConfig, device: DeviceInfo) -> dict:
    from llmplan.bench.model import built_params
    from llmplan.estimate.flops import train_flops_per_token

    spec = cfg.built_spec
    return dict(name=cfg.spec.name, params=built_params(spec), layers=cfg.built_layers, batch=cfg.batch,
                seq=cfg.seq, dtype=device.dtype, attention=cfg.attention, recompute=cfg.recompute,
                compiled=cfg.compile, flops_per_token=train_flops_per_token(spec, cfg.seq))


def validate_config(cfg: BenchConfig) -> None:
    for name in ("batch", "seq", "timed_steps"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < 1:
            raise LlmplanError(f"{name} must be a whole number of at least 1, got {value!r}")
    if cfg.warmup_steps < 0:
        raise LlmplanError(f"warm-up steps must be zero or more, got {cfg.warmup_steps}")
    if cfg.layers is not None and not 1 <= cfg.layers:
        raise LlmplanError(f"layers must be at least 1, got {cfg.layers}")
    if cfg.spec.position == "learned" and cfg.seq > cfg.spec.context + cfg.spec.position_offset:
        raise LlmplanError(f"--seq {cfg.seq} exceeds {cfg.spec.name}'s {cfg.spec.context} learned positions")


def run_config(cfg: BenchConfig, device: DeviceInfo, on_step: Callable[[str], None] | None = None) -> RunResult:
    """Train cfg's model for warm-up + timed steps on `device`; out of memory gives status "oom", not an error.
    KeyboardInterrupt propagates (after freeing memory) so that a caller can keep what it measured.
    on_step(phase) is called after every step ("warmup", "timed", "count"), e.g. to move a progress bar."""
    validate_config(cfg)
    base = _base(cfg, device)
    message = None
    try:
        return _run(cfg, device, base, on_step or (lambda phase: None))
    except Exception as exc:
        if not _is_oom(exc):
            raise
        # Leave the handler before freeing: the exception's traceback holds the frames that hold the model.
        message = f"out of memory: {str(exc).splitlines()[0][:160]}"
    finally:
        if message is None:
            _free(device, cfg.compile)
    free = _free(device, cfg.compile)
    return RunResult(status="oom", free_bytes=free, notes=(message,), **base)


def _autocast(device: DeviceInfo):
    import contextlib

    import torch

    if device.dtype == "fp32":
        return contextlib.nullcontext()
    dt = torch.bfloat16 if device.dtype == "bf16" else torch.float16
    return torch.autocast(device_type=device.kind, dtype=dt)


def _run(cfg: BenchConfig, device: DeviceInfo, base: dict, on_step: Callable[[str], None]) -> RunResult:
    import torch

    from llmplan.bench.model import build_model

    notes: list[str] = []
    torch.manual_seed(cfg.seed)
    dev = device.torch_device
    model = build_model(cfg.spec, layers=cfg.built_layers, attention=cfg.attention, recompute=cfg.recompute,
                        device=dev)
    # Fused AdamW on CUDA: one kernel, no per-parameter temporaries (the planner counts 8 bytes of Adam state).
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.kind == "cuda")
    scaler = torch.amp.GradScaler(device.kind) if device.dtype == "fp16" and device.kind == "cuda" else None
    if cfg.compile:
        # Regional compilation: each block compiled in place; identical blocks reuse one compiled graph, so cold
        # start grows with the number of distinct shapes, not with depth (PyTorch "regional compilation" recipe).
        torch._dynamo.reset()
        for block in model.blocks:
            block.compile()
    runner = model
    data = torch.randint(0, cfg.spec.vocab, (cfg.batch, cfg.seq + 1), device=dev)
    x, y = data[:, :-1], data[:, 1:]

    def step() -> float:
        with _autocast(device):
            loss = runner(x, y)
        if scaler is not None:  # fp16: loss scaling keeps small gradients representable
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        # Gradients stay allocated between steps, as DDP's gradient buckets do and as the planner counts them.
        opt.zero_grad(set_to_none=False)
        return loss

    t0 = time.perf_counter()
    for _ in range(cfg.warmup_steps):
        step()
        on_step("warmup")
    _sync(device)
    warmup = time.perf_counter() - t0

    cuda = device.kind == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    meter = EnergyMeter(device)
    meter.start()
    times: list[float] = []
    if cuda:  # CUDA events: device time of each step, without host-side jitter
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(cfg.timed_steps)]
        for start, end in events:
            start.record()
            loss = step()
            end.record()
            on_step("timed")
        _sync(device)
        times = [s.elapsed_time(e) / 1000.0 for s, e in events]
    else:
        for _ in range(cfg.timed_steps):
            t = time.perf_counter()
            loss = step()
            _sync(device)
            times.append(time.perf_counter() - t)
            on_step("timed")
    energy = meter.stop()
    last_loss = float(loss.detach().float().item())

    result = dict(base)
    median = statistics.median(times)
    q = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else [median, median, median]
    tokens = cfg.batch * cfg.seq / median
    achieved = base["flops_per_token"] * tokens
    result.update(step_seconds=median, step_seconds_min=min(times), step_seconds_max=max(times),
                  step_spread_pct=(q[2] - q[0]) / median * 100.0, step_times=tuple(times), warmup_seconds=warmup,
                  tokens_per_second=tokens, achieved_flops=achieved,
                  mfu=achieved / device.peak_flops if device.peak_flops else None, loss=last_loss)
    if energy is not None:
        result.update(energy_joules_per_step=energy / len(times), power_watts=energy / sum(times))

    if cuda:
        result.update(peak_bytes_measured=int(torch.cuda.max_memory_allocated(dev)),
                      peak_bytes_reserved=int(torch.cuda.max_memory_reserved(dev)),
                      memory_method="torch.cuda.max_memory_allocated over the timed steps")
    if cfg.count_memory and not cfg.compile:
        counted = counted_bytes(model, opt, lambda: _loss_for_count(model, x, y, device))
        result["measured_breakdown"] = counted
        on_step("count")
        if not cuda:
            result.update(peak_bytes_measured=sum(counted.values()),
                          memory_method="counted bytes: parameters + gradients + optimizer states + tensors saved "
                                        "for backward")
    elif cfg.compile:
        notes.append("compiled model: saved tensors not counted (compiled graphs fuse and save differently)")
    predicted = predicted_bytes(cfg, device)
    if predicted is not None:
        total, breakdown, pnotes = predicted
        result.update(peak_bytes_predicted=total, predicted_breakdown=breakdown)
        notes.extend(pnotes)
        if total and result.get("peak_bytes_measured"):
            result["memory_error_pct"] = (total - result["peak_bytes_measured"]) / result["peak_bytes_measured"] * 100
    else:
        notes.append("no memory prediction (llmplan.estimate.memory unavailable)")
    return RunResult(status="ok", notes=tuple(notes), **result)


def _loss_for_count(model, x, y, device):
    with _autocast(device):
        return model(x, y)
