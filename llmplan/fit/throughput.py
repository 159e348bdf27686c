"""How achieved FLOP/s grows with model size on one device: a power law or a saturating curve, fitted with scipy.

Small models cannot fill a GPU (kernel launches, memory-bound element-wise work and small matmuls dominate), so
achieved FLOP/s rises with size; on a large enough model it levels off near the device's matmul ceiling.
Two forms are fitted by least squares on log FLOP/s (relative errors weigh alike at every size):

    power       F(N) = a * N^b                       (2 parameters; scipy.stats.linregress on log-log)
    saturating  F(N) = f_max / (1 + (n_half / N)^c)  (3 parameters; scipy.optimize.curve_fit, a Hill curve)

The saturating form is chosen only when it describes the data better after paying for its extra parameter:
lower corrected Akaike information criterion (AICc, Hurvich and Tsai 1989), which needs at least 6 points for the
comparison to be defined; otherwise the power law is used. Validation: refit without the largest size, predict it,
report the error in percent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from llmplan.calibration import evaluate_fit
from llmplan.errors import LlmplanError

MIN_POINTS = 3


@dataclass(frozen=True)
class ThroughputFit:
    form: str                       # "power" | "saturating"
    coefficients: dict = field(hash=False)
    params_range: tuple[float, float] = (0.0, 0.0)
    n_points: int = 0
    residuals_pct: tuple[float, ...] = ()   # (measured - fitted) / fitted, per point, in the order given
    rms_log_residual: float = 0.0           # root mean square of ln(measured / fitted)
    aicc: dict = field(default_factory=dict, hash=False)  # form -> AICc (only when both could be compared)
    why: str = ""
    holdout: dict | None = field(default=None, hash=False)  # leave-largest-out: params, measured, predicted, error

    def as_dict(self) -> dict:
        """The JSON form stored in a calibration profile (llmplan.calibration.evaluate_fit reads it)."""
        return {"quantity": "achieved_flops", "form": self.form, "coefficients": dict(self.coefficients),
                "params_range": list(self.params_range), "n_points": self.n_points,
                "residuals_pct": list(self.residuals_pct), "rms_log_residual": self.rms_log_residual,
                "aicc": dict(self.aicc), "why": self.why, "holdout": self.holdout}

    def predict(self, params: float) -> float:
        return evaluate_fit(self.as_dict(), params)


def _aicc(rss: float, n: int, k: int) -> float:
    """AICc with k fitted values counting the noise variance (Hurvich and Tsai 1989); needs n > k + 1."""
    return n * math.log(max(rss, 1e-300) / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def _power(x, y) -> dict:
    from scipy.stats import linregress

    r = linregress(x, y)
    return {"a": math.exp(r.intercept), "b": float(r.slope)}


def _saturating(x, y) -> dict | None:
    import numpy as np
    from scipy.optimize import curve_fit

    def model(lx, log_fmax, log_nhalf, c):
        return log_fmax - np.log1p(np.exp(c * (log_nhalf - lx)))

    p0 = (float(y.max()) + 0.3, float(np.median(x)), 0.7)
    bounds = ([float(y.max()) - 0.01, float(x.min()) - 20.0, 0.05], [float(y.max()) + 10.0, float(x.max()) + 20.0, 4.0])
    try:
        (log_fmax, log_nhalf, c), _ = curve_fit(model, x, y, p0=p0, bounds=bounds, maxfev=20_000)
    except (RuntimeError, ValueError):  # no convergence: the power law stands alone
        return None
    return {"f_max": math.exp(log_fmax), "n_half": math.exp(log_nhalf), "c": float(c)}


def _fit_form(form: str, x, y) -> dict | None:
    return _power(x, y) if form == "power" else _saturating(x, y)


def _rss(form: str, coef: dict, params, flops) -> float:
    fit = {"form": form, "coefficients": coef, "params_range": [min(params), max(params)]}
    return sum(math.log(f / evaluate_fit(fit, n)) ** 2 for n, f in zip(params, flops))


def fit_throughput(params, flops) -> ThroughputFit:
    """Fit achieved FLOP/s `flops` against parameter counts `params` (at least 3 distinct sizes)."""
    import numpy as np

    n = np.asarray(params, dtype=float)
    f = np.asarray(flops, dtype=float)
    if n.shape != f.shape or n.ndim != 1:
        raise LlmplanError("throughput fit: params and flops must be two lists of the same length")
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(f)) and np.all(n > 0) and np.all(f > 0)):
        raise LlmplanError("throughput fit: every size and FLOP/s must be a positive finite number")
    if len(np.unique(n)) < MIN_POINTS:
        raise LlmplanError(f"throughput fit: need at least {MIN_POINTS} distinct model sizes, got {len(np.unique(n))}")
    x, y = np.log(n), np.log(f)
    pts = len(n)
    coefs = {"power": _power(x, y)}
    aicc: dict[str, float] = {}
    form, why = "power", ""
    if pts >= 6:
        sat = _saturating(x, y)
        if sat is not None:
            coefs["saturating"] = sat
            aicc = {k: _aicc(_rss(k, c, n, f), pts, len(c) + 1) for k, c in coefs.items()}
            if aicc["saturating"] < aicc["power"]:
                form = "saturating"
                why = (f"saturating: lower AICc ({aicc['saturating']:.1f} vs {aicc['power']:.1f} for the power "
                       "law): throughput levels off with size")
            else:
                why = (f"power law: AICc {aicc['power']:.1f} vs {aicc['saturating']:.1f} for the saturating form, "
                       "whose extra parameter does not pay")
        else:
            why = "power law: the saturating form did not converge"
    else:
        why = f"power law: {pts} points are too few to compare against the 3-parameter saturating form (need 6)"

    coef = coefs[form]
    fit_dict = {"form": form, "coefficients": coef, "params_range": [float(n.min()), float(n.max())]}
    fitted = [evaluate_fit(fit_dict, v) for v in n]
    residuals = tuple(float((fv - pv) / pv * 100.0) for fv, pv in zip(f, fitted))
    rms = math.sqrt(_rss(form, coef, n, f) / pts)
    return ThroughputFit(form=form, coefficients=coef, params_range=(float(n.min()), float(n.max())), n_points=pts,
                         residuals_pct=residuals, rms_log_residual=rms, aicc=aicc, why=why,
                         holdout=_leave_largest_out(form, n, f))


def _leave_largest_out(form: str, n, f) -> dict | None:
    """Refit without the largest size and predict it (the form falls back to the power law when fewer than 4
    points remain for the 3-parameter curve)."""
    import numpy as np

    keep = n < n.max()
    if len(np.unique(n[keep])) < 2:
        return None
    used = form if form == "power" or keep.sum() >= 4 else "power"
    coef = _fit_form(used, np.log(n[keep]), np.log(f[keep]))
    if coef is None:
        used, coef = "power", _power(np.log(n[keep]), np.log(f[keep]))
    largest = float(n.max())
    measured = float(np.median(f[n == largest]))
    reduced = {"form": used, "coefficients": coef, "params_range": [float(n[keep].min()), float(n[keep].max())]}
    predicted = evaluate_fit(reduced, largest)  # what a profile fitted without it would say
    if used == "power":  # the power law's own extrapolation, which the profile does not use (it holds the value)
        extrapolated = coef["a"] * largest ** coef["b"]
    else:
        extrapolated = predicted
    return {"form": used, "params": largest, "measured": measured, "predicted": predicted,
            "error_pct": (predicted - measured) / measured * 100.0, "extrapolated": extrapolated,
            "extrapolated_error_pct": (extrapolated - measured) / measured * 100.0}
