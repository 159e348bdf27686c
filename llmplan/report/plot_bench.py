"""Plot of a bench ladder: measured achieved FLOP/s against model size, the fitted curve and the held-out point."""

from __future__ import annotations

from pathlib import Path

from llmplan.report.files import save_figure

PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def plot_ladder(runs: list[dict], fit: dict | None, path: str | Path, title: str, peak_flops: float | None) -> Path:
    """Write the plot to `path` atomically (temp file + os.replace); runs are RunResult dicts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from llmplan.calibration import evaluate_fit

    target = Path(path)
    ok = [r for r in runs if r.get("status") == "ok" and r.get("achieved_flops")]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        if ok:
            ax.scatter([r["params"] for r in ok], [r["achieved_flops"] / 1e12 for r in ok], color="C0", zorder=3,
                       label="measured (median step)")
        if fit:
            lo, hi = fit["params_range"]
            inside = np.geomspace(lo, hi, 100)
            beyond = np.geomspace(hi, hi * 4, 30)
            label = {"power": "power law a N^b", "saturating": "saturating f_max / (1 + (n_half / N)^c)"}
            ax.plot(inside, [evaluate_fit(fit, n) / 1e12 for n in inside], color="C1",
                    label=f"fit: {label.get(fit['form'], fit['form'])}")
            ax.plot(beyond, [evaluate_fit(fit, n) / 1e12 for n in beyond], color="C1", linestyle=":",
                    label="as a profile uses it beyond the largest size")
            hold = fit.get("holdout")
            if hold:
                ax.scatter([hold["params"]], [hold["predicted"] / 1e12], marker="x", color="C3", zorder=4,
                           label=f"largest predicted without it ({hold['error_pct']:+.1f}%)")
        if peak_flops:
            ax.axhline(peak_flops / 1e12, color="grey", linestyle="--", linewidth=1,
                       label=f"dense peak {peak_flops / 1e12:.4g} TFLOP/s")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel("achieved model TFLOP/s")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
    except BaseException:
        plt.close(fig)
        raise
    return save_figure(fig, target, dpi=120)
