"""`llmplan hardware`: the accelerator catalog."""

from __future__ import annotations

from typing import Optional

import typer

from llmplan.cli.app import command_app
from llmplan.cli.common import JSON_OPTION
from llmplan.hardware import GPU, get_gpu, load_gpus
from llmplan.report.output import emit_json, kv_table, stdout_console
from llmplan.units import GiB, format_bytes

_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")


def gpu_summary(g: GPU) -> dict:
    return {
        "name": g.name,
        "vendor": g.vendor,
        "memory_bytes": g.memory_bytes,
        "peak_flops": dict(g.peak_flops),
        "bandwidth_bytes_per_s": g.bandwidth_bytes_per_s,
        "power_watts": g.power_watts,
        "aliases": list(g.aliases),
        "source": g.source,
    }


def _tf(g: GPU, dtype: str, digits: int = 6) -> str:
    v = g.peak_flops.get(dtype)
    return f"{v / 1e12:.{digits}g}" if v else "-"


app = command_app()


@app.command("hardware")
def hardware(
    name: Optional[str] = typer.Argument(None, help="Show one accelerator (loose names: h100, 'NVIDIA H200')."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List the accelerator catalog: memory, dense peak TFLOP/s per dtype, bandwidth, power, source.

    Peaks are dense; 2:4-sparse datasheet figures are never used.

    Examples:

      llmplan hardware

      llmplan hardware "NVIDIA H100 80GB HBM3"

      llmplan hardware --json
    """
    gpus = [get_gpu(name)] if name else list(load_gpus())
    if as_json:
        emit_json({"gpus": [gpu_summary(g) for g in gpus]} if not name else gpu_summary(gpus[0]))
        return
    console = stdout_console()
    if name:
        g = gpus[0]
        rows = [("vendor", g.vendor), ("memory", f"{format_bytes(g.memory_bytes)} ({g.memory_bytes / 1e9:.1f} GB)")]
        rows += [(f"peak {d} (dense)", f"{_tf(g, d)} {'TOPS' if d == 'int8' else 'TFLOP/s'}")
                 for d in _DTYPES if d in g.peak_flops]
        rows += [("bandwidth", f"{g.bandwidth_bytes_per_s / 1e12:g} TB/s"),
                 ("power", f"{g.power_watts:g} W" if g.power_watts else "not published")]
        console.print(kv_table(g.name, rows))
        console.print(f"[dim]source: {g.source}[/dim]")
        return
    console.print(_listing(gpus))
    console.print("[dim]16-bit: bf16 and fp16 (* fp16 only, no bf16). `llmplan hardware NAME` for one entry with "
                  "its source.[/dim]")


def _listing(gpus: list[GPU]):
    """The catalog as one table narrow enough for an 80-column terminal: names never wrap, fp16 shares the bf16
    column (the same rate on every chip listed; a V100's fp16-only rate is starred), four significant digits."""
    from rich import box
    from rich.table import Table

    t = Table(title="Accelerators: dense peak TFLOP/s, memory in GiB, bandwidth in TB/s (decimal), power in W",
              title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("name", no_wrap=True)
    for col in ("GiB", "fp32", "tf32", "16-bit", "fp8", "int8", "TB/s", "W"):
        t.add_column(col, justify="right", no_wrap=True)
    for g in gpus:
        half = _tf(g, "bf16", 4) if "bf16" in g.peak_flops else (f"{_tf(g, 'fp16', 4)}*" if "fp16" in g.peak_flops
                                                                 else "-")
        t.add_row(g.name, f"{g.memory_bytes / GiB:g}", _tf(g, "fp32", 4), _tf(g, "tf32", 4), half, _tf(g, "fp8", 4),
                  _tf(g, "int8", 4), f"{g.bandwidth_bytes_per_s / 1e12:g}",
                  f"{g.power_watts:g}" if g.power_watts else "-")
    return t
