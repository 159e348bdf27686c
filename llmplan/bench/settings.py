"""From the bench command's options to a validated plan, its run, and the report and profile it produces."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Callable

from llmplan.bench.device import DeviceInfo
from llmplan.bench.runner import BenchConfig
from llmplan.errors import LlmplanError, RunError

QUICK = {"batch": 2, "seq": 64, "vocab": 4096, "warmup": 1, "steps": 3, "budget": 30.0, "rungs": 5}
DEFAULT_BUDGET = 180.0   # a few minutes
LADDER_VOCAB = 32000     # LLaMA's vocabulary for the ladder's models
MODEL_LAYERS = 4         # --model default depth (and half of it)


@dataclass(frozen=True)
class BenchSettings:
    mode: str                   # "ladder" | "model"
    device: DeviceInfo
    base: BenchConfig
    budget_seconds: float
    vocab: int
    max_rungs: int | None
    layers: int | None          # --model: the deepest configuration run
    quick: bool

    @property
    def model_steps(self) -> int:
        per_run = self.base.warmup_steps + self.base.timed_steps + (1 if self.base.count_memory else 0)
        depths = 1 if self.layers in (None, self.base.spec.layers) else len({max(1, self.layers // 2), self.layers})
        return per_run * depths


# The most a bench option can mean on one machine; beyond it a run would overflow its arithmetic or never end.
BENCH_LIMITS = {"--layers": 10_000, "--batch": 1_000_000, "--seq": 10_000_000, "--steps": 1_000_000,
                "--max-rungs": 1_000, "--warmup": 100_000}
MAX_PEAK_TFLOPS = 1e6  # an exaFLOP/s from one device, far beyond any


def _shown(value: int) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"a number of {len(text.lstrip('-'))} digits"


def _positive_int(value: int | None, option: str, minimum: int = 1) -> int | None:
    if value is not None and not minimum <= value <= BENCH_LIMITS[option]:
        raise LlmplanError(f"{option} must be a whole number from {minimum} to {BENCH_LIMITS[option]:,}, got "
                           f"{_shown(value)}")
    return value


MAX_BUDGET_SECONDS = 7 * 86_400.0  # a week: a bench measures a machine, it does not train a model


def check_budget_seconds(budget_seconds: float | None) -> None:
    if budget_seconds is None:
        return
    if not (budget_seconds > 0 and budget_seconds <= MAX_BUDGET_SECONDS):
        raise LlmplanError(f"--budget-seconds must be greater than zero and at most {MAX_BUDGET_SECONDS:,.0f} (a "
                           f"week), got {budget_seconds:g}")


def resolve_settings(model: str | None, layers: int | None, batch: int | None, seq: int | None, dtype: str | None,
                     device: str, attention: str, recompute: str, compile_: bool | None,
                     budget_seconds: float | None, quick: bool, steps: int | None, warmup: int | None,
                     max_rungs: int | None, peak_tflops: float | None) -> BenchSettings:
    """Validate every option (before anything runs or is written) and fill the defaults for the device."""
    from llmplan.bench.device import detect_device
    from llmplan.bench.model import ATTENTION_KINDS, RECOMPUTE_KINDS, unbuilt
    from llmplan.models import resolve_model

    if attention not in ATTENTION_KINDS:
        raise LlmplanError(f"--attention {attention!r}: accepted {', '.join(ATTENTION_KINDS)}")
    if recompute not in RECOMPUTE_KINDS:
        raise LlmplanError(f"--recompute {recompute!r}: accepted {', '.join(RECOMPUTE_KINDS)}")
    for value, option in ((layers, "--layers"), (batch, "--batch"), (seq, "--seq"), (steps, "--steps"),
                          (max_rungs, "--max-rungs")):
        _positive_int(value, option)
    _positive_int(warmup, "--warmup", minimum=0)
    if peak_tflops is not None and not peak_tflops <= MAX_PEAK_TFLOPS:
        raise LlmplanError(f"--peak-tflops must be at most {MAX_PEAK_TFLOPS:g} (an exaFLOP/s), got {peak_tflops:g}")
    check_budget_seconds(budget_seconds)
    if layers is not None and model is None:
        raise LlmplanError("--layers needs --model: it sets how many layers of that model to build")
    if model:
        from llmplan.files import check_model_text

        check_model_text(model)
    spec = resolve_model(model) if model else None
    if spec is not None and spec.arch != "decoder":
        raise LlmplanError(f"the bench trains decoder-only models; {spec.name} is {spec.arch}")
    if spec is not None and unbuilt(spec):
        raise LlmplanError(unbuilt(spec))
    if spec is not None and layers is not None and layers > spec.layers:
        raise LlmplanError(f"--layers {layers}: {spec.name} has {spec.layers} layers")
    dev = detect_device(device, dtype=dtype, peak_tflops=peak_tflops)
    gpu = dev.kind == "cuda"
    compiled = gpu if compile_ is None else compile_
    batch = batch or (QUICK["batch"] if quick else 8 if gpu else 4)
    if seq is None:
        seq = QUICK["seq"] if quick else 2048 if gpu else 256
        if spec is not None:
            seq = min(seq, spec.context)  # a default never exceeds the model's context
    if spec is not None and spec.position == "learned" and seq > spec.context + spec.position_offset:
        raise LlmplanError(f"--seq {seq} exceeds {spec.name}'s context of {spec.context} learned positions")
    base = BenchConfig(spec=spec or _placeholder(seq), batch=batch, seq=seq, attention=attention,
                       recompute=recompute, compile=compiled,
                       warmup_steps=warmup if warmup is not None else QUICK["warmup"] if quick else 3 if compiled
                       else 2,
                       timed_steps=steps or (QUICK["steps"] if quick else 5))
    return BenchSettings(
        mode="model" if spec else "ladder", device=dev, base=base,
        budget_seconds=budget_seconds or (QUICK["budget"] if quick else DEFAULT_BUDGET),
        vocab=QUICK["vocab"] if quick else LADDER_VOCAB, max_rungs=max_rungs or (QUICK["rungs"] if quick else None),
        layers=(layers or min(MODEL_LAYERS, spec.layers)) if spec else None, quick=quick)


def _placeholder(seq: int):
    from llmplan.bench.ladder import ladder_spec

    return ladder_spec(64, 2, LADDER_VOCAB, seq)


def _context_bytes(device: DeviceInfo) -> int | None:
    """The CUDA context's memory, measured once a first tensor exists (it is created lazily)."""
    if device.kind != "cuda":
        return None
    import torch

    from llmplan.bench.device import cuda_context_bytes

    torch.empty(1, device=device.torch_device)
    return cuda_context_bytes(device)


