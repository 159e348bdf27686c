"""`llmplan hardware`: the accelerator catalog."""

from __future__ import annotations

from typing import Optional

import typer

from llmplan.cli.app import command_app
from llmplan.cli.common import JSON_OPTION
from llmplan.hardware import GPU, load_gpus, parse_gpu
from llmplan.report.output import emit_json, kv_table, stdout_console
from llmplan.units import GiB, format_bytes

_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "fp4", "int8")


def gpu_summary(g: GPU) -> dict:
    return {
        "name": g.name,
        "vendor": g.vendor,
        "memory_bytes": g.memory_bytes,
        "peak_flops": dict(g.peak_flops),
        "bandwidth_bytes_per_s": g.bandwidth_bytes_per_s,
        "hbm_bandwidth_bytes_per_s": g.hbm_bandwidth_bytes_per_s,
        "nvlink_domain_gpus": g.nvlink_domain_gpus,
        "scaleup_bandwidth_bytes_per_s": g.scaleup_bandwidth_bytes_per_s,
        "scaleout_bandwidth_bytes_per_s": g.scaleout_bandwidth_bytes_per_s,
        "pcie_bandwidth_bytes_per_s": g.pcie_bandwidth_bytes_per_s,
        "power_watts": g.power_watts,
        "aliases": list(g.aliases),
        "source": g.source,
        "network_source": g.network_source,
    }


def _rate(v: float | None, bits: bool = False, missing: str = "not given (see network)") -> str:
    if not v:
        return missing
    text = f"{v / 1e9:.4g} GB/s per GPU, each way"
    return f"{text} ({v * 8 / 1e9:.4g} Gb/s)" if bits else text


def _tf(g: GPU, dtype: str, digits: int = 6) -> str:
    v = g.peak_flops.get(dtype)
    if not v:
        return "-"
    t = v / 1e12
    return f"{t:.0f}" if t >= 10**digits else f"{t:.{digits}g}"  # 13125, not 1.312e+04


app = command_app()


@app.command("hardware")
def hardware(
    name: Optional[str] = typer.Argument(None, help="Show one accelerator (loose names: h100, 'NVIDIA H200'), or "
                                         "what a --gpu description such as 'h100:nic=25GB/s' or "
                                         "'custom:memory=96GiB,bf16=800T' stands for."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List the accelerator catalog: memory, dense peak TFLOP/s per dtype, HBM and network bandwidths, power.

    Peaks are dense; 2:4-sparse datasheet figures are never used. Bandwidths are per GPU and in one direction (an
    NVLink sold as 900 GB/s bidirectional is 450 GB/s here); the scale-up domain is the GPUs one NVLink/NVSwitch
    (Infinity Fabric, ICI) fabric joins; the NIC figure is the vendor's reference system, e.g. DGX H100's
    400 Gb/s ConnectX-7 per GPU. Any --gpu accepts custom:KEY=VALUE,... for a device not listed here.

    Examples:

      llmplan hardware

      llmplan hardware "NVIDIA H100 80GB HBM3"

      llmplan hardware --json

      llmplan hardware "custom:memory=96GiB,bf16=800T,fp8=1600T,hbm=4TB/s,scaleup=450GB/s,nic=400Gb/s,domain=8"
    """
    gpus = [parse_gpu(name, "hardware NAME")] if name else list(load_gpus())
    if as_json:
        emit_json({"gpus": [gpu_summary(g) for g in gpus]} if not name else gpu_summary(gpus[0]))
        return
    console = stdout_console()
    if name:
        g = gpus[0]
        rows = [("vendor", g.vendor or "none: described on the command line"), ("memory", f"{format_bytes(g.memory_bytes)} ({g.memory_bytes / 1e9:.1f} GB)")]
        rows += [(f"peak {d} (dense)", f"{_tf(g, d)} {'TOPS' if d == 'int8' else 'TFLOP/s'}")
                 for d in _DTYPES if d in g.peak_flops]
        rows += [("HBM bandwidth", f"{g.bandwidth_bytes_per_s / 1e12:g} TB/s" if g.bandwidth_bytes_per_s
                  else "not published"),
                 ("scale-up domain", f"{g.nvlink_domain_gpus} GPUs" if g.nvlink_domain_gpus > 1 else "none (1 GPU)"),
                 ("scale-up bandwidth", _rate(g.scaleup_bandwidth_bytes_per_s, missing="none" if
                                              g.nvlink_domain_gpus == 1 else "not given (see network)")),
                 ("scale-out (NIC)", _rate(g.scaleout_bandwidth_bytes_per_s, bits=True)),
                 ("host link (PCIe)", _rate(g.pcie_bandwidth_bytes_per_s)),
                 ("power", f"{g.power_watts:g} W" if g.power_watts else "not published")]
        console.print(kv_table(g.name, rows))
        console.print(f"[dim]source: {g.source}[/dim]")
        if g.network_source:
            console.print(f"[dim]network: {g.network_source}[/dim]")
        return
    console.print(_listing(gpus))
    console.print("[dim]16-bit: bf16 and fp16 (* fp16 only, no bf16). dom: GPUs in one scale-up (NVLink) domain; "
                  "up, NIC: GB/s per GPU, each way. `llmplan hardware NAME` for one entry with its sources.[/dim]")


def _gbs(v: float | None) -> str:
    return f"{v / 1e9:.3g}" if v else "-"


def _listing(gpus: list[GPU]):
    """The catalog as one table narrow enough for an 80-column terminal: names never wrap, fp16 shares the bf16
    column (the same rate on every chip listed; a V100's fp16-only rate is starred), four significant digits.
    fp32, tf32 and int8 are in `llmplan hardware NAME` and --json."""
    from rich import box
    from rich.table import Table

    t = Table(title="Accelerators: dense TFLOP/s; HBM TB/s; links GB/s per GPU, each way",
              title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0, 0, 1))
    t.add_column("name", no_wrap=True)
    for col in ("GiB", "16-bit", "fp8", "fp4", "TB/s", "dom", "up", "NIC", "W"):
        t.add_column(col, justify="right", no_wrap=True)
    for g in gpus:
        half = _tf(g, "bf16", 4) if "bf16" in g.peak_flops else (f"{_tf(g, 'fp16', 4)}*" if "fp16" in g.peak_flops
                                                                 else "-")
        t.add_row(g.name, f"{g.memory_bytes / GiB:g}", half, _tf(g, "fp8", 4), _tf(g, "fp4", 4),
                  f"{g.bandwidth_bytes_per_s / 1e12:.3g}", str(g.nvlink_domain_gpus),
                  _gbs(g.scaleup_bandwidth_bytes_per_s), _gbs(g.scaleout_bandwidth_bytes_per_s),
                  f"{g.power_watts:g}" if g.power_watts else "-")
    return t
