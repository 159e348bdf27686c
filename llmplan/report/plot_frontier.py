"""A figure of the compute-optimal frontier: parameters and tokens against training FLOPs, one line per law."""

from __future__ import annotations

import os
from pathlib import Path

from llmplan.errors import LlmplanError
from llmplan.report.files import save_figure


def plot_frontier(path: str | os.PathLike, series: dict, chosen: str) -> Path:
    """Draw `series` (law name -> list of Sizing with .flops, .params, .tokens) to `path`, written atomically.

    matplotlib is imported here, with the non-interactive Agg backend, so the planner never loads it otherwise.
    """
    target = Path(path).expanduser()
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in ("png", "pdf", "svg"):
        raise LlmplanError(f"cannot write a figure to {str(target)!r}: use a .png, .pdf or .svg file name")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise LlmplanError(f"cannot write {str(target)!r}: folder {str(folder)!r} does not exist")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_n, ax_d) = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    for name, rows in series.items():
        flops = [r.flops for r in rows]
        style = {"linewidth": 2.5 if name == chosen else 1.4, "marker": "o", "markersize": 3}
        ax_n.plot(flops, [r.params for r in rows], label=name, **style)
        ax_d.plot(flops, [r.tokens for r in rows], label=name, **style)
    for ax, what in ((ax_n, "compute-optimal parameters"), (ax_d, "compute-optimal training tokens")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training FLOPs (C = 6 N D)")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
    ax_n.legend(title="law")
    note = "; kaplan counts non-embedding parameters" if "kaplan" in series else ""
    fig.suptitle(f"Compute-optimal frontier (bold: {chosen}{note})")

    return save_figure(fig, target, create_folder=False, format=fmt, dpi=130)
