"""Fitting L(N, D) = E + A/N^alpha + B/D^beta to training runs (Hoffmann et al. 2022, Approach 3).

The procedure is the one of Hoffmann et al. 2022 (Appendix D.2) as replicated by Besiroglu et al. 2024 ("Chinchilla
Scaling: A replication attempt"): with a = log A, b = log B, e = log E the predicted log loss is
LSE(a - alpha log N, b - beta log D, e), and the objective is the SUM over runs of the Huber loss (delta 1e-3) of
predicted minus observed log loss, minimised by L-BFGS from a grid of starting points.

What makes it fast (the reference runs L-BFGS with numerical gradients from all 4,500 grid points): the objective and
its analytic gradient are vectorised over runs; the objective is evaluated over the whole grid at once; L-BFGS-B then
starts only from the best few grid points, and the best optimum is polished with tight tolerances.
numpy and scipy are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Callable

from llmplan.errors import LlmplanError

DEFAULT_DELTA = 1e-3  # Huber threshold on log-loss residuals (Hoffmann et al. 2022, Appendix D.2)
CONSTANTS = ("E", "A", "B", "alpha", "beta")
MIN_RUNS = 6  # five free constants: at least one run more than that


_BLAS_THREAD_FUNCTIONS = ("openblas", "scipy_openblas", "openblas64_", "scipy_openblas64_")


@contextlib.contextmanager
def single_thread_blas():
    """Run OpenBLAS single-threaded for the duration (restored after).

    scipy's L-BFGS-B calls BLAS/LAPACK on 5-element problems; when the cores are busy, OpenBLAS threads waiting on
    each other made a fit ten times slower (measured: 8 s against 0.7 s on a loaded 2-core machine). This is what
    threadpoolctl does, for OpenBLAS on Linux only; elsewhere it does nothing.
    """
    import ctypes

    import scipy.optimize  # noqa: F401  (loads scipy's OpenBLAS first, so that it is found below)

    restore = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.rsplit("/", 1)[-1].lower()}
    except OSError:
        paths = set()
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _BLAS_THREAD_FUNCTIONS:
            suffix = "64_" if prefix.endswith("64_") else ""
            base = prefix[:-3] if suffix else prefix
            getter = getattr(lib, f"{base}_get_num_threads{suffix}", None)
            setter = getattr(lib, f"{base}_set_num_threads{suffix}", None)
            if getter and setter:
                restore.append((setter, getter()))
                setter(1)
                break
    try:
        yield
    finally:
        for setter, threads in restore:
            setter(threads)


def hoffmann_grid():
    """The 4,500 starting points (a, b, e, alpha, beta) of Hoffmann et al. 2022, Appendix D.2:
    alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25}."""
    import numpy as np

    steps = (np.arange(0, 30, 5), np.arange(0, 30, 5), np.arange(-1, 1.5, 0.5),
             np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5))
    return np.array(list(itertools.product(*steps)), dtype=float)


def huber(r, delta: float):
    """Huber loss, elementwise: r^2/2 inside |r| <= delta, delta (|r| - delta/2) outside (Huber 1964)."""
    import numpy as np

    ar = np.abs(r)
    return np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))


def objective_and_gradient(theta, log_n, log_d, log_loss, delta: float = DEFAULT_DELTA):
    """Sum of Huber(LSE(a - alpha log N, b - beta log D, e) - log L) over runs, and its analytic gradient."""
    import numpy as np

    a, b, e, alpha, beta = theta
    t1 = a - alpha * log_n
    t2 = b - beta * log_d
    m = np.maximum(np.maximum(t1, t2), e)  # shift for a stable log-sum-exp
    w1, w2, w3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(e - m)
    s = w1 + w2 + w3
    r = m + np.log(s) - log_loss
    f = float(huber(r, delta).sum())
    # d Huber / dr = clip(r, -delta, delta); d LSE / d t_k = softmax weight w_k / s.
    g = np.clip(r, -delta, delta) / s
    g1, g2, g3 = g * w1, g * w2, g * w3
    grad = np.array([g1.sum(), g2.sum(), g3.sum(), -(g1 * log_n).sum(), -(g2 * log_d).sum()])
    return f, grad


def objective_over_grid(grid, log_n, log_d, log_loss, delta: float = DEFAULT_DELTA, chunk: int = 1024):
    """The objective at every row of `grid` (k x 5) at once, in chunks to bound memory."""
    import numpy as np

    out = np.empty(len(grid))
    chunk = max(1, min(chunk, 2**21 // max(1, len(log_n))))  # at most ~2 M values (16 MiB) per temporary array
    for i in range(0, len(grid), chunk):
        a, b, e, alpha, beta = (grid[i:i + chunk, j:j + 1] for j in range(5))
        lse = np.logaddexp(np.logaddexp(a - alpha * log_n, b - beta * log_d), e)
        out[i:i + chunk] = huber(lse - log_loss, delta).sum(axis=1)
    return out


@dataclass(frozen=True)
class ChinchillaFit:
    """A fitted L(N, D) = E + A/N^alpha + B/D^beta with its compute-optimal exponents and fit quality."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    n_runs: int
    delta: float
    objective: float  # summed Huber loss at the optimum
    residual_rms: float  # RMS of log L_pred - log L over the runs
    max_abs_residual: float  # largest |log L_pred - log L|
    starts: int  # L-BFGS starts run
    grid_points: int  # grid points whose objective was evaluated
    converged: bool
    intervals: dict[str, tuple[float, float]] | None = None  # bootstrap percentile intervals, where computed
    interval_level: float | None = None
    bootstrap_samples: int = 0
    assumptions: tuple[str, ...] = field(default_factory=tuple)
    at_bounds: tuple[str, ...] = ()  # constants on the edge of the search box: undetermined by the runs

    @property
    def law(self):
        """The fitted law as the planner uses it: loss, closed-form frontier, a, b and G (laws.ParametricLaw)."""
        from llmplan.estimate.laws import ParametricLaw

        return ParametricLaw("fit", "llmplan fit", **self.constants())

    @property
    def a(self) -> float:
        return self.law.a

    @property
    def b(self) -> float:
        return self.law.b

    @property
    def G(self) -> float:
        return self.law.G

    @property
    def theta(self) -> tuple[float, float, float, float, float]:
        # A fitted E (or A, B) can underflow exp() to 0.0; its log is then below -745, and -745 warm-starts as well.
        def log(x: float) -> float:
            return math.log(x) if x > 0 else -745.0

        return (log(self.A), log(self.B), log(self.E), self.alpha, self.beta)

    def loss(self, params: float, tokens: float) -> float:
        return self.law.loss(params, tokens)  # Hoffmann et al. 2022, eq. 2

    def optimal(self, flops: float) -> tuple[float, float]:
        return self.law.optimal(flops)  # Hoffmann et al. 2022, eq. 4

    def constants(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in CONSTANTS}


