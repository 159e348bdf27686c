"""Tables for `llmplan bench --calibrate`: GEMM curve, memory bandwidth, attention kernels, collectives."""

from __future__ import annotations

from rich import box

from llmplan.report.output import kv_table, note, stdout_console, table
from llmplan.units import format_bytes


def _time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def _scale(values, unit: str) -> tuple[float, str]:
    top = max(values, default=0.0)
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if top >= scale:
            return scale, f"{prefix}{unit}"
    return 1e3, f"k{unit}"


def _num(x: float) -> str:
    return f"{x:.3g}"


def _peak(report: dict, dtype: str) -> float | None:
    """Dense peak FLOP/s of the device for `dtype`: the bench's own (its dtype, or --peak-tflops), else the
    catalog's."""
    d = report["device"]
    if dtype == d.get("dtype") and d.get("peak_flops"):
        return d["peak_flops"]
    if d.get("kind") != "cuda":
        return None
    from llmplan.hardware import match_gpu

    gpu = match_gpu(d["name"])
    return gpu.peak(dtype) if gpu is not None else None


def _compact(t):
    t.box, t.pad_edge, t.padding = box.SIMPLE_HEAD, False, (0, 1)
    return t


def gemm_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    curve = report["gemm_curve"]
    scale, unit = _scale([g["flops_per_s"] for g in curve], "FLOP/s")
    peaks = {g["dtype"]: _peak(report, g["dtype"]) for g in curve}
    cols = ["m", "n", "k", "dtype", "time ±IQR", unit] + (["of peak"] if any(peaks.values()) else [])
    rows = []
    for g in curve:
        row = [str(g["m"]), str(g["n"]), str(g["k"]), g["dtype"], f"{_time(g['seconds'])} ±{g['spread_pct']:.0f}%",
               _num(g["flops_per_s"] / scale)]
        if len(cols) > 6:
            peak = peaks[g["dtype"]]
            row.append(f"{g['flops_per_s'] / peak:.0%}" if peak else "-")
        rows.append(row)
    return cols, rows


def attention_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    att = report["attention"]
    scale, unit = _scale([a["flops_per_s"] for a in att], "FLOP/s")
    cols = ["kernel", "batch", "heads", "seq", "d", "time ±IQR", unit, "GB/s"]
    rows = []
    for a in att:
        heads = str(a["heads"]) if a.get("kv_heads", a["heads"]) == a["heads"] else f"{a['heads']}/{a['kv_heads']}"
        rows.append([a["kind"], str(a["batch"]), heads, f"{a['seq']:,}", str(a["head_dim"]),
                     f"{_time(a['seconds'])} ±{a['spread_pct']:.0f}%", _num(a["flops_per_s"] / scale),
                     _num(a["bytes_per_s"] / 1e9)])
    return cols, rows


def collective_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    cols = ["op", "ranks", "size", "time ±IQR", "algbw GB/s", "busbw GB/s"]
    rows = [[c["op"].replace("_", "-"), str(c["ranks"]), format_bytes(c["bytes"]),
             f"{_time(c['seconds'])} ±{c['spread_pct']:.0f}%", _num(c["alg_bytes_per_s"] / 1e9),
             _num(c["bus_bytes_per_s"] / 1e9)] for c in report["collectives"]]
    return cols, rows


def render_calibration(report: dict) -> None:
    console = stdout_console()
    d, s = report["device"], report["settings"]
    rows = [("device", f"{d['name']} ({d['backend']})"),
            ("timing", f"{s['warmup']} warm-up calls, then {s['repeats']} samples of at least "
                       f"{s['sample_seconds'] * 1e3:g} ms each; median ±IQR/median"),
            ("took", f"{report['seconds']:.1f} s")]
    if report.get("threads") and d.get("kind") == "cpu":
        rows.append(("CPU threads", str(report["threads"])))
    mb = report.get("memory_bandwidth")
    if mb:
        rows.append(("memory bandwidth" if d.get("kind") == "cpu" else "HBM bandwidth",
                     f"{mb['bytes_per_s'] / 1e9:.3g} GB/s ±{mb['spread_pct']:.0f}% (copy of "
                     f"{format_bytes(mb['buffer_bytes'])}, read + write)"))
    console.print(kv_table("Calibration: kernels on this device", rows))
    if report["gemm_curve"]:
        cols, grows = gemm_rows(report)
        console.print(_compact(table("GEMM C = A B, A m x k, B k x n (2 m n k FLOPs)", cols, grows, 0)))
    if report["attention"]:
        cols, arows = attention_rows(report)
        console.print(_compact(table(f"Attention, scaled_dot_product_attention ({report['attention'][0]['dtype']}): "
                                     "prefill causal over seq; decode 1 query over seq keys", cols, arows, 1)))
    if report["collectives"]:
        cols, crows = collective_rows(report)
        console.print(_compact(table(f"Collectives ({report['collectives'][0]['backend']}, nccl-tests busbw)",
                                     cols, crows, 1)))
    if report.get("profile_path"):
        console.print(f"calibration profile: {report['profile_path']}", soft_wrap=True, markup=False,
                      highlight=False)
    for n in report.get("notes", []):
        note(n)
