"""`compute`'s time from the step-time model: a given layout, or the fastest layout `plan` finds; and --goodput.

Goodput (the fraction of wall-clock spent on useful training steps) divides wall-clock, GPU-hours, cost and energy.
Anchor: Llama 3 405B pre-training, 54 days on up to 16K H100s, "higher than 90% effective training time" with 466
job interruptions (Dubey et al. 2024, "The Llama 3 Herd of Models", section 3.3.4).
"""

from __future__ import annotations

import dataclasses

from llmplan.errors import LlmplanError
from llmplan.estimate import timecost as tc

GOODPUT_ANCHOR = ("Llama 3 405B: higher than 90% effective training time over 54 days on up to 16K H100s "
                  "(Dubey et al. 2024, section 3.3.4)")


def check_goodput(goodput: float | None) -> float | None:
    if goodput is None:
        return None
    if not (isinstance(goodput, (int, float)) and 0.0 < goodput <= 1.0):
        raise LlmplanError(f"--goodput must be a fraction in (0, 1], e.g. 0.9 (Llama 3's >90% effective training "
                           f"time); got {goodput!r}")
    return float(goodput)


def apply_goodput(run: tc.TrainingRun, goodput: float | None) -> tc.TrainingRun:
    """Wall-clock / goodput, and GPU-hours, cost and energy with it (the GPUs are held while not stepping)."""
    if goodput is None or goodput == 1.0:
        return run
    g = goodput
    return dataclasses.replace(
        run, wall_seconds=run.wall_seconds / g, gpu_hours=run.gpu_hours / g,
        cost=None if run.cost is None else run.cost / g,
        energy_kwh=None if run.energy_kwh is None else run.energy_kwh / g,
        effective_mfu=None if run.effective_mfu is None else run.effective_mfu * g,
        assumptions=tuple(a for a in run.assumptions if not a.startswith("MFU "))
        + (f"goodput {g:g}: {1 - g:.0%} of wall-clock lost to failures, restarts and checkpoints "
           f"(anchor: {GOODPUT_ANCHOR})",))


def wants_step_time(mfu, fields: dict, profile, gpu) -> bool:
    """--mfu keeps the MFU path; a layout option, or no --mfu at all, takes the step-time model. A profile
    holding only the older MFU measurements (no calibration curves) keeps its MFU."""
    if mfu is not None or gpu is None:
        return False
    if fields:
        return True
    if profile is not None:
        from llmplan.cli.steptime_request import has_calibration, profile_data

        return has_calibration(profile_data(profile, gpu))
    return True


def step_time_run(spec, flops, gpu, n_gpus: int, dtype: str, seq: int, fields: dict, recompute: str | None,
                  profile, node: int, tp_overlap: bool, price, pue, notes):
    """(TrainingRun, StepEstimate) for training `flops.tokens` tokens with the step-time model."""
    from llmplan.cli.plan_views import MFU_SOURCE
    from llmplan.cli.steptime_request import predict, profile_data, search, step_dtype, system_for
    from llmplan.estimate.steptime_accuracy import accuracy_note

    dt = step_dtype(dtype)
    prof = profile_data(profile, gpu)
    system = system_for(gpu, n_gpus, node, prof)
    layout_given = any(k != "global_batch" for k in fields)
    if layout_given:
        est = predict(spec, system, seq, dt, fields, recompute or "none", tp_overlap)
        source = f"{MFU_SOURCE}, layout given"
    else:
        est = search(spec, system, seq, dt, fields, recompute, 1, tp_overlap, allow_unfit=True).layouts[0]
        source = f"{MFU_SOURCE}, fastest layout `llmplan plan` finds"
        from llmplan.cli.plan_views import layout_text

        which = "the fastest layout that fits" if est.fits else "the layout needing the least memory"
        notes.add(f"no --mfu and no layout: using {which}, {layout_text(est.layout)} "
                  f"micro-batch {est.layout['micro_batch']}, recompute {est.layout['recompute']} "
                  "(`llmplan plan` lists more)")
    for w in est.warnings:
        notes.add(w, "warn")
    caveat = accuracy_note(est.efficiency_source)  # stated with the assumptions (text and JSON)
    if est.fits is False:
        notes.add(f"this layout needs {est.memory_bytes / 2**30:,.1f} GiB per GPU, more than "
                  f"{gpu.name}'s {est.gpu_memory_bytes / 2**30:,.0f} GiB: it does not fit"
                  + ("" if layout_given else " (no layout of these GPUs does; the time assumes it did: add --gpus)"),
                  "warn")
    run = tc.training_run(flops.detailed, flops.detailed, gpu, n_gpus, min(est.mfu, 1.0), dt, source, price, pue)
    run = dataclasses.replace(run, assumptions=tuple(a for a in run.assumptions if not a.startswith("MFU "))
                              + ("time from the step-time model: per-operator compute, communication, pipeline "
                                 "bubble and optimizer (docs/methodology.md, Step time)",)
                              + ((caveat,) if caveat else ()))
    return run, est
