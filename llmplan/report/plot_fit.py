"""A picture of a scaling-law fit: loss against compute with the fitted frontier, and the IsoFLOP profiles.

matplotlib is imported inside the function (Agg backend, no display needed); the file is written atomically.
"""

from __future__ import annotations

import os

from llmplan.errors import LlmplanError
from llmplan.report.files import save_figure

PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def check_plot_path(path: str) -> str:
    """Validate --plot before any work: a known image suffix and an existing folder."""
    from llmplan.files import check_writable_target

    check_writable_target(path, "--plot")  # a regular file or a new path; names within the file system's limits
    target = os.path.abspath(path)
    suffix = os.path.splitext(target)[1].lower()
    if suffix not in PLOT_SUFFIXES:
        raise LlmplanError(f"--plot {path}: give a file ending in {', '.join(PLOT_SUFFIXES)}")
    if not os.path.isdir(os.path.dirname(target)):
        raise LlmplanError(f"--plot {path}: folder {os.path.dirname(target)} does not exist")
    return target


def plot_fit(path: str, runs, fit, envelope=None, approach2=None) -> None:
    """Left: every run's loss against its compute, the law's compute-optimal frontier L(N_opt(C), D_opt(C)) and the
    envelope fit. Right (where IsoFLOP groups exist): loss against N per budget with its parabola and minimum."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    target = check_plot_path(path)
    groups = approach2.groups if approach2 is not None else ()
    fig, axes = plt.subplots(1, 2 if groups else 1, figsize=(12 if groups else 6.5, 4.8), squeeze=False)
    ax = axes[0][0]
    flops = np.asarray(runs.flops)
    ax.scatter(flops, runs.losses, s=12, c=np.log10(np.asarray(runs.params)), cmap="viridis", alpha=0.8,
               label="runs (colour: log10 N)")
    grid = np.logspace(np.log10(flops.min()) - 0.3, np.log10(flops.max()) + 1.0, 200)
    frontier = [fit.loss(*fit.optimal(c)) for c in grid]
    ax.plot(grid, frontier, "k-", lw=1.5,
            label=f"law at the optimum: E={fit.E:.3g}, alpha={fit.alpha:.3f}, beta={fit.beta:.3f}")
    if envelope is not None:
        ax.plot(grid, [envelope.loss(c) for c in grid], "r--", lw=1,
                label=f"envelope E + A C^-gamma, gamma={envelope.gamma:.3f}")
        ax.scatter(envelope.flops, envelope.losses, s=30, facecolors="none", edgecolors="r", lw=0.8,
                   label="frontier runs")
    ax.set_xscale("log")
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("final loss")
    ax.set_title(f"{len(runs)} runs")
    ax.legend(fontsize=7)
    if groups:
        ax2 = axes[0][1]
        colours = plt.cm.plasma(np.linspace(0, 0.9, len(groups)))
        for g, colour in zip(groups, colours):
            ax2.scatter(g.params, g.losses, s=12, color=colour)
            if g.coefficients:
                c0, c1, c2 = g.coefficients
                xs = np.linspace(np.log(min(g.params)), np.log(max(g.params)), 100)
                ax2.plot(np.exp(xs), c0 + c1 * xs + c2 * xs ** 2, color=colour, lw=1, label=f"C = {g.flops:.2e}")
            if g.used:
                ax2.plot([g.params_opt], [g.loss_opt], "kx", ms=6)
        ax2.set_xscale("log")
        ax2.set_xlabel("parameters N")
        ax2.set_ylabel("final loss")
        title = "IsoFLOP profiles (x: parabola minimum)"
        if approach2.a is not None:
            title += f"; N_opt ~ C^{approach2.a:.3f}"
        ax2.set_title(title)
        if len(groups) <= 12:  # beyond that a legend hides the curves
            ax2.legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, target, create_folder=False, dpi=120)
