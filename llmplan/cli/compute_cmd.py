"""`llmplan compute`: training FLOPs, petaFLOP/s-days, GPU time, cost and energy; budget -> size."""

from __future__ import annotations

from enum import Enum
from typing import Optional

import typer

from llmplan.cli import layout_options as lo
from llmplan.cli.app import command_app
from llmplan.cli.common import (ARCH_OPTION, JSON_OPTION, MODEL_OPTION, PARAMS_OPTION, gpus_from_options,
                                model_from_options)
from llmplan.cli.held_notes import HeldNotes
from llmplan.errors import LlmplanError
from llmplan.estimate import timecost as tc
from llmplan.estimate.flops import PRETRAIN_SEQ_CAP, RECOMPUTE, train_flops_per_token, training_flops
from llmplan.hardware import GPU, match_gpu, parse_gpu
from llmplan.models import count_params
from llmplan.units import format_count, parse_count, parse_dtype, parse_seq


class Mode(str, Enum):
    train = "train"
    infer = "infer"


def _positive(value: Optional[float], option: str, minimum: float = 0.0, strict: bool = True,
              maximum: float = float("inf")) -> Optional[float]:
    if value is None:
        return None
    if value != value or value in (float("inf"), float("-inf")) or value < minimum or (strict and value == minimum):
        bound = f"greater than {minimum:g}" if strict else f"at least {minimum:g}"
        raise LlmplanError(f"{option} must be {bound}, got {value:g}")
    if value > maximum:  # beyond it the answer leaves floating point or means nothing
        raise LlmplanError(f"{option} must be at most {maximum:g}, got {value:g}")
    return value


TRAIN_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8")  # formats training runs its matmuls in


def _dtype(text: Optional[str], gpu: Optional[GPU], notes: HeldNotes) -> str:
    """--dtype, or bf16, or the device's own format where it has no bf16 peak (fp16 on a V100; the measured
    format of a device known only from a bench profile)."""
    if text is not None:
        return parse_dtype(text)
    if _measured_only(gpu):
        return next(iter(gpu.peak_flops))  # the format the bench measured in
    if gpu is not None and gpu.peak("bf16") is None and gpu.peak_flops:
        other = "fp16" if gpu.peak("fp16") is not None else next(iter(gpu.peak_flops))
        why = "has no bf16 tensor cores" if gpu.vendor == "NVIDIA" else "has no bf16 peak on record"
        notes.add(f"{gpu.name} {why}: using its {other} peak (pass --dtype to choose)")
        return other
    return "bf16"


def _mfu(mfu: Optional[float], profile: Optional[str], gpu: Optional[GPU], params: Optional[float],
         notes: HeldNotes, dtype: str = "bf16") -> tuple[float, str]:
    """The MFU to plan with and where it came from: --mfu, a bench profile, or the documented default."""
    if _measured_only(gpu):
        return _measured_fraction(mfu, profile, gpu, params, dtype, notes)
    if mfu is not None:
        return tc.check_mfu(mfu), "--mfu"
    if profile is not None:
        from llmplan.calibration import load_profile

        prof = load_profile(profile, gpu=gpu.name if gpu else None)
        measured = prof.mfu_at(params) if params else None
        if measured:
            _note_profile_reach(prof, params, gpu, dtype, notes)
            return measured, f"profile {prof.path} (measured on {prof.device_name})"
        notes.add(f"the profile {prof.path} gives no MFU for this model size; using the default "
                  f"{tc.DEFAULT_MFU:g}", "warn")
    else:
        notes.add(f"assuming MFU {tc.DEFAULT_MFU:.2f} of the dense peak; pass --mfu, or --profile auto after "
                  "`llmplan bench`")
    return tc.DEFAULT_MFU, tc.DEFAULT_MFU_SOURCE