def overhead(runs: list[dict], context: int | None) -> tuple[int | None, str]:
    """Device memory beyond what the planner's weights + gradients + optimizer + activations describe.

    Measured as the CUDA context (device memory in use outside PyTorch's allocator) plus the allocator's reserve
    beyond its allocations (max_memory_reserved - max_memory_allocated) at the largest configuration that ran."""
    ok = [r for r in runs if r["status"] == "ok" and r.get("peak_bytes_reserved") is not None]
    if context is None or not ok:
        return None, "not measured: no CUDA device (the CPU and MPS have no separate device memory to account)"
    largest = max(ok, key=lambda r: r["params"])
    value = int(context + largest["peak_bytes_reserved"] - largest["peak_bytes_measured"])
    return value, ("CUDA context (total - free - reserved at start) + allocator reserve beyond allocations "
                   f"(max_memory_reserved - max_memory_allocated) of the largest run, {largest['name']}")


def run_bench(settings: BenchSettings, on_event: Callable[[str, dict], None] | None = None,
              argv: list[str] | None = None) -> dict:
    """Run the ladder or the model's layers; return the report (plain data, as --json prints it)."""
    from llmplan import __version__
    from llmplan.bench.ladder import run_ladder, run_model

    dev = settings.device
    context = _context_bytes(dev)
    report: dict = {"mode": settings.mode, "device": dev.as_dict(), "versions": {**dev.versions,
                    "llmplan": __version__}}
    extrapolation = None
    if settings.mode == "ladder":
        result = run_ladder(dev, settings.base, settings.budget_seconds, vocab=settings.vocab,
                            max_rungs=settings.max_rungs, on_event=on_event)
        runs, fit, fit_note = result.runs, result.fit, result.fit_note
        stopped, interrupted, notes = result.stopped, result.interrupted, list(result.notes)
    else:
        runs, ext = run_model(dev, settings.base, settings.layers, on_event=on_event)
        fit, fit_note, notes = None, "no fit: one model's shape was measured (run without --model for a ladder)", []
        measured = [r for r in runs if r.status == "ok"]
        stopped = "interrupted (Ctrl-C)" if ext.interrupted else f"failed: {ext.failure}" if ext.failure else \
            "every depth was measured" if len(measured) == len(runs) and runs else \
            f"memory: {len(runs) - len(measured)} of {len(runs)} depths did not fit at batch {settings.base.batch}"
        interrupted = ext.interrupted
        extrapolation = ext
    if not any(r.status == "ok" for r in runs) and not interrupted:  # nothing measured is a failed run
        raise RunError(f"the bench measured nothing on {dev.name}: {stopped}" + (
            "; lower --batch or --seq, or give fewer --layers" if stopped.startswith("memory") else ""))
    run_dicts = [r.as_dict() for r in runs]
    value, method = overhead(run_dicts, context)
    notes += sorted({n for r in runs for n in r.notes})
    b = settings.base
    report.update(
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        argv=list(argv or []),
        settings={"batch": b.batch, "seq": b.seq, "dtype": dev.dtype, "attention": b.attention,
                  "recompute": b.recompute, "compile": b.compile, "warmup_steps": b.warmup_steps,
                  "timed_steps": b.timed_steps, "budget_seconds": settings.budget_seconds,
                  "vocab": settings.vocab if settings.mode == "ladder" else b.spec.vocab, "quick": settings.quick,
                  "model": b.spec.name if settings.mode == "model" else None, "layers": settings.layers},
        runs=run_dicts, fit=fit.as_dict() if fit is not None else None, fit_note=fit_note,
        extrapolation=_asdict(extrapolation), stopped=stopped, interrupted=interrupted,
        context_bytes=context, overhead_bytes=value, overhead_method=method, notes=notes,
        profile_path=None, plot_path=None)
    return report


