"""The loss-compute envelope: L(C) = E + A C^-gamma fitted to the compute-efficient frontier of the runs.

The frontier is the lower envelope of loss against training compute: the runs that reach a lower loss than every run
with less or equal compute (the curve Hoffmann et al. 2022, Figure 2, and Kaplan et al. 2020, Figure 1, trace).
It is fitted the way the Chinchilla law is (Hoffmann et al. 2022, Appendix D.2): log L = LSE(a - gamma log C, e) with
A = exp(a), E = exp(e), a summed Huber loss on log L, L-BFGS-B from the best points of a grid.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from llmplan.fit.chinchilla import DEFAULT_DELTA, huber, single_thread_blas

MIN_FRONTIER = 4  # three constants: at least one frontier run more than that


@dataclass(frozen=True)
class EnvelopeFit:
    """L(C) = E + A C^-gamma on the frontier runs (their FLOPs and losses kept for plotting)."""

    E: float
    A: float
    gamma: float
    n_points: int
    residual_rms: float  # RMS of log L_pred - log L over the frontier runs
    flops: tuple[float, ...]
    losses: tuple[float, ...]
    fitted_on: str = "lower envelope (runs with lower loss than every run of less or equal compute)"

    def loss(self, flops: float) -> float:
        return self.E + self.A * flops ** -self.gamma  # L(C) = E + A C^-gamma


def frontier(flops, losses) -> list[int]:
    """Indices of the runs on the lower envelope, in increasing compute."""
    order = sorted(range(len(flops)), key=lambda i: (flops[i], losses[i]))
    keep, best = [], math.inf
    for i in order:
        if losses[i] < best:
            keep.append(i)
            best = losses[i]
    return keep


def _objective(theta, x, log_loss, delta):
    import numpy as np

    a, e, gamma = theta
    t1 = a - gamma * x
    m = np.maximum(t1, e)
    w1, w2 = np.exp(t1 - m), np.exp(e - m)
    s = w1 + w2
    r = m + np.log(s) - log_loss
    g = np.clip(r, -delta, delta) / s  # d Huber/dr times d LSE/dt = softmax weight
    return float(huber(r, delta).sum()), np.array([(g * w1).sum(), (g * w2).sum(), -(g * w1 * x).sum()])


def fit_envelope(flops, losses, delta: float = DEFAULT_DELTA, starts: int = 8) -> EnvelopeFit | None:
    """Fit L(C) = E + A C^-gamma to the frontier; None where fewer than 4 runs form the frontier."""
    import numpy as np
    from scipy.optimize import minimize

    idx = frontier(list(flops), list(losses))
    if len(idx) < MIN_FRONTIER:
        return None
    c = np.asarray(flops, dtype=float)[idx]
    loss = np.asarray(losses, dtype=float)[idx]
    x, y = np.log(c), np.log(loss)
    # Starting grid: gamma from shallow to steep, a so that A C^-gamma spans 0.01..100 at the median budget.
    gammas = np.arange(0.025, 0.6, 0.025)
    offsets = np.arange(-4.0, 5.0, 1.0)
    es = np.arange(-1.0, 1.5, 0.5)
    grid = np.array([(g * np.median(x) + o, e, g) for g, o, e in itertools.product(gammas, offsets, es)])
    lse = np.logaddexp(grid[:, :1] - grid[:, 2:3] * x, grid[:, 1:2])
    values = huber(lse - y, delta).sum(axis=1)
    best = None
    with single_thread_blas():
        for x0 in grid[np.argsort(values)[:starts]]:
            res = minimize(_objective, x0, args=(x, y, delta), jac=True, method="L-BFGS-B",
                           options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 2000})
            if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
                best = res
    a, e, gamma = best.x
    pred = np.logaddexp(a - gamma * x, e)
    return EnvelopeFit(E=float(math.exp(e)), A=float(math.exp(a)), gamma=float(gamma), n_points=len(idx),
                       residual_rms=float(np.sqrt(np.mean((pred - y) ** 2))),
                       flops=tuple(float(v) for v in c), losses=tuple(float(v) for v in loss))