def _note_profile_reach(prof, params: float, gpu: Optional[GPU], dtype: str, notes: HeldNotes) -> None:
    """Say when the measured MFU is carried beyond the sizes measured, or onto another peak than it was taken at."""
    sizes = (prof.fit or {}).get("params_range") or [r["params"] for r in prof.runs if r.get("mfu")]
    if sizes and not min(sizes) <= params <= max(sizes) * 1.5:
        notes.add(f"the profile measured models of {format_count(min(sizes))} to {format_count(max(sizes))} "
                  f"parameters; its MFU is carried to {format_count(params)} unchanged")
    planned = gpu.peak(dtype) if gpu is not None else None
    if planned and prof.peak_flops and abs(planned / prof.peak_flops - 1) > 0.01:
        notes.add(f"the profile's MFU was measured against a peak of {prof.peak_flops / 1e12:g} TFLOP/s; it is "
                  f"applied to the {dtype} peak of {planned / 1e12:g} TFLOP/s", "warn")


MEASURED_ONLY = "model FLOP/s measured by `llmplan bench`, no datasheet peak"


def _measured_only(gpu: Optional[GPU]) -> bool:
    """A device known only from a profile without a peak: planned from the FLOP/s the bench measured on it."""
    return gpu is not None and gpu.source.endswith(MEASURED_ONLY)


def _measured_ceiling(prof) -> float | None:
    """The highest model FLOP/s the profile's training runs (or their throughput fit) reach."""
    from llmplan.calibration import evaluate_fit

    rates = [float(r["achieved_flops"]) for r in prof.runs if r.get("status", "ok") == "ok" and r.get("achieved_flops")]
    if prof.fit:
        lo, hi = prof.fit["params_range"]
        rates += [evaluate_fit(prof.fit, lo), evaluate_fit(prof.fit, hi)]
        if prof.fit["form"] == "saturating":
            rates.append(prof.fit["coefficients"]["f_max"])
    return max(rates) if rates else None


def _measured_fraction(mfu: Optional[float], profile: Optional[str], gpu: GPU, params: Optional[float],
                       dtype: str, notes: HeldNotes) -> tuple[float, str]:
    """For a device without a datasheet peak: the fraction of its measured ceiling (the stand-in for its peak) that
    the bench reached at this model size, so that time = FLOPs / the FLOP/s measured at this size."""
    from llmplan.calibration import load_profile

    if mfu is not None:
        raise LlmplanError(f"--mfu is a fraction of a datasheet peak, and {gpu.name} has none in its profile; the "
                           "profile's measured FLOP/s plan it (or re-run `llmplan bench --peak-tflops T` there)")
    prof = load_profile(profile, gpu=gpu.name)
    achieved = prof.achieved_flops_at(params) if params else None
    if not achieved:
        raise LlmplanError(f"the profile {prof.path} measured no training run to plan {gpu.name} with; run "
                           "`llmplan bench --quick` there")
    sizes = (prof.fit or {}).get("params_range") or [r["params"] for r in prof.runs if r.get("achieved_flops")]
    if sizes and not min(sizes) <= params <= max(sizes) * 1.5:
        notes.add(f"the profile measured models of {format_count(min(sizes))} to {format_count(max(sizes))} "
                  f"parameters; its FLOP/s are carried to {format_count(params)} unchanged")
    rate = gpu.peak(dtype)
    return min(achieved / rate, 1.0), (f"profile {prof.path} (measured on {prof.device_name}, at this model size; "
                                       "no datasheet peak: MFU not reported)")


def _device_from_profile(prof) -> GPU:
    """A device known only from its bench profile (a CPU, or a GPU not in the catalog): the peak and memory the
    profile recorded and its measured memory bandwidth; without a peak, the highest model FLOP/s it measured
    stands in for one (MEASURED_ONLY) and MFU is not reported."""
    peak = prof.peak_flops
    dtype = prof.device.get("dtype") or "fp32"
    source = f"calibration profile {prof.path}"
    if not peak:
        peak = _measured_ceiling(prof)
        if not peak:
            raise LlmplanError(f"the profile's device {prof.device_name!r} is not in the catalog and the profile has "
                               "neither a peak FLOP/s nor a measured training run; run `llmplan bench --quick` there "
                               "(or `llmplan bench --peak-tflops T`): a profile calibrates only the device it was "
                               "measured on")
        source += f": {MEASURED_ONLY}"
    return GPU(name=prof.device_name, vendor=str(prof.device.get("kind") or "unknown"),
               memory_bytes=int(prof.device.get("memory_bytes") or 0), peak_flops={dtype: float(peak)},
               bandwidth_bytes_per_s=float(prof.hbm_bytes_per_s or 0.0), power_watts=None, source=source)