def _theta_to_constants(theta) -> dict[str, float]:
    a, b, e, alpha, beta = (float(v) for v in theta)
    return {"E": math.exp(e), "A": math.exp(a), "B": math.exp(b), "alpha": alpha, "beta": beta}


def _logs(params, tokens, losses):
    import numpy as np

    n, d, loss = (np.asarray(v, dtype=float).ravel() for v in (params, tokens, losses))
    if not (len(n) == len(d) == len(loss)):
        raise LlmplanError(f"params, tokens and losses must have the same length, got {len(n)}, {len(d)}, {len(loss)}")
    for name, v in (("params", n), ("tokens", d), ("loss", loss)):
        if not np.all(np.isfinite(v)) or np.any(v <= 0):
            raise LlmplanError(f"every {name} value must be a finite number greater than zero")
    if len(n) < MIN_RUNS:
        raise LlmplanError(f"too few runs to fit E + A/N^alpha + B/D^beta: {len(n)}; give at least {MIN_RUNS} "
                           "(the law has 5 constants), ideally dozens across sizes and token counts")
    if len(np.unique(n)) < 2 or len(np.unique(d)) < 2:
        raise LlmplanError("the runs must vary in both model size and token count to separate the N and D terms")
    return np.log(n), np.log(d), np.log(loss)


