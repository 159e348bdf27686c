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


def test_plan_and_compute_carry_the_caveat_in_their_json(cli):
    plan = cli("plan", "--model", "llama-3.2-1b", "--gpu", "h100", "--gpus", "8", "--seq", "2048", "--json")
    assert plan.code == 0 and plan.json()["accuracy_note"] == acc.accuracy_note("default")
    run = cli("compute", "--model", "llama-3.2-1b", "--tokens", "1T", "--gpu", "h100", "--gpus", "8", "--json")
    assert run.code == 0 and acc.accuracy_note("default") in run.json()["assumptions"]
    given = cli("compute", "--model", "llama-3.2-1b", "--tokens", "1T", "--gpu", "h100", "--mfu", "0.4", "--json")
    assert given.code == 0 and acc.accuracy_note("default") not in given.json()["assumptions"]