def _without_mfu(run: tc.TrainingRun) -> tc.TrainingRun:
    """A run planned from measured FLOP/s: no peak, so no MFU; the rate it was planned at is said instead."""
    from dataclasses import replace

    rate = run.executed_flops / (run.n_gpus * run.wall_seconds)
    said = (f"{run.dtype} model FLOP/s that `llmplan bench` measured on this device at this model size: "
            f"{rate / 1e12:.3g} TFLOP/s per device (no datasheet peak, so no MFU)",
            "that rate sustained for the whole run (no failures, restarts, evaluation or checkpoint stalls)")
    return replace(run, peak_flops_per_gpu=None, mfu=None, effective_mfu=None,
                   assumptions=said + tuple(run.assumptions[2:]))


def _seq(text: Optional[str], spec, notes: HeldNotes) -> int:
    """--seq, or the model's context up to PRETRAIN_SEQ_CAP; a note when either is out of the ordinary."""
    if text is None:
        if spec.context > PRETRAIN_SEQ_CAP:
            notes.add(f"attention FLOPs at a training sequence of {PRETRAIN_SEQ_CAP:,} tokens, not {spec.name}'s "
                      f"full context of {spec.context:,} (long-context models are pretrained short and extended at "
                      "the end); pass --seq to choose")
            return PRETRAIN_SEQ_CAP
        return spec.context
    s = parse_seq(text, "--seq")  # 32k = 32,768 tokens
    if s > spec.context:
        notes.add(f"--seq {s:,} is longer than {spec.name}'s context of {spec.context:,} tokens")
    return s


def _gpu(name: Optional[str], profile: Optional[str]) -> Optional[GPU]:
    if name is not None:
        gpu = parse_gpu(name)
        if not gpu.peak_flops:  # a bare memory size: it can say what fits, not how long
            raise LlmplanError(f"--gpu {name!r} gives only a memory size; time needs a peak: describe the device, "
                               f"e.g. --gpu 'custom:memory={name.strip()},bf16=300T,hbm=1TB/s'")
        return gpu
    if profile is not None:  # a profile names the device it was measured on
        from llmplan.calibration import load_profile

        prof = load_profile(profile)
        return match_gpu(prof.device_name) or _device_from_profile(prof)
    return None


app = command_app()


