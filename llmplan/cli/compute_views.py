"""Rendering for `llmplan compute`: one JSON object, or rich tables (stdout) with assumptions."""

from __future__ import annotations

from rich.markup import escape

from llmplan.estimate import timecost as tc
from llmplan.estimate.flops import TrainingFlops
from llmplan.models import ModelSpec
from llmplan.report.output import emit_json, kv_table, stdout_console, table
from llmplan.units import format_count, format_flops, format_seconds


def _num(x: float) -> str:
    """A plain number a person reads: 3,637 or 2.08 or 0.0123 (three significant figures below 100)."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _equivalents(pf_days: float | None) -> list[dict]:
    rows = []
    for e in tc.device_equivalents():
        row = {"gpu": e.gpu, "dtype": e.dtype, "peak_flops": e.peak_flops,
               "device_days_per_pflops_day": e.device_days_per_pflops_day}
        if pf_days is not None:
            row["device_days_at_peak"] = pf_days * e.device_days_per_pflops_day
        rows.append(row)
    return rows


def _print_equivalents(console, pf_days: float | None) -> None:
    rows = _equivalents(pf_days)
    cols = ["device", "dense peak", "device-days per PF/s-day"] + (["this run (6 N D) at 100% peak"] if pf_days else [])
    console.print(table(
        "Device equivalents (dense peak, 100% utilisation)", cols,
        [[r["gpu"], f"{r['peak_flops'] / 1e12:g} TFLOP/s {r['dtype']}", f"{r['device_days_per_pflops_day']:.3g}"]
         + ([f"{_num(r['device_days_at_peak'])} device-days"] if pf_days else []) for r in rows],
    ))
    console.print(f"[dim]{escape(tc.FOLKLORE)}[/dim]")


def _run_dict(run: tc.TrainingRun) -> dict:
    return {
        "gpu": run.gpu, "gpus": run.n_gpus, "dtype": run.dtype, "peak_flops_per_gpu": run.peak_flops_per_gpu,
        "mfu": run.mfu, "mfu_source": run.mfu_source, "effective_mfu": run.effective_mfu,
        "achieved_flops_per_gpu": run.executed_flops / (run.n_gpus * run.wall_seconds),
        "wall_seconds": run.wall_seconds, "wall_days": run.wall_seconds / 86_400, "gpu_hours": run.gpu_hours,
        "gpu_days": run.gpu_hours / 24,
        "price_per_gpu_hour": run.price_per_gpu_hour, "cost": run.cost, "power_watts_per_gpu": run.power_watts,
        "pue": run.pue, "energy_kwh": run.energy_kwh, "energy_counted": run.energy_counted,
    }


def show_training(spec: ModelSpec, f: TrainingFlops, run: tc.TrainingRun | None, as_json: bool, step=None,
                  goodput: float | None = None) -> None:
    pf = tc.pflops_days(f.six_nd)
    assumptions = list(f.assumptions) + (list(run.assumptions) if run else [])
    if as_json:
        payload = {
            "mode": "train", "model": spec.name, "arch": spec.arch, "params": f.params,
            "params_per_token": f.params_per_token, "tokens": f.tokens, "seq": f.seq, "recompute": f.recompute,
            "flops": f.six_nd, "flops_detailed": f.detailed, "flops_hardware": f.hardware,
            "flops_hardware_nd": f.hardware_nd, "detailed_to_6nd_ratio": f.ratio, "pflops_days": pf,
            "pflops_days_detailed": tc.pflops_days(f.detailed), "breakdown": f.breakdown,
            "device_equivalents": _equivalents(pf), "pflops_day_folklore": tc.FOLKLORE,
        }
        if run:
            payload.update(_run_dict(run))
            payload["goodput"] = goodput
        if step is not None:
            from llmplan.cli.plan_views import prediction_dict

            payload["layout"] = step.layout
            payload["prediction"] = prediction_dict(step)
        payload["assumptions"] = assumptions
        emit_json(payload)
        return
    console = stdout_console()
    convention = "3 N D (encoder-decoder: half the parameters per token)" if spec.arch == "encoder-decoder" \
        else "6 N D"
    rows = [
        ("model", f"{spec.name} ({spec.arch}, {format_count(f.params)} params)"),
        ("N per token (6ND)", format_count(f.params_per_token)),
        ("training tokens", f"{format_count(f.tokens)} (sequences of {f.seq:,} tokens)"),
        (f"FLOPs, {convention}", f"{format_flops(f.six_nd)}  ({_num(pf)} PF/s-days)"),
        ("FLOPs, detailed (+attention, logits)",
         f"{format_flops(f.detailed)}  ({_num(tc.pflops_days(f.detailed))} PF/s-days)"),
        ("detailed / 6ND", f"{f.ratio:.3f}"),
    ]
    if f.recompute != "none":
        rows.append((f"hardware FLOPs ({f.recompute} recompute)",
                     f"{format_flops(f.hardware)}  (convention: {format_flops(f.hardware_nd)})"))
    console.print(kv_table("Training compute", rows))
    if run:
        timed = "detailed FLOPs" + (f" + {f.recompute} recompute" if f.recompute != "none" else "") + \
            f" at the {'MFU' if run.mfu is not None else 'measured FLOP/s'}"
        if step is not None:
            timed = "optimizer steps x predicted step time" + (" / goodput" if goodput else "")
        rrows = _run_rows(run) + [("wall-clock", f"{format_seconds(run.wall_seconds)}  ({timed})")]
        rrows += _gpu_time_rows(run)
        if run.mfu is not None and run.effective_mfu < run.mfu:
            if step is not None:
                rrows.append(("effective MFU (with goodput)", f"{run.effective_mfu:.3g}"))
            else:
                rrows.append(("effective MFU (with recompute)", f"{run.effective_mfu:.3g}  (model FLOPs / (time x "
                              f"peak): MFU x model / executed FLOPs, the recomputed forward not counted)"))
        if goodput is not None:
            rrows.append(("goodput", f"{goodput:g} (wall-clock, GPU-hours and cost divided by it)"))
        console.print(kv_table("Time, cost and energy", rrows))
        if step is not None:
            from llmplan.cli.plan_views import show_layout_block

            show_layout_block(step, console)
        console.print(f"[dim]energy counts: {escape(run.energy_counted)}[/dim]")
    _print_equivalents(console, pf)
    for a in assumptions:
        console.print(f"[yellow]assumption:[/yellow] {escape(a)}")


def _run_rows(run: tc.TrainingRun) -> list[tuple[str, str]]:
    if run.peak_flops_per_gpu is None:  # a device known from its bench profile only, without a datasheet peak
        rate = run.executed_flops / (run.n_gpus * run.wall_seconds)
        return [("GPUs", f"{run.n_gpus} x {run.gpu} (no datasheet peak)"),
                ("measured FLOP/s", f"{rate / 1e12:.3g} TFLOP/s {run.dtype} per device  [{run.mfu_source}]")]
    return [
        ("GPUs", f"{run.n_gpus} x {run.gpu} ({run.peak_flops_per_gpu / 1e12:g} TFLOP/s {run.dtype} dense)"),
        ("MFU", f"{run.mfu:.3g}  [{run.mfu_source}]"),
    ]


def _gpu_time_rows(run: tc.TrainingRun) -> list[tuple[str, str]]:
    """GPU-hours and GPU-days, cost (in the currency of --price) and energy, where known."""
    rows = [("GPU-hours", f"{run.gpu_hours:,.0f}  ({_num(run.gpu_hours / 24)} GPU-days)")]
    if run.cost is not None:
        rows.append(("cost", f"{run.cost:,.0f}  (at {run.price_per_gpu_hour:g} per GPU-hour, same currency)"))
    if run.energy_kwh is not None:
        rows.append(("energy", f"{_num(run.energy_kwh / 1000)} MWh"))
    return rows


def show_budget(s: tc.BudgetSizing, run: tc.TrainingRun, spec: ModelSpec | None, trainable_tokens: float | None,
                as_json: bool) -> None:
    if as_json:
        payload = {
            "mode": "budget", **_run_dict(run), "days": s.seconds / 86_400, "flops": s.flops,
            "pflops_days": s.pflops_days, "law": s.law, "optimal_params": s.optimal_params,
            "optimal_tokens": s.optimal_tokens, "device_equivalents": _equivalents(s.pflops_days),
        }
        if spec is not None:
            payload.update({"model": spec.name, "model_trainable_tokens": trainable_tokens})
        emit_json(payload)
        return
    console = stdout_console()
    rows = _run_rows(run) + [("wall-clock", f"{s.seconds / 86_400:g} days")] + _gpu_time_rows(run) + [
        ("budget", f"{format_flops(s.flops)} FLOPs ({_num(s.pflops_days)} PF/s-days)"),
        (f"compute-optimal ({s.law})", f"{format_count(s.optimal_params)} params on "
                                               f"{format_count(s.optimal_tokens)} tokens (C = 6 N D)"),
    ]
    if spec is not None and trainable_tokens is not None:
        rows.append((f"{spec.name} could train on", f"{format_count(trainable_tokens)} tokens"))
    console.print(kv_table("What the GPUs deliver", rows))
    if run.energy_kwh is not None:
        console.print(f"[dim]energy counts: {escape(run.energy_counted)}[/dim]")
