"""What the checks against AIConfigurator's measured tables share: the sampled rows, each GPU's default
efficiencies, and the median ratio per band of a size."""

from __future__ import annotations

import csv
import statistics
from functools import lru_cache
from pathlib import Path

from llmplan.hardware import get_gpu
from llmplan.hardware.efficiency import Efficiency, efficiency_for


def read(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


@lru_cache(maxsize=None)
def efficiency(gpu_name: str) -> Efficiency:
    """The default efficiencies (no profile) of a catalog GPU."""
    return efficiency_for(get_gpu(gpu_name))


def band_medians(points, bands) -> list[str]:
    """The median ratio of the (size, ratio) points in each (label, lo, hi) band, lo <= size < hi; '-' if none."""
    cells = []
    for _, lo, hi in bands:
        sel = [r for x, r in points if lo <= x < hi]
        cells.append(f"{statistics.median(sel):.2f}" if sel else "-")
    return cells


def median_error(ratios) -> float:
    """The median of |ratio - 1|."""
    return statistics.median(abs(x - 1.0) for x in ratios)