@app.command("compute")
def compute(
    model: Optional[str] = MODEL_OPTION,
    params: Optional[str] = PARAMS_OPTION,
    arch: str = ARCH_OPTION,
    tokens: Optional[str] = typer.Option(None, "--tokens", "-t", help="Training tokens D (300B, 1.4T)."),
    seq: Optional[str] = typer.Option(None, "--seq", help="Training sequence length for the attention FLOPs "
                                      "(default: the model's context, at most 8192)."),
    recompute: Optional[str] = typer.Option(None, "--recompute", help="Activation recomputation: none (default), "
                                            "selective (attention core) or full (one extra forward). Changes "
                                            "hardware FLOPs, not model FLOPs."),
    gpu_name: Optional[str] = typer.Option(None, "--gpu", "-g", help="Accelerator (see `llmplan hardware`)."),
    gpus: Optional[str] = typer.Option(None, "--gpus", "-n", help="Number of GPUs in all (default 1)."),
    dp: Optional[str] = typer.Option(None, "--dp", help="Data-parallel GPUs; the same as --gpus for FLOPs and time "
                                     "(as in `llmplan memory`)."),
    mfu: Optional[float] = typer.Option(None, "--mfu", help="Model FLOPs utilisation, a fraction (default 0.40, or "
                                        "the measured value from --profile)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="A `llmplan bench` profile: PATH, or 'auto' for "
                                          "the one saved for --gpu. Supplies the measured MFU."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="Which dense peak applies: bf16 (default), fp16, fp8, "
                                        "tf32, fp32."),
    price: Optional[float] = typer.Option(None, "--price", help="Price per GPU-hour (any currency) -> cost."),
    pue: Optional[float] = typer.Option(None, "--pue", help="Facility power usage effectiveness (>= 1) to add "
                                        "cooling and power delivery to the energy."),
    days: Optional[float] = typer.Option(None, "--days", help="Inverse question: the FLOP budget --gpus deliver in "
                                         "this many days, and the compute-optimal model it buys."),
    law: Optional[str] = typer.Option(None, "--law", help="Scaling law for --days sizing: rule20 (default), "
                                      "hoffmann, epoch, kaplan or a law.json."),
    mode: Mode = typer.Option(Mode.train, "--mode", help="train: training compute (infer is retired: use "
                              "`llmplan serve`)."),
    prompt_tokens: str = typer.Option("512", "--prompt-tokens", hidden=True),
    new_tokens: str = typer.Option("256", "--new-tokens", hidden=True),
    batch: str = typer.Option("1", "--batch", hidden=True),
    goodput: Optional[float] = typer.Option(None, "--goodput", help="Fraction of wall-clock doing useful steps "
                                            "(Llama 3: over 0.9); divides wall-clock, GPU-hours and cost."),
    tp: Optional[str] = lo.TP, pp: Optional[str] = lo.PP, vp: Optional[str] = lo.VP, cp: Optional[str] = lo.CP,
    ep: Optional[str] = lo.EP, zero: Optional[str] = lo.ZERO, fsdp: bool = lo.FSDP, sp: Optional[bool] = lo.SP,
    micro_batch: Optional[str] = lo.MICRO, global_batch: Optional[str] = lo.GLOBAL,
    tp_overlap: bool = lo.OVERLAP, node: Optional[str] = lo.NODE,
    as_json: bool = JSON_OPTION,
) -> None:
    """Training FLOPs and PF/s-days, GPU time, cost and energy; what a GPU budget buys (serving: `llmplan serve`).

    Training FLOPs in the 6 N D convention (3 N D for encoder-decoder models) and counted in detail.

    --days asks the inverse question: the budget that --gpus deliver, and the compute-optimal model it buys.

    Examples:

      llmplan compute --model gpt3-175b --tokens 300B

      llmplan compute --model llama-2-7b --tokens 2T --gpu h100 --gpus 256 --price 2.5

      llmplan compute --params 13B --tokens 1T --gpu a100 --gpus 64 --recompute full --pue 1.2

      llmplan compute --gpu h100 --gpus 512 --days 30 --mfu 0.45

      llmplan compute --model llama-2-7b --tokens 1T --profile auto --gpu h100 --json

      llmplan compute --model gpt3-175b --tokens 300B --gpu a100 --gpus 1024 --tp 8 --pp 8 --global-batch 1536
      --recompute full --goodput 0.9
    """
    from llmplan.cli import compute_views as views

    if mode is Mode.infer:
        raise LlmplanError(
            "`compute --mode infer` is retired: `llmplan serve` plans serving (continuous batching, KV pool, TP "
            f"all-reduces, queueing); e.g. llmplan serve --model {model or params or 'M'} --gpu {gpu_name or 'GPU'} "
            f"--tp {gpus or 1} --input-tokens {prompt_tokens} --output-tokens {new_tokens} --concurrency {batch}")
    # Validate every input before computing anything.
    from llmplan.cli import compute_steptime as cst

    cst.check_goodput(goodput)
    fields = lo.layout_fields(tp, pp, vp, cp, ep, zero, fsdp, sp, micro_batch, global_batch)
    if fields and mfu is not None:
        raise LlmplanError("--mfu sets the utilisation; a layout (--tp, --pp, ...) lets the step-time model derive "
                           "it: give one or the other")
    given_recompute = recompute
    recompute = recompute or "none"
    if recompute not in RECOMPUTE:
        raise LlmplanError(f"unknown --recompute {recompute!r}; accepted: {', '.join(RECOMPUTE)}")
    if mfu is not None:
        tc.check_mfu(mfu)
        _positive(mfu, "--mfu", 1e-4, strict=False)  # below 0.01% a plan's time is beyond any run
    _positive(price, "--price", 0.0, strict=False, maximum=1e6)  # a million per GPU-hour
    _positive(pue, "--pue", 1.0, strict=False, maximum=10.0)  # real facilities: 1.1 to 2
    _positive(days, "--days", maximum=36_525.0)  # a century
    n_gpus = gpus_from_options(gpus, dp, fields.get("tp", 1) * fields.get("cp", 1) * fields.get("pp", 1))
    gpu = _gpu(gpu_name, profile)
    notes = HeldNotes()
    dt = _dtype(dtype, gpu, notes)
    if mode is Mode.train and dt not in TRAIN_DTYPES:
        raise LlmplanError(f"--dtype {dt} is not a training format; training runs in {', '.join(TRAIN_DTYPES)} "
                           "(int8 and int4 weights are for `llmplan serve`)")
    if gpu is not None:
        tc.peak_for(gpu, dt)
    spec = model_from_options(model, params, arch, required=days is None)
    n_params = float(count_params(spec).total) if spec else None

    if days is not None:
        if gpu is None:
            raise LlmplanError("--days asks what GPUs deliver in that time: add --gpu NAME (and --gpus N)")
        if tokens is not None:
            raise LlmplanError("give --tokens (how long will training take?) or --days (what can this time buy?), "
                               "not both")
        seconds = days * 86_400.0
        if profile is not None and mfu is None and spec is None:
            # The measured MFU depends on the model size, which depends on the budget: settle it in a few rounds,
            # keeping only the last round's notes.
            size = tc.budget_sizing(gpu, n_gpus, seconds, tc.DEFAULT_MFU, dt, law or "rule20").optimal_params
            for _ in range(4):
                round_notes = HeldNotes()
                used_mfu, source = _mfu(None, profile, gpu, size, round_notes, dt)
                sizing = tc.budget_sizing(gpu, n_gpus, seconds, used_mfu, dt, law or "rule20", source)
                size = sizing.optimal_params
            notes.extend(round_notes)
        else:
            used_mfu, source = _mfu(mfu, profile, gpu, n_params, notes, dt)
            sizing = tc.budget_sizing(gpu, n_gpus, seconds, used_mfu, dt, law or "rule20", source)
        # the same GPUs for the same time: GPU-hours, cost and energy of the budget
        run = tc.training_run(sizing.flops, sizing.flops, gpu, n_gpus, used_mfu, dt, source, price, pue)
        if _measured_only(gpu):
            run = _without_mfu(run)
        trainable = None
        if spec is not None:
            s = _seq(seq, spec, notes)
            trainable = sizing.flops / train_flops_per_token(spec, s)
        notes.flush()
        views.show_budget(sizing, run, spec, trainable, as_json)
        return

    if law is not None:
        raise LlmplanError("--law sizes the model a --days budget buys; add --days (or use `llmplan chinchilla`)")
    if tokens is None:
        raise LlmplanError("no training tokens: give --tokens D (e.g. 300B), or --days with --gpu for a budget")
    d = parse_count(tokens, "--tokens")
    s = _seq(seq, spec, notes)
    flops = training_flops(spec, d, recompute, s)
    run = est = None
    if _measured_only(gpu) and fields:
        raise LlmplanError(f"the profile of {gpu.name} has no peak FLOP/s: it is planned from the FLOP/s its bench "
                           "measured, without a layout; layout options need a device with a peak (`llmplan bench "
                           "--peak-tflops T` there, or --gpu)")
    if gpu is not None and not _measured_only(gpu) and cst.wants_step_time(mfu, fields, profile, gpu):
        run, est = cst.step_time_run(spec, flops, gpu, n_gpus, dt, s, fields, given_recompute, profile,
                                     lo.node_gpus(node, gpu), tp_overlap, price, pue, notes)
        if given_recompute is None and est.layout["recompute"] != "none":
            flops = training_flops(spec, d, est.layout["recompute"], s)
        run = cst.apply_goodput(run, goodput)
    elif gpu is not None:
        used_mfu, source = _mfu(mfu, profile, gpu, n_params, notes, dt)
        run = tc.training_run(flops.detailed, flops.hardware, gpu, n_gpus, used_mfu, dt, source, price, pue)
        if _measured_only(gpu):
            run = _without_mfu(run)
        run = cst.apply_goodput(run, goodput)
    elif any(v is not None for v in (gpus, dp, price, pue, mfu, profile)):
        notes.add("--gpus, --mfu, --price and --pue need --gpu NAME to turn FLOPs into time, cost and energy")
    notes.flush()
    views.show_training(spec, flops, run, as_json, step=est, goodput=goodput)
