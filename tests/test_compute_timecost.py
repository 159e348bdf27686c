"""Time, cost and energy from FLOPs; petaFLOP/s-days; device equivalents; the budget -> size inverse."""

import math

import pytest

from llmplan.errors import LlmplanError
from llmplan.estimate import timecost as tc
from llmplan.estimate.flops import flops_budget
from llmplan.units import PFLOPS_DAY


def test_pflops_day_is_8_64e19():
    # GPT-3 paper, Appendix D: 1 petaflop/s-day = 1e15 FLOP/s for 86,400 s = 8.64e19 FLOPs.
    assert PFLOPS_DAY == 8.64e19
    assert tc.pflops_days(8.64e19) == 1.0
    assert tc.pflops_days(3.14e23) == pytest.approx(3634, abs=1)


def test_device_equivalents_and_the_folklore():
    days = {e.gpu: e.device_days_per_pflops_day for e in tc.device_equivalents()}
    assert days["V100-16GB"] == pytest.approx(8.0)             # 1e15 / 125e12: "8 V100s" is right
    assert days["A100-80GB"] == pytest.approx(3.205, abs=1e-3)  # dense bf16: 3.2 A100s, not 2
    assert 1e15 / 624e12 == pytest.approx(1.6, abs=0.01)        # "2 A100s" only at the 2:4-sparse rate
    assert days["H100-SXM"] == pytest.approx(1.0107, abs=1e-4)
    assert days["H200"] == days["H100-SXM"]
    assert "3.2 A100" in tc.FOLKLORE and "sparse" in tc.FOLKLORE


def test_training_run_time_cost_energy():
    flops = 1e23
    run = tc.training_run(flops, flops, "h100", 64, 0.4, "bf16", price_per_gpu_hour=2.0)
    wall = flops / (64 * 989.4e12 * 0.4)
    assert run.wall_seconds == pytest.approx(wall)
    assert run.gpu_hours == pytest.approx(64 * wall / 3600)
    assert run.cost == pytest.approx(2.0 * run.gpu_hours)
    assert run.energy_kwh == pytest.approx(700 * 64 * wall / 3.6e6)  # board power only
    assert "no host" in run.energy_counted
    with_pue = tc.training_run(flops, flops, "h100", 64, 0.4, pue=1.25)
    assert with_pue.energy_kwh == pytest.approx(1.25 * run.energy_kwh)
    assert with_pue.cost is None


def test_recompute_lengthens_the_run_and_lowers_effective_mfu():
    base = tc.training_run(1e22, 1e22, "a100", 8, 0.5)
    full = tc.training_run(1e22, 4 / 3 * 1e22, "a100", 8, 0.5)
    assert full.wall_seconds == pytest.approx(4 / 3 * base.wall_seconds)
    assert full.effective_mfu == pytest.approx(0.375)


def test_no_power_figure_means_no_energy():
    run = tc.training_run(1e21, 1e21, "tpu-v5e", 4, 0.4)
    assert run.energy_kwh is None and "not estimated" in run.energy_counted


def test_round_trip_budget_time_budget():
    seconds = 7 * 86_400.0
    budget = flops_budget("h200", 16, seconds, 0.37, "bf16")
    run = tc.training_run(budget, budget, "h200", 16, 0.37, "bf16")
    assert run.wall_seconds == pytest.approx(seconds, rel=1e-12)
    assert flops_budget("h200", 16, run.wall_seconds, run.mfu, "bf16") == pytest.approx(budget, rel=1e-12)


def test_budget_sizing_rule20():
    s = tc.budget_sizing("h100", 512, 30 * 86_400, 0.4)
    assert s.flops == pytest.approx(512 * 989.4e12 * 0.4 * 30 * 86_400)
    # 20 tokens per parameter with C = 6 N D: N = sqrt(C / 120)
    assert s.optimal_params == pytest.approx(math.sqrt(s.flops / 120))
    assert s.optimal_tokens == pytest.approx(20 * s.optimal_params)


@pytest.mark.parametrize("kwargs,match", [
    ({"mfu": 1.5}, "MFU"), ({"mfu": 0.0}, "MFU"), ({"n_gpus": 0}, "GPUs"),
    ({"price_per_gpu_hour": -1.0}, "price"), ({"pue": 0.9}, "PUE"), ({"dtype": "bf16", "gpu": "v100"}, "bf16"),
])
def test_bad_inputs(kwargs, match):
    args = {"model_flops": 1e20, "executed_flops": 1e20, "gpu": "h100", "n_gpus": 1, "mfu": 0.4, **kwargs}
    with pytest.raises(LlmplanError, match=match):
        tc.training_run(**args)
