"""Rendering of step-time predictions: `plan`'s ranked layouts and the layout block of `compute`."""

from __future__ import annotations

from llmplan.estimate.steptime import StepEstimate
from llmplan.report.output import emit_json, kv_table, stdout_console, table
from llmplan.units import format_bytes, format_seconds

MFU_SOURCE = "step-time model (llmplan.estimate.steptime)"


def layout_text(layout: dict) -> str:
    parts = [f"tp{layout['tp']}", f"pp{layout['pp']}"]
    if layout["vp"] > 1:
        parts.append(f"vp{layout['vp']}")
    if layout["cp"] > 1:
        parts.append(f"cp{layout['cp']}")
    if layout["ep"] > 1:
        parts.append(f"ep{layout['ep']}")
    parts.append(f"dp{layout['dp']}")
    if layout["zero"]:
        parts.append(f"z{layout['zero']}")
    return " ".join(parts)


def prediction_dict(est: StepEstimate) -> dict:
    """The prediction keys `compute` and `plan` share."""
    return {"step_seconds": est.step_seconds, "tokens_per_second_per_gpu": est.tokens_per_second_per_gpu,
            "mfu": est.mfu, "model_flops_per_step": est.model_flops_per_step, "step_breakdown": est.step_breakdown,
            "hidden_comm_seconds": est.hidden_comm_seconds, "memory_bytes": est.memory_bytes,
            "memory_breakdown": est.memory_breakdown, "gpu_memory_bytes": est.gpu_memory_bytes, "fits": est.fits,
            "efficiency_source": est.efficiency_source, "warnings": list(est.warnings)}


def layout_entry(est: StepEstimate) -> dict:
    return {"layout": est.layout, "prediction": prediction_dict(est)}


def breakdown_rows(est: StepEstimate) -> list[tuple[str, str]]:
    rows = []
    for name, seconds in sorted(est.step_breakdown.items(), key=lambda kv: -kv[1]):
        if seconds > 0:
            rows.append((name.replace("_", " "), f"{format_seconds(seconds)}  {seconds / est.step_seconds:6.1%}"))
    hidden = {k: v for k, v in est.hidden_comm_seconds.items() if v > 0}
    for name, seconds in hidden.items():
        rows.append((f"{name.replace('_', ' ')} (hidden)", format_seconds(seconds)))
    return rows


def layout_rows(est: StepEstimate) -> list[tuple[str, str]]:
    t = est.layout
    rows = [("layout", f"{layout_text(t)}  sp={'on' if t['sp'] else 'off'}"),
            ("micro-batch / global batch", f"{t['micro_batch']} / {t['global_batch']} sequences "
                                            f"({t['micro_batches']} micro-batches per step)"),
            ("recompute, dtype", f"{t['recompute']}, {t['dtype']}"),
            ("step time", format_seconds(est.step_seconds)),
            ("tokens/s per GPU", f"{est.tokens_per_second_per_gpu:,.0f}"),
            ("MFU (model FLOPs)", f"{est.mfu:.3f}")]
    if est.memory_bytes is not None:
        cap = f" of {format_bytes(est.gpu_memory_bytes)}" if est.gpu_memory_bytes else ""
        rows.append(("memory per GPU", f"{format_bytes(est.memory_bytes)}{cap}"
                     + ("" if est.fits is None else ("  fits" if est.fits else "  DOES NOT FIT"))))
    return rows


def show_plan(payload: dict, result, as_json: bool) -> None:
    if as_json:
        emit_json(payload)
        return
    console = stdout_console()
    rows = []
    for i, est in enumerate(result.layouts, 1):
        t = est.layout
        rc = {"selective": "sel"}.get(t["recompute"], t["recompute"])
        rows.append([str(i), layout_text(t), str(t["micro_batch"]), rc,
                     format_seconds(est.step_seconds), f"{est.tokens_per_second_per_gpu:,.0f}", f"{est.mfu:.3f}",
                     format_bytes(est.memory_bytes)])
    console.print(table(f"Fastest layouts that fit ({result.searched:,} searched)",
                        ["#", "layout", "mb", "rc", "step", "tok/s/GPU", "MFU", "memory"], rows, right_align_from=2))
    if result.layouts:
        best = result.layouts[0]
        console.print(kv_table("Step time of #1, by part", breakdown_rows(best)))
        console.print(f"[dim]efficiencies: {best.efficiency_source}[/dim]", overflow="fold")


def show_layout_block(est: StepEstimate, console=None) -> None:
    console = console or stdout_console()
    console.print(kv_table("Layout and step time (step-time model)", layout_rows(est)))
    console.print(kv_table("Step time, by part", breakdown_rows(est)))
