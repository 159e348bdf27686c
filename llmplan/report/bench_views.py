"""Tables for `llmplan bench`: the device, one row per configuration, the fit, the extrapolation, the profile."""

from __future__ import annotations

from llmplan.report.output import kv_table, note, stdout_console, table
from llmplan.units import format_bytes, format_count, format_seconds


def _pct(x) -> str:
    return "-" if x is None else f"{x:+.1f}%"


def _mem(x) -> str:
    return "-" if x is None else format_bytes(x)


def _tflops(x) -> str:
    return "-" if x is None else f"{x / 1e12:.4g}"


def device_rows(report: dict) -> list[tuple[str, str]]:
    d, s, v = report["device"], report["settings"], report["versions"]
    rows = [("device", f"{d['name']} ({d['backend']})"), ("memory", _mem(d.get("memory_bytes"))),
            ("compute dtype", f"{s['dtype']}" + (" (autocast)" if s["dtype"] != "fp32" else "")),
            ("dense peak", f"{_tflops(d['peak_flops'])} TFLOP/s" if d.get("peak_flops") else "unknown"),
            ("versions", ", ".join(f"{k} {val}" for k, val in v.items() if val))]
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
    cols = ["model", "params", "batch", "step (median ±IQR)", "tokens/s", "TFLOP/s"]
    if any(r.get("mfu") is not None for r in runs):
        cols.append("MFU")
    cols += ["peak measured", "predicted", "error"]
    if any(r.get("energy_joules_per_step") is not None for r in runs):
        cols.append("energy/step")
    return cols


def run_rows(runs: list[dict], cols: list[str]) -> list[list[str]]:
    rows = []
    names = [r["name"] for r in runs]
    for r in runs:
        name = r["name"] if names.count(r["name"]) == 1 or len({x["layers"] for x in runs}) == 1 else \
            f"{r['name']} ({r['layers']} layers)"
        if r["status"] != "ok":
            cells = {"model": name, "params": format_count(r["params"]), "batch": str(r["batch"]),
                     "step (median ±IQR)": "out of memory",
                     "peak measured": f"free {_mem(r.get('free_bytes'))}" if r.get("free_bytes") else "-"}
        else:
            cells = {"model": name, "params": format_count(r["params"]), "batch": str(r["batch"]),
                     "step (median ±IQR)": f"{r['step_seconds'] * 1e3:.4g} ms ±{r['step_spread_pct']:.0f}%",
                     "tokens/s": format_count(r["tokens_per_second"]), "TFLOP/s": _tflops(r["achieved_flops"]),
                     "MFU": "-" if r["mfu"] is None else f"{r['mfu']:.1%}",
                     "peak measured": _mem(r["peak_bytes_measured"]), "predicted": _mem(r["peak_bytes_predicted"]),
                     "error": _pct(r["memory_error_pct"]),
                     "energy/step": "-" if r.get("energy_joules_per_step") is None
                     else f"{r['energy_joules_per_step']:.3g} J"}
        rows.append([cells.get(c, "-") for c in cols])
    return rows


def render_bench(report: dict) -> None:
    console = stdout_console()
    console.print(kv_table("Device", device_rows(report)))
    cols = run_columns(report["runs"])
    console.print(table("Training steps (model FLOPs counted as `llmplan compute` does)", cols,
                        run_rows(report["runs"], cols), right_align_from=1))
    methods = {r["memory_method"] for r in report["runs"] if r.get("memory_method")}
    for m in sorted(methods):
        console.print(f"[dim]peak measured: {m}; predicted: llmplan memory (weights + gradients + optimizer + "
                      "activations)[/dim]")
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
            ("step", "-" if ext["step_seconds"] is None else format_seconds(ext["step_seconds"])),
            ("tokens/s", "-" if ext["tokens_per_second"] is None else format_count(ext["tokens_per_second"])),
            ("achieved TFLOP/s", _tflops(ext["achieved_flops"])),
            ("MFU", "-" if ext["mfu"] is None else f"{ext['mfu']:.1%}"),
            ("peak memory (extrapolated)", _mem(ext["peak_bytes_measured"])),
            ("predicted by llmplan memory", _mem(ext["peak_bytes_predicted"])),
            ("error", _pct(ext["memory_error_pct"])),
            ("fits this device", {True: "yes", False: "no", None: "-"}[ext["fits_device"]])]))
    console.print(f"stopped: {report['stopped']}")
    if report.get("overhead_bytes") is not None:
        console.print(f"memory overhead: {_mem(report['overhead_bytes'])} ({report['overhead_method']})")
    if report.get("profile_path"):
        console.print(f"calibration profile: {report['profile_path']}")
    if report.get("plot_path"):
        console.print(f"plot: {report['plot_path']}")
    for n in report.get("notes", []):
        note(n)
