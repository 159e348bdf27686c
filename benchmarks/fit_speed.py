"""Speed of `llmplan fit` against a straightforward reimplementation of the published procedure.

Data: the 245 Chinchilla runs extracted from Hoffmann et al. 2022, Figure 4 (Besiroglu et al. 2024), less the 5
highest-loss runs, as the replication fits them (240 runs).

- fast: llmplan.fit.fit_chinchilla (objective over the 4,500-point grid at once, L-BFGS-B with the analytic gradient
  from the best 32 grid points, a tight polish). Warm-up once, then REPEAT timed runs: median and min-max.
- full grid, analytic gradient (--full-grid): L-BFGS-B with the analytic gradient from all 4,500 grid points.
- reference: L-BFGS-B with scipy's numerical (finite-difference) gradient and default tolerances from every grid
  point, as a straightforward reimplementation does. It takes minutes, so by default it runs on an evenly spaced
  subsample of the grid (--reference-starts) and the full-grid time is extrapolated (x 4500 / starts); say --reference
  -starts 4500 for the whole grid. The optimum printed is the best of the starts actually run.

Both run with OpenBLAS single-threaded (as `llmplan fit` does); --default-blas-threads runs the reference with
OpenBLAS's default threads instead, as a plain script would.

Usage: python benchmarks/fit_speed.py [--repeat 5] [--reference-starts 150] [--full-grid] [--default-blas-threads]
       [--csv PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT / "tests" / "data" / "chinchilla_figure4_points.csv"
sys.path.insert(0, str(ROOT))


def load(path: Path):
    import numpy as np

    with open(path, newline="") as fh:
        rows = [(float(r["params"]), float(r["flops"]), float(r["loss"])) for r in csv.DictReader(fh)]
    rows.sort(key=lambda r: r[2])
    n, c, loss = (np.array(v) for v in zip(*rows[:-5]))  # drop the 5 highest-loss runs (Besiroglu et al. 2024)
    return n, c / (6 * n), loss  # D = C / (6 N)


def describe(label: str, theta, fun: float) -> str:
    import math

    a, b, e, alpha, beta = theta
    return (f"{label:<38} E={math.exp(e):.4f} A={math.exp(a):8.2f} B={math.exp(b):8.2f} alpha={alpha:.4f} "
            f"beta={beta:.4f} objective={fun:.10g}")


def multistart(grid, logs, delta: float, analytic: bool, one_blas_thread: bool = True):
    import numpy as np
    from scipy.optimize import minimize

    from llmplan.fit.chinchilla import objective_and_gradient, single_thread_blas

    def value(theta, *args):
        return objective_and_gradient(theta, *args)[0]

    best = None
    t0 = time.perf_counter()
    with single_thread_blas() if one_blas_thread else contextlib.nullcontext():  # as the fast fit runs
        for x0 in grid:
            if analytic:
                res = minimize(objective_and_gradient, x0, args=(*logs, delta), jac=True, method="L-BFGS-B")
            else:
                res = minimize(value, x0, args=(*logs, delta), method="L-BFGS-B")  # finite-difference gradient
            if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
                best = res
    return time.perf_counter() - t0, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reference-starts", type=int, default=150)
    parser.add_argument("--default-blas-threads", action="store_true", help="run the reference with OpenBLAS's "
                        "default threads, as a plain script would (slower on a busy machine)")
    parser.add_argument("--full-grid", action="store_true", help="also run all 4,500 starts with the analytic "
                        "gradient")
    args = parser.parse_args()

    import numpy as np
    import scipy

    from llmplan.fit.chinchilla import DEFAULT_DELTA, fit_chinchilla, hoffmann_grid

    n, d, loss = load(args.csv)
    logs = (np.log(n), np.log(d), np.log(loss))
    grid = hoffmann_grid()
    print(f"# fit_speed  {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC  python {platform.python_version()}  "
          f"numpy {np.__version__}  scipy {scipy.__version__}  cpus {os.cpu_count()}  {platform.machine()}")
    print(f"# argv: {' '.join(sys.argv)}")
    print(f"# data: {args.csv} ({len(n)} runs after dropping the 5 highest-loss)")

    fit_chinchilla(n, d, loss)  # warm-up: imports, caches
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        fast = fit_chinchilla(n, d, loss)
        times.append(time.perf_counter() - t0)
    print(f"fast fit: median {statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}, "
          f"{args.repeat} runs)")
    print(describe("  optimum (fast)", fast.theta, fast.objective))

    if args.full_grid:
        seconds, best = multistart(grid, logs, DEFAULT_DELTA, analytic=True)
        print(f"full grid, analytic gradient: {seconds:.1f} s for {len(grid)} starts")
        print(describe("  optimum (full grid, analytic)", best.x, best.fun))

    k = max(1, min(args.reference_starts, len(grid)))
    sample = grid[np.linspace(0, len(grid) - 1, k).round().astype(int)]
    seconds, best = multistart(sample, logs, DEFAULT_DELTA, analytic=False,
                               one_blas_thread=not args.default_blas_threads)
    full = seconds * len(grid) / k
    kind = "measured" if k == len(grid) else f"extrapolated from {k} evenly spaced starts"
    kind += ", OpenBLAS default threads" if args.default_blas_threads else ", OpenBLAS one thread"
    print(f"reference, numerical gradient: {seconds:.1f} s for {k} starts; full grid {full:.0f} s ({kind})")
    print(describe("  optimum (reference)", best.x, best.fun))
    print(f"speed-up of the fast fit over the full reference grid: {full / statistics.median(times):.0f}x")
    rel = {k: abs(getattr(fast, k) / v - 1) for k, v in
           zip(("A", "B", "E", "alpha", "beta"), (np.exp(best.x[0]), np.exp(best.x[1]), np.exp(best.x[2]),
                                                   best.x[3], best.x[4]))}
    print("relative difference fast vs reference: " + ", ".join(f"{k} {v:.2e}" for k, v in rel.items()))


if __name__ == "__main__":
    main()