# The box L-BFGS-B searches, (a, b, e, alpha, beta) with a = log A, b = log B, e = log E: every constant stays a
# finite float (exp(200) ~ 7e86), far wider than any published fit (Hoffmann: a 6.0, b 6.0, e 0.53, alpha 0.34,
# beta 0.28). An optimum on its edge means the runs do not determine that constant; the fit says so.
BOUNDS = ((-50.0, 200.0), (-50.0, 200.0), (-50.0, math.log(20.0)), (0.0, 20.0), (0.0, 20.0))  # laws.LAW_BOUNDS
THETA_NAMES = ("A", "B", "E", "alpha", "beta")
MIN_EXPONENT = 1e-3  # a fitted exponent below this is the box's lower edge (0), not a law


def _lbfgs(x0, logs, delta: float, tight: bool = False):
    import numpy as np
    from scipy.optimize import minimize

    # The summed Huber objective is ~1e-3 near the optimum, with gradients far below scipy's default gtol (1e-5):
    # default tolerances stop L-BFGS early (Besiroglu et al. 2024, section 3), so both are set far tighter.
    options = {"ftol": 1e-15, "gtol": 1e-13, "maxiter": 5000} if tight else {"ftol": 1e-12, "gtol": 1e-10,
                                                                             "maxiter": 1000}
    x0 = np.clip(np.asarray(x0, dtype=float), [lo for lo, _ in BOUNDS], [hi for _, hi in BOUNDS])
    return minimize(objective_and_gradient, x0, args=(*logs, delta), jac=True, method="L-BFGS-B", bounds=BOUNDS,
                    options=options)


def at_bounds(theta) -> tuple[str, ...]:
    """The constants whose fitted value sits on the edge of the search box (undetermined by the runs)."""
    return tuple(name for name, x, (lo, hi) in zip(THETA_NAMES, theta, BOUNDS)
                 if min(abs(x - lo), abs(x - hi)) < 1e-6 * max(1.0, abs(x)))


def _result(theta, logs, delta: float, fun: float, starts: int, grid_points: int, converged: bool) -> ChinchillaFit:
    import numpy as np

    log_n, log_d, log_loss = logs
    a, b, e, alpha, beta = theta
    pred = np.logaddexp(np.logaddexp(a - alpha * log_n, b - beta * log_d), e)
    res = pred - log_loss
    assumptions = [f"Huber loss (delta {delta:g}) on log loss, summed over runs; L-BFGS from the best {starts} "
                   f"of {grid_points} grid starts (Hoffmann et al. 2022, App. D.2)"]
    if alpha <= 0 or beta <= 0:
        assumptions.append("an exponent came out non-positive: the runs do not pin down the law")
    edge = at_bounds(theta)
    if edge:
        assumptions.append(f"{', '.join(edge)} ended on the edge of the search range: the runs do not determine "
                           f"{'it' if len(edge) == 1 else 'them'}, and the law is not a result to plan with; give "
                           "runs that span more model sizes and token counts")
    return ChinchillaFit(**_theta_to_constants(theta), n_runs=len(log_n), delta=delta, objective=float(fun),
                         residual_rms=float(np.sqrt(np.mean(res ** 2))), max_abs_residual=float(np.abs(res).max()),
                         starts=starts, grid_points=grid_points, converged=converged,
                         assumptions=tuple(assumptions), at_bounds=edge)


def fit_chinchilla(params, tokens, losses, delta: float = DEFAULT_DELTA, starts: int = 32,
                   grid=None) -> ChinchillaFit:
    """Fit E + A/N^alpha + B/D^beta to runs (numpy arrays or sequences of N, D and final loss).

    The objective is evaluated over Hoffmann's 4,500-point grid at once, L-BFGS-B (analytic gradient) runs from the
    `starts` best points, and the best optimum is polished with tight tolerances.
    """
    import numpy as np

    if not (math.isfinite(delta) and delta > 0):
        raise LlmplanError(f"the Huber delta must be a finite number greater than zero, got {delta!r}")
    logs = _logs(params, tokens, losses)
    grid = hoffmann_grid() if grid is None else np.asarray(grid, dtype=float)
    values = objective_over_grid(grid, *logs, delta=delta)
    order = np.argsort(np.where(np.isfinite(values), values, np.inf))[:max(1, starts)]
    best = None
    with single_thread_blas():
        for x0 in grid[order]:
            res = _lbfgs(x0, logs, delta)
            if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
                best = res
        if best is not None:
            polished = _lbfgs(best.x, logs, delta, tight=True)
            if polished.fun <= best.fun:
                best = polished
    if best is None or not np.all(np.isfinite(best.x)):
        raise LlmplanError("the fit failed from every starting point: check that the losses are final losses in "
                           "nats per token and that the runs span several sizes and token counts")
    alpha, beta = best.x[3], best.x[4]
    if not (alpha > MIN_EXPONENT and beta > MIN_EXPONENT):  # on the box's edge at 0: loss flat in N or D
        raise LlmplanError(f"the runs do not determine E + A/N^alpha + B/D^beta: the best fit has alpha = "
                           f"{alpha:.3g}, beta = {beta:.3g} (both must be positive); give runs that span more model "
                           "sizes and token counts")
    return _result(best.x, logs, delta, best.fun, len(order), len(grid), True)


