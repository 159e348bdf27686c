"""Chinchilla's Approach 2 (Hoffmann et al. 2022, section 3.2): IsoFLOP profiles.

Runs that share a training budget (FLOPs equal within a tolerance) and span at least three model sizes form an
IsoFLOP group. Per group a parabola in log N is fitted to the final loss; its vertex is N_opt(C), and
D_opt(C) = C / (6 N_opt). Power laws N_opt = k_N C^a and D_opt = k_D C^b then follow by least squares in log-log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmplan.estimate.laws import FLOPS_PER_PARAM_TOKEN  # C = 6 N D

MIN_SIZES = 3  # a parabola needs three distinct sizes
DEFAULT_TOLERANCE = 0.15  # runs within 15% of a group's smallest budget share it


@dataclass(frozen=True)
class IsoflopGroup:
    """Runs at one budget and their parabola L = c0 + c1 x + c2 x^2, x = ln N."""

    flops: float  # geometric mean of the group's budgets
    params: tuple[float, ...]
    losses: tuple[float, ...]
    coefficients: tuple[float, float, float] | None  # (c0, c1, c2)
    params_opt: float | None
    tokens_opt: float | None
    loss_opt: float | None
    used: bool  # part of the power-law fit
    note: str = ""


@dataclass(frozen=True)
class Approach2Fit:
    """N_opt = k_N C^a and D_opt = k_D C^b from the vertices of the IsoFLOP parabolas."""

    groups: tuple[IsoflopGroup, ...]
    a: float | None
    b: float | None
    params_coef: float | None
    tokens_coef: float | None
    tolerance: float

    @property
    def n_used(self) -> int:
        return sum(g.used for g in self.groups)

    def optimal(self, flops: float) -> tuple[float, float] | None:
        if self.a is None:
            return None
        return self.params_coef * flops ** self.a, self.tokens_coef * flops ** self.b


def group_by_budget(flops, tolerance: float = DEFAULT_TOLERANCE) -> list[list[int]]:
    """Indices of runs grouped by budget: a group takes runs up to (1 + tolerance) x its smallest budget."""
    order = sorted(range(len(flops)), key=lambda i: flops[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and flops[i] <= flops[groups[-1][0]] * (1 + tolerance):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _distinct(values, rel: float = 1e-3) -> int:
    count, last = 0, None
    for v in sorted(values):
        if last is None or v > last * (1 + rel):
            count += 1
            last = v
    return count


def _parabola(flops: float, params, losses) -> IsoflopGroup:
    import numpy as np

    x = np.log(np.asarray(params, dtype=float))
    c2, c1, c0 = np.polyfit(x, np.asarray(losses, dtype=float), 2)
    base = dict(flops=flops, params=tuple(params), losses=tuple(losses), coefficients=(float(c0), float(c1), float(c2)))
    if c2 <= 0:
        return IsoflopGroup(**base, params_opt=None, tokens_opt=None, loss_opt=None, used=False,
                            note="the loss is not convex in log N here")
    vertex = -c1 / (2 * c2)  # minimum of c0 + c1 x + c2 x^2
    n_opt = math.exp(vertex)
    inside = x.min() <= vertex <= x.max()
    return IsoflopGroup(**base, params_opt=n_opt, tokens_opt=flops / (FLOPS_PER_PARAM_TOKEN * n_opt),
                        loss_opt=float(c0 + c1 * vertex + c2 * vertex ** 2), used=bool(inside),
                        note="" if inside else "the minimum lies outside the sizes tried")


def fit_approach2(params, flops, losses, tolerance: float = DEFAULT_TOLERANCE) -> Approach2Fit | None:
    """IsoFLOP groups, their parabolas and the power laws; None where no group has three or more sizes."""
    import numpy as np

    groups = []
    for idx in group_by_budget(list(flops), tolerance):
        sizes = [params[i] for i in idx]
        if _distinct(sizes) < MIN_SIZES:
            continue
        budget = float(np.exp(np.mean(np.log([flops[i] for i in idx]))))
        groups.append(_parabola(budget, sizes, [losses[i] for i in idx]))
    if not groups:
        return None
    used = [g for g in groups if g.used]
    a = b = kn = kd = None
    if len(used) >= 2:
        lc = np.log([g.flops for g in used])
        a, log_kn = np.polyfit(lc, np.log([g.params_opt for g in used]), 1)  # ln N_opt = ln k_N + a ln C
        b, log_kd = np.polyfit(lc, np.log([g.tokens_opt for g in used]), 1)  # ln D_opt = ln k_D + b ln C
        a, b, kn, kd = float(a), float(b), float(math.exp(log_kn)), float(math.exp(log_kd))
    return Approach2Fit(groups=tuple(groups), a=a, b=b, params_coef=kn, tokens_coef=kd, tolerance=tolerance)
