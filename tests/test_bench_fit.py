"""Throughput against size: power law or saturating curve, chosen by AICc, validated by leaving the largest out."""

import math

import pytest

np = pytest.importorskip("numpy")

from llmplan.errors import LlmplanError  # noqa: E402
from llmplan.fit.throughput import fit_throughput  # noqa: E402

SIZES = np.geomspace(1e6, 3e9, 8)


def noisy(values, scale=0.02, seed=0):
    return values * np.exp(np.random.default_rng(seed).normal(0, scale, len(values)))


def test_power_law_data_recovers_its_exponent_and_is_kept_as_a_power_law():
    flops = noisy(2e9 * SIZES**0.3)
    fit = fit_throughput(SIZES, flops)
    assert fit.form == "power", fit.why
    assert fit.coefficients["b"] == pytest.approx(0.3, abs=0.02)
    assert len(fit.residuals_pct) == len(SIZES) and max(abs(r) for r in fit.residuals_pct) < 8
    assert abs(fit.holdout["extrapolated_error_pct"]) < 10


def test_saturating_data_chooses_the_saturating_form_and_predicts_the_largest():
    flops = noisy(5e14 / (1 + (3e7 / SIZES) ** 0.8), scale=0.01)
    fit = fit_throughput(SIZES, flops)
    assert fit.form == "saturating", fit.why
    assert "AICc" in fit.why and fit.aicc["saturating"] < fit.aicc["power"]
    assert fit.coefficients["f_max"] == pytest.approx(5e14, rel=0.1)
    assert abs(fit.holdout["error_pct"]) < 5
    assert fit.predict(1e12) < 5.6e14  # levels off


def test_few_points_use_the_power_law_and_say_why():
    fit = fit_throughput(SIZES[:4], noisy(5e14 / (1 + (3e7 / SIZES[:4]) ** 0.8)))
    assert fit.form == "power" and "too few" in fit.why
    assert fit.holdout["params"] == pytest.approx(SIZES[3])


def test_holdout_reports_the_error_of_predicting_the_largest_size():
    flops = 1e10 * SIZES**0.2
    flops[-1] *= 0.5  # the largest size falls off: the refit without it over-predicts by 100%
    fit = fit_throughput(SIZES, flops)
    h = fit.holdout
    assert h["params"] == pytest.approx(SIZES[-1])
    assert h["measured"] == pytest.approx(flops[-1])
    assert h["extrapolated_error_pct"] == pytest.approx(100.0, rel=1e-6)
    # What a profile would say: the fit held at the second-largest size.
    assert h["predicted"] == pytest.approx(1e10 * SIZES[-2] ** 0.2, rel=1e-9)


def test_as_dict_round_trips_through_the_profile_evaluator():
    from llmplan.calibration import evaluate_fit

    fit = fit_throughput(SIZES, noisy(2e9 * SIZES**0.3))
    d = fit.as_dict()
    assert d["quantity"] == "achieved_flops"
    assert evaluate_fit(d, 1e8) == pytest.approx(fit.predict(1e8))
    assert math.isfinite(d["rms_log_residual"])


@pytest.mark.parametrize("params, flops, why", [
    ([1e6, 2e6], [1e9, 2e9], "at least 3 distinct"),
    ([1e6, 1e6, 1e6, 2e6], [1, 2, 3, 4], "at least 3 distinct"),
    ([1e6, 2e6, 3e6], [1e9, -1, 2e9], "positive finite"),
    ([1e6, 2e6, float("nan")], [1e9, 2e9, 3e9], "positive finite"),
    ([1e6, 2e6, 3e6], [1e9, 2e9], "same length"),
])
def test_bad_input_is_refused(params, flops, why):
    with pytest.raises(LlmplanError, match=why):
        fit_throughput(params, flops)