def bootstrap_chinchilla(params, tokens, losses, fit: ChinchillaFit, samples: int = 100, level: float = 0.95,
                         seed: int = 0, progress: Callable[[int, int], None] | None = None) -> ChinchillaFit:
    """Percentile intervals: resample the runs with replacement, refit warm-started from the full fit.

    Returns `fit` with `intervals` for E, A, B, alpha, beta, a and b (Efron and Tibshirani 1993, percentile method;
    Besiroglu et al. 2024 bootstrap the same way, with many more samples).
    """
    import numpy as np

    if samples < 2:
        raise LlmplanError(f"--bootstrap needs at least 2 resamples (or 0 for none), got {samples}")
    if not 0 < level < 1:
        raise LlmplanError(f"the interval level must lie between 0 and 1, got {level}")
    log_n, log_d, log_loss = _logs(params, tokens, losses)
    rng = np.random.default_rng(seed)
    x0 = np.array(fit.theta)
    draws = []
    with single_thread_blas():
        for i in range(samples):
            idx = rng.integers(0, len(log_n), len(log_n))
            res = _lbfgs(x0, (log_n[idx], log_d[idx], log_loss[idx]), fit.delta)
            # Keep refits that stay finite with positive exponents (others have wandered off the valley).
            if np.all(np.isfinite(res.x)) and np.all(np.abs(res.x[:3]) < 700) and min(res.x[3], res.x[4]) > 0:
                c = _theta_to_constants(res.x)
                c["a"] = c["beta"] / (c["alpha"] + c["beta"])
                c["b"] = c["alpha"] / (c["alpha"] + c["beta"])
                draws.append(c)
            if progress:
                progress(i + 1, samples)
    if len(draws) < 2:
        raise LlmplanError("the bootstrap refits failed; the runs do not pin down the law")
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    intervals = {k: (float(np.percentile([d[k] for d in draws], lo)), float(np.percentile([d[k] for d in draws], hi)))
                 for k in (*CONSTANTS, "a", "b")}
    return replace(fit, intervals=intervals, interval_level=level, bootstrap_samples=len(draws))


def law_document(fit: ChinchillaFit, name: str, source: str) -> dict:
    """The law.json object (`llmplan chinchilla --law` reads it through llmplan.estimate.laws)."""
    doc = {"schema_version": 1, "kind": "llmplan.law", "form": "E + A/N^alpha + B/D^beta", "name": name,
           "source": source, **fit.constants()}
    if fit.intervals:
        doc["intervals"] = {k: [lo, hi] for k, (lo, hi) in fit.intervals.items() if k in CONSTANTS}
    doc["n_runs"] = fit.n_runs
    return doc


def write_law(path, fit: ChinchillaFit, name: str, source: str) -> None:
    """Write law.json atomically (llmplan.files); the folder must exist."""
    from llmplan.estimate.laws import LAW_BOUNDS
    from llmplan.files import write_json

    outside = [f"{k} = {v:.4g}" for k, v in fit.constants().items() if not LAW_BOUNDS[k][0] <= v <= LAW_BOUNDS[k][1]]
    if outside:
        raise LlmplanError(f"the fitted law is not saved: {', '.join(outside)} lies outside the range a law file "
                           "may hold (the runs do not determine the law)")
    write_json(path, law_document(fit, name, source), create_folder=False)
