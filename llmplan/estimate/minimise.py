"""A one-dimensional minimiser in plain Python (no scipy on the planner's path): a grid scan to bracket the global
minimum, then golden-section search inside the bracket (Kiefer 1953)."""

from __future__ import annotations

import math
from typing import Callable

_GOLDEN = (math.sqrt(5) - 1) / 2  # 0.618...


def minimise_scalar(f: Callable[[float], float], lo: float, hi: float, steps: int = 400,
                    iterations: int = 200) -> float:
    """The x in [lo, hi] that minimises f: the best of `steps` + 1 grid points, refined between its neighbours."""
    xs = [lo + (hi - lo) * i / steps for i in range(steps + 1)]
    values = [f(x) for x in xs]
    i = min(range(len(xs)), key=values.__getitem__)
    a, b = xs[max(i - 1, 0)], xs[min(i + 1, steps)]
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iterations):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = f(d)
    return 0.5 * (a + b)
