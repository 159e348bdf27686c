"""Tables for `llmplan bench`: the device, one row per configuration, the fit, the extrapolation, the profile."""

from __future__ import annotations

from rich import box

from llmplan.report.output import kv_table, note, stdout_console, table
from llmplan.units import format_bytes, format_count, format_seconds


def _pct(x) -> str:
    if x is None:
        return "-"
    text = f"{x:+.1f}%"
    return "0.0%" if text in ("+0.0%", "-0.0%") else text


def _step(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else format_seconds(seconds)


def _mem(x) -> str:
    return "-" if x is None else format_bytes(x)


def _tflops(x) -> str:
    return "-" if x is None else f"{x / 1e12:.3g}"


def device_rows(report: dict) -> list[tuple[str, str]]:
    d, s, v = report["device"], report["settings"], report["versions"]
    rows = [("device", f"{d['name']} ({d['backend']})"), ("memory", _mem(d.get("memory_bytes"))),
            ("compute dtype", f"{s['dtype']}" + (" (autocast)" if s["dtype"] != "fp32" else "")),
            ("dense peak", f"{_tflops(d['peak_flops'])} TFLOP/s" if d.get("peak_flops") else "unknown"),
            ("versions", ", ".join(f"{k} {val}" for k, val in v.items() if val))]
    if d.get("kind") == "cpu":
        rows.append(("note", "CPU figures describe this CPU only, not any GPU"))
    facts = d.get("facts") or {}
    if facts.get("power_limit_watts"):
        rows.append(("power limit", f"{facts['power_limit_watts']:.0f} W"))
    if facts.get("sm_clock_max_mhz"):
        rows.append(("max SM clock", f"{facts['sm_clock_max_mhz']} MHz"))
    rows.append(("settings", f"batch {s['batch']} x seq {s['seq']}, {s['attention']} attention, recompute "
                             f"{s['recompute']}, {'compiled' if s['compile'] else 'eager'}, {s['warmup_steps']} "
                             f"warm-up + {s['timed_steps']} timed steps"))
    return rows


def run_columns(runs: list[dict]) -> list[str]:
    """Columns of the runs table; MFU and energy only when some run has them."""
    one_model = len({r["name"] for r in runs}) == 1 and len({r["layers"] for r in runs}) > 1
    cols = ["depth" if one_model else "model", "params"]
    if len({r["batch"] for r in runs}) > 1:  # the micro-batch was halved after running out of memory
        cols.append("batch")
    cols += ["step ±IQR", "tokens/s", "TFLOP/s"]
    if any(r.get("mfu") is not None for r in runs):
        cols.append("MFU")
    cols += ["peak mem", "predicted", "error"]
    if any(r.get("energy_joules_per_step") is not None for r in runs):
        cols.append("energy/step")
    return cols


def run_rows(runs: list[dict], cols: list[str]) -> list[list[str]]:
    rows = []
    for r in runs:
        if cols[0] == "depth":  # layers of one model (--model): its name is in the title
            name = f"{r['layers']} layer{'s' if r['layers'] != 1 else ''}"
        else:  # "h256-l4": width and depth of a ladder rung (the title says ladder)
            name = r["name"].removeprefix("ladder-")
        if r["status"] != "ok":
            cells = {cols[0]: name, "params": format_count(r["params"]), "batch": str(r["batch"]),
                     "step ±IQR": "out of memory",
                     "peak mem": f"free {_mem(r.get('free_bytes'))}" if r.get("free_bytes") else "-"}
        else:
            cells = {cols[0]: name, "params": format_count(r["params"]), "batch": str(r["batch"]),
                     "step ±IQR": f"{_step(r['step_seconds'])} ±{r['step_spread_pct']:.0f}%",
                     "tokens/s": format_count(r["tokens_per_second"]), "TFLOP/s": _tflops(r["achieved_flops"]),
                     "MFU": "-" if r["mfu"] is None else f"{r['mfu']:.1%}",
                     "peak mem": _mem(r["peak_bytes_measured"]), "predicted": _mem(r["peak_bytes_predicted"]),
                     "error": _pct(r["memory_error_pct"]),
                     "energy/step": "-" if r.get("energy_joules_per_step") is None
                     else f"{r['energy_joules_per_step']:.3g} J"}
        rows.append([cells.get(c, "-") for c in cols])
    return rows


def render_bench(report: dict) -> None:
    console = stdout_console()
    console.print(kv_table("Device", device_rows(report)))
    cols = run_columns(report["runs"])
    what = "Ladder (hWIDTH-lLAYERS)" if report.get("mode") == "ladder" else \
        f"{report['runs'][0]['name']}, training steps" if report["runs"] else "Training steps"
    steps = table(f"{what} at batch {report['settings']['batch']} x seq {report['settings']['seq']}; model FLOPs "
                  "as `llmplan compute` counts them", cols, run_rows(report["runs"], cols), right_align_from=1)
    # No vertical rules and one space between columns: the columns fit an 80-character terminal.
    steps.box, steps.pad_edge, steps.padding = box.SIMPLE_HEAD, False, (0, 0)
    console.print(steps)
    methods = {r["memory_method"] for r in report["runs"] if r.get("memory_method")}
    for m in sorted(methods):
        console.print(f"[dim]peak mem: {m}; predicted: llmplan memory (weights + gradients + optimizer + "
                      "activations)[/dim]", highlight=False)
    fit = report.get("fit")
    if fit:
        c = fit["coefficients"]
        formula = (f"F(N) = {c['a']:.4g} * N^{c['b']:.4g}" if fit["form"] == "power" else
                   f"F(N) = {c['f_max'] / 1e12:.4g} TFLOP/s / (1 + ({c['n_half']:.4g} / N)^{c['c']:.4g})")
        rows = [("form", fit["why"]), ("curve", formula),
                ("residuals", ", ".join(f"{x:+.1f}%" for x in fit["residuals_pct"])),
                ("RMS log residual", f"{fit['rms_log_residual']:.3g}")]
        hold = fit.get("holdout")
        if hold:
            rows.append(("leave-largest-out", f"{format_count(hold['params'])} params predicted "
                                              f"{_tflops(hold['predicted'])} TFLOP/s, measured "
                                              f"{_tflops(hold['measured'])}: error {hold['error_pct']:+.1f}%"))
        console.print(kv_table("Throughput fit (achieved FLOP/s against parameters)", rows))
    else:
        console.print(report.get("fit_note", "no fit"))
    ext = report.get("extrapolation")
    if ext:
        console.print(kv_table(f"{ext['spec_name']} at its full depth ({ext['full_layers']} layers, "
                               f"{format_count(ext['full_params'])} params)", [
            ("method", ext["method"]),
            ("step", "-" if ext["step_seconds"] is None else _step(ext["step_seconds"])),
            ("tokens/s", "-" if ext["tokens_per_second"] is None else format_count(ext["tokens_per_second"])),
            ("achieved TFLOP/s", _tflops(ext["achieved_flops"])),
            ("MFU", "-" if ext["mfu"] is None else f"{ext['mfu']:.1%}"),
            ("peak memory (extrapolated)", _mem(ext["peak_bytes_measured"])),
            ("predicted by llmplan memory", _mem(ext["peak_bytes_predicted"])),
            ("error", _pct(ext["memory_error_pct"])),
            ("fits this device", {True: "yes", False: "no", None: "-"}[ext["fits_device"]])]))
    console.print(f"stopped: {report['stopped']}", highlight=False)
    if report.get("overhead_bytes") is not None:
        console.print(f"memory overhead: {_mem(report['overhead_bytes'])} ({report['overhead_method']})")
    # Paths whole on one line, as written (no wrapping, no markup), so that they can be copied.
    if report.get("profile_path"):
        console.print(f"calibration profile: {report['profile_path']}", soft_wrap=True, markup=False,
                      highlight=False)
    if report.get("plot_path"):
        console.print(f"plot: {report['plot_path']}", soft_wrap=True, markup=False, highlight=False)
    for n in report.get("notes", []):
        note(n)
