"""`llmplan plan`: the fastest training layouts that fit, by the step-time model."""

from __future__ import annotations

from typing import Optional

import typer

from llmplan.cli import layout_options as lo
from llmplan.cli.app import command_app
from llmplan.cli.common import ARCH_OPTION, JSON_OPTION, MODEL_OPTION, PARAMS_OPTION, model_from_options
from llmplan.cli.held_notes import HeldNotes
from llmplan.errors import LlmplanError
from llmplan.estimate.steptime_accuracy import accuracy_note
from llmplan.units import parse_count, parse_dtype, parse_int_count, parse_seq

app = command_app()


@app.command("plan")
def plan(
    model: Optional[str] = MODEL_OPTION,
    params: Optional[str] = PARAMS_OPTION,
    arch: str = ARCH_OPTION,
    gpu_name: str = typer.Option(..., "--gpu", "-g", help="Accelerator (see `llmplan hardware`), or "
                                 "custom:memory=...,bf16=...,hbm=...,scaleup=...,nic=...,domain=N."),
    gpus: str = typer.Option(..., "--gpus", "-n", help="Number of GPUs."),
    seq: str = typer.Option(..., "--seq", help="Training sequence length (4096, 8k)."),
    global_batch: Optional[str] = lo.GLOBAL,
    tokens: Optional[str] = typer.Option(None, "--tokens", "-t", help="Training tokens: adds the wall-clock of "
                                         "the run for each layout."),
    top: int = typer.Option(5, "--top", help="How many layouts to show."),
    dtype: str = typer.Option("bf16", "--dtype", help="Training precision: bf16, fp16 or fp8."),
    recompute: Optional[str] = typer.Option(None, "--recompute", help="Hold recomputation at none, selective or "
                                            "full (default: searched)."),
    tp: Optional[str] = lo.TP, pp: Optional[str] = lo.PP, vp: Optional[str] = lo.VP, cp: Optional[str] = lo.CP,
    ep: Optional[str] = lo.EP, zero: Optional[str] = lo.ZERO, fsdp: bool = lo.FSDP, sp: Optional[bool] = lo.SP,
    micro_batch: Optional[str] = lo.MICRO, tp_overlap: bool = lo.OVERLAP, node: Optional[str] = lo.NODE,
    profile: Optional[str] = typer.Option(None, "--profile", help="A `llmplan bench` profile (PATH or auto): its "
                                          "measured GEMM, HBM, attention and collective figures replace the "
                                          "defaults."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The fastest training layouts that fit in memory, by predicted step time.

    Searches TP x PP x VP x CP x EP x ZeRO x micro-batch x recompute; a layout option given (--tp 8) is held.

    Examples:

      llmplan plan --model llama-3.1-405b --gpu h100 --gpus 16384 --seq 8192 --global-batch 2048

      llmplan plan --model gpt3-175b --gpu a100 --gpus 1024 --seq 2048 --global-batch 1536 --top 3

      llmplan plan --model mixtral-8x7b --gpu h100 --gpus 64 --seq 4096 --tp 1 --json
    """
    from llmplan.cli import plan_views as views
    from llmplan.cli.steptime_request import profile_data, search, step_dtype, system_for
    from llmplan.hardware import parse_gpu

    spec = model_from_options(model, params, arch)
    gpu = parse_gpu(gpu_name)
    n = parse_int_count(gpus, "--gpus")
    s = parse_seq(seq, "--seq")
    dt = step_dtype(parse_dtype(dtype))
    if top < 1:
        raise LlmplanError(f"--top must be at least 1, got {top}")
    if recompute is not None and recompute not in ("none", "selective", "full"):
        raise LlmplanError(f"unknown --recompute {recompute!r}; accepted: none, selective, full")
    fields = lo.layout_fields(tp, pp, vp, cp, ep, zero, fsdp, sp, micro_batch, global_batch)
    d = parse_count(tokens, "--tokens") if tokens is not None else None
    system = system_for(gpu, n, lo.node_gpus(node, gpu), profile_data(profile, gpu))
    notes = HeldNotes()
    if "global_batch" not in fields:
        notes.add(f"global batch {lo.default_global_batch(s)} sequences (about 4M tokens, Llama 2's); pass "
                  "--global-batch to choose")
    result = search(spec, system, s, dt, fields, recompute, top, tp_overlap)
    for w in result.layouts[0].warnings:
        notes.add(w, "warn")
    caveat = accuracy_note(result.layouts[0].efficiency_source)
    if caveat:
        notes.add(caveat)
    notes.flush()
    entries = []
    for est in result.layouts:
        entry = views.layout_entry(est)
        if d is not None:
            steps = d / (est.layout["global_batch"] * s)
            entry["prediction"]["wall_seconds"] = steps * est.step_seconds
            entry["prediction"]["gpu_hours"] = steps * est.step_seconds * n / 3600
        entries.append(entry)
    payload = {"model": spec.name, "gpu": gpu.name, "gpus": n, "seq": s, "dtype": dt, "layouts": entries,
               "searched": result.searched, "memory_checked": result.fitting_checked,
               "mfu_source": views.MFU_SOURCE, "accuracy_note": caveat}
    views.show_plan(payload, result, as_json)
    if d is not None and not as_json and result.layouts:
        from llmplan.units import format_seconds

        best = entries[0]["prediction"]
        print(f"training {d:.3g} tokens with #1: {format_seconds(best['wall_seconds'])} wall-clock, "
              f"{best['gpu_hours']:,.0f} GPU-hours")
