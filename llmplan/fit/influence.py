"""Which runs dominate a fit: large standardised residuals, and how far the law moves without them.

A run is flagged when its modified z-score, 0.6745 (r - median r) / MAD of the log residuals r, exceeds 3.5
(Iglewicz and Hoaglin 1993, "How to Detect and Handle Outliers"), or for many runs the |z| that normal noise passes
in one of them with 5% probability: the median absolute deviation is not inflated by the outliers themselves, as
the standard deviation is. The flagged runs are then placed among the runs ranked by
loss, since `--drop-highest K` leaves out the K highest-loss runs: K is the rank of the lowest of them. They are
said to dominate the fit when one is a gross outlier (|z| > 10) or when the law refitted without them moves by more
than its interval (10% without intervals): a robust (Huber) fit can shrug off a large residual, and a moderate one
in clean data is noise. Pure Python over the fit's results; the refit is the caller's (it takes a second).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MODIFIED_Z = 3.5  # Iglewicz and Hoaglin 1993
GROSS_Z = 10.0  # a residual this far out dominates whatever the refit says
MAD_SCALE = 0.6745  # the normal distribution's 0.75 quantile: 0.6745 / MAD standardises to a unit normal


@dataclass(frozen=True)
class Influential:
    index: int  # position in the runs as read
    params: float
    tokens: float
    loss: float
    z: float  # modified z-score of its log residual
    loss_rank: int  # 1 = the highest loss


def influential_runs(fit, params, tokens, losses) -> list[Influential]:
    """Runs whose log residual under `fit` has a modified z-score above MODIFIED_Z, largest first."""
    res = [math.log(fit.loss(n, d)) - math.log(l) for n, d, l in zip(params, tokens, losses)]
    med = _median(res)
    mad = _median([abs(r - med) for r in res])
    if mad <= 0:
        return []  # at least half the runs fitted exactly: no spread to measure against
    cut = threshold(len(res))
    order = sorted(range(len(losses)), key=lambda i: -losses[i])
    rank = {i: k + 1 for k, i in enumerate(order)}
    out = [Influential(i, params[i], tokens[i], losses[i], MAD_SCALE * (r - med) / mad, rank[i])
           for i, r in enumerate(res) if MAD_SCALE * abs(r - med) / mad > cut]
    return sorted(out, key=lambda x: -abs(x.z))


def threshold(n: int) -> float:
    """3.5, or more for many runs: the |z| that normal noise exceeds in one run of n with probability 5%
    (a Bonferroni bound), so that ten thousand clean runs do not flag their largest residuals."""
    from statistics import NormalDist

    return max(MODIFIED_Z, NormalDist().inv_cdf(1 - 0.05 / (2 * max(n, 1))))


def drop_highest_for(flagged: list[Influential], n_runs: int, min_runs: int) -> int | None:
    """The --drop-highest K that leaves out the flagged runs among the highest-loss ones (at most a few good runs
    with them), or None when none of them is; K leaves at least `min_runs`."""
    reach = 2 * len(flagged) + 2  # dropping many good runs to reach a flagged one is no remedy
    ranks = [x.loss_rank for x in flagged if x.loss_rank <= reach]
    if not ranks:
        return None
    k = max(ranks)
    return k if n_runs - k >= min_runs else None


def moved(before, after, intervals: dict | None) -> list[str]:
    """The constants (alpha, beta, a) that move by more than their interval's width (or 10% without intervals)."""
    out = []
    for key in ("alpha", "beta", "a"):
        b, a = getattr(before, key), getattr(after, key)
        width = intervals[key][1] - intervals[key][0] if intervals and key in intervals else 0.1 * abs(b)
        if abs(a - b) > width:
            out.append(f"{key} {b:.3g} -> {a:.3g}")
    return out


def _median(values: list[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else 0.5 * (s[mid - 1] + s[mid])