def _asdict(obj):
    from dataclasses import asdict

    return asdict(obj) if obj is not None else None


def profile_data(report: dict) -> dict:
    """The calibration profile written for a report (llmplan.calibration reads it back)."""
    from llmplan.calibration import PROFILE_KIND, PROFILE_SCHEMA

    keep = ("created", "argv", "mode", "device", "versions", "settings", "runs", "fit", "fit_note",
            "extrapolation", "stopped", "interrupted", "context_bytes", "overhead_bytes", "overhead_method")
    data = {"schema_version": PROFILE_SCHEMA, "kind": PROFILE_KIND, **{k: report[k] for k in keep}}
    ext = report.get("extrapolation")
    if ext and ext.get("step_seconds"):
        # The full-depth figures, so that Profile.mfu_at(the model's size) answers with them, not with the few
        # layers actually run.
        s = report["settings"]
        data["runs"] = [*data["runs"], {
            "status": "ok", "extrapolated": True, "name": ext["spec_name"], "params": ext["full_params"],
            "layers": ext["full_layers"], "batch": s["batch"], "seq": s["seq"], "step_seconds": ext["step_seconds"],
            "tokens_per_second": ext["tokens_per_second"], "achieved_flops": ext["achieved_flops"],
            "mfu": ext["mfu"], "peak_bytes_measured": ext["peak_bytes_measured"],
            "peak_bytes_predicted": ext["peak_bytes_predicted"], "method": ext["method"]}]
    return data


def default_profile_path(report: dict):
    """The device's profile; a --model run gets its own file beside it, so that it does not replace the ladder's
    calibration (load_profile("auto", gpu) takes the newest profile of that device)."""
    from llmplan.calibration import default_profile_path as device_path

    path = device_path(report["device"]["name"])
    model = report["settings"].get("model") if report["mode"] == "model" else None
    if model:
        from llmplan.calibration import device_key

        path = path.with_name(f"{path.stem}--{device_key(model)}.json")
    return path



def preflight(settings: BenchSettings) -> str:
    """What the bench will run, with its predicted memory (llmplan memory) and time, said before it starts; a run
    that cannot fit this device's memory (host memory on a CPU) is refused here, with the estimate."""
    from dataclasses import replace

    from llmplan.bench.ladder import RUNGS, _available_bytes, ladder_spec
    from llmplan.bench.memory_check import predicted_bytes
    from llmplan.units import format_bytes, format_seconds

    dev, b = settings.device, settings.base
    available = _available_bytes(dev)
    if settings.mode == "ladder":
        rungs = RUNGS[:settings.max_rungs] if settings.max_rungs else RUNGS
        first = predicted_bytes(replace(b, spec=ladder_spec(*rungs[0], settings.vocab, b.seq), layers=None), dev)
        need = first[0] if first else None
        what = (f"a ladder of up to {len(rungs)} model sizes (h{rungs[0][0]}-l{rungs[0][1]} to "
                f"h{rungs[-1][0]}-l{rungs[-1][1]}; it stops at the time budget or at the memory) at batch {b.batch} "
                f"x seq {b.seq}, {dev.dtype}, on {dev.name}; at most {format_seconds(settings.budget_seconds)}")
        label = "the first rung"
    else:
        deepest = replace(b, layers=settings.layers)
        pred = predicted_bytes(deepest, dev)
        need = pred[0] if pred else None
        depths = sorted({max(1, (settings.layers or b.spec.layers) // 2), settings.layers or b.spec.layers})
        what = (f"{b.spec.name} at {' and '.join(str(d) for d in depths)} layers, batch {b.batch} x seq {b.seq}, "
                f"{dev.dtype}, {settings.model_steps} steps in all, on {dev.name}")
        label = f"{depths[-1]} layers"
        if dev.peak_flops:
            from llmplan.estimate.flops import train_flops_per_token

            step = train_flops_per_token(deepest.built_spec, b.seq) * b.batch * b.seq / (0.3 * dev.peak_flops)
            what += f"; about {format_seconds(step * settings.model_steps)} at 30% of the peak"
    if need and available and need > 0.95 * available:
        where = "free on the GPU" if dev.kind == "cuda" else "of memory available"
        raise LlmplanError(f"the bench would need about {format_bytes(need)} for {label} ({what.split(',')[0]}), "
                           f"more than the {format_bytes(available)} {where}: lower --batch, --seq or --layers "
                           "(llmplan memory predicts it before anything runs)")
    if need:
        what += f"; {label} needs about {format_bytes(need)} of {format_bytes(available) if available else 'unknown'}"
    return what
