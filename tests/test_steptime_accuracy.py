"""The caveat plan and compute print states today's error of the step-time model against the published runs."""

from __future__ import annotations

import statistics

from benchmarks.step_time_validation import evaluate
from llmplan.estimate import steptime_accuracy as acc


def test_caveat_numbers_are_todays():
    errors = [r["error"] for r in evaluate()]
    assert acc.RUNS == len(errors)
    assert acc.FASTER == sum(e > 0 for e in errors)
    assert abs(acc.MEDIAN_ERROR - statistics.median(errors)) < 0.005


def test_caveat_only_for_default_efficiencies():
    assert f"{acc.FASTER} of {acc.RUNS}" in acc.accuracy_note("default: H100 defaults")
    assert acc.accuracy_note("measured: prof.json (gemm_curve); the rest default: ...") is None
