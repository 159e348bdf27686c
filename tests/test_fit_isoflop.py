"""The loss-compute envelope and Chinchilla's Approach 2 on synthetic IsoFLOP runs from a known law."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmplan.fit.envelope import fit_envelope, frontier
from llmplan.fit.isoflop import fit_approach2, group_by_budget

# Hoffmann et al. 2022, eq. 10 (unrounded Approach 3 constants, as in /work/shared/reference/README.md).
E, A, B, ALPHA, BETA = 1.69337, 406.401, 410.723, 0.33917084, 0.2849083
G = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))  # Hoffmann et al. 2022, eq. 4
EXP_A = BETA / (ALPHA + BETA)
BUDGETS = np.logspace(18, 21, 4)


def law(n, d):
    return E + A / n ** ALPHA + B / d ** BETA


def isoflop_runs(jitter: float = 0.0, noise: float = 0.0, seed: int = 0):
    """Nine sizes per budget, from 1/8 to 8 x the law's optimum (evenly spaced in log N), like Hoffmann's Figure 3."""
    rng = np.random.default_rng(seed)
    n, c, loss = [], [], []
    for budget in BUDGETS:
        n_opt = G * (budget / 6) ** EXP_A
        for k in np.linspace(-math.log(8), math.log(8), 9):
            flops = budget * (1 + rng.uniform(-jitter, jitter))
            size = n_opt * math.exp(k)
            n.append(size)
            c.append(flops)
            loss.append(law(size, flops / (6 * size)) * math.exp(rng.normal(0, noise)) if noise else
                        law(size, flops / (6 * size)))
    return np.array(n), np.array(c), np.array(loss)


def test_groups_follow_the_budgets_within_tolerance():
    n, c, loss = isoflop_runs(jitter=0.05)
    groups = group_by_budget(list(c), tolerance=0.15)
    assert [len(g) for g in groups] == [9, 9, 9, 9]


def test_approach2_recovers_the_law_exponents():
    # Sampling symmetric in log N around the optimum: the parabola's vertex is off by a constant factor (the profile
    # is not exactly a parabola), the same at every budget, so the exponents come out exact.
    fit = fit_approach2(*isoflop_runs())
    assert fit.n_used == 4
    assert fit.a == pytest.approx(EXP_A, abs=1e-6)
    assert fit.b == pytest.approx(1 - EXP_A, abs=1e-6)
    for g in fit.groups:
        assert g.params_opt == pytest.approx(G * (g.flops / 6) ** EXP_A, rel=0.1)
        assert g.tokens_opt * g.params_opt * 6 == pytest.approx(g.flops)
    n_opt, d_opt = fit.optimal(1e22)
    assert n_opt == pytest.approx(G * (1e22 / 6) ** EXP_A, rel=0.1)


def test_approach2_with_noise_and_jittered_budgets():
    fit = fit_approach2(*isoflop_runs(jitter=0.05, noise=0.002, seed=4))
    assert fit.n_used >= 3
    assert fit.a == pytest.approx(EXP_A, abs=0.05)


def test_approach2_skips_what_it_cannot_use():
    n, c, loss = isoflop_runs()
    # Only the small half of the sizes at every budget: the minimum falls outside the sizes tried.
    small = np.array([i % 9 < 4 for i in range(len(n))])
    fit = fit_approach2(n[small], c[small], loss[small])
    assert fit.n_used == 0 and fit.a is None
    assert all("outside" in g.note for g in fit.groups)
    # Two sizes per budget form no group at all.
    two = np.array([i % 9 in (0, 8) for i in range(len(n))])
    assert fit_approach2(n[two], c[two], loss[two]) is None


def test_envelope_recovers_the_frontier_exponent():
    # Along the law's compute-optimal frontier, L(C) = E + A' C^-gamma exactly, gamma = alpha beta / (alpha + beta).
    flops = np.logspace(17, 22, 12)
    n = G * (flops / 6) ** EXP_A
    env = fit_envelope(flops, law(n, flops / (6 * n)))
    assert env.n_points == 12
    assert env.gamma == pytest.approx(ALPHA * BETA / (ALPHA + BETA), rel=1e-4)
    assert env.E == pytest.approx(E, rel=1e-4)
    assert env.residual_rms < 1e-6


def test_envelope_uses_only_the_lower_envelope():
    n, c, loss = isoflop_runs()
    idx = frontier(list(c), list(loss))
    # One run per budget is on the frontier of an exact IsoFLOP grid: the best size of that budget.
    assert len(idx) == 4
    assert all(loss[i] == min(loss[c == c[i]]) for i in idx)
    env = fit_envelope(c, loss)
    assert env.n_points == 4 and env.gamma > 0
    assert fit_envelope(c[:9], loss[:9]) is None  # one budget: a single frontier run


def test_cli_reports_approach2_and_plots_isoflop_curves(cli, tmp_path):
    n, c, loss = isoflop_runs(jitter=0.02)
    path = tmp_path / "isoflop.csv"
    path.write_text("params,flops,loss\n" + "".join(f"{float(a)!r},{float(b)!r},{float(l)!r}\n" for a, b, l in zip(n, c, loss)))
    plot = tmp_path / "fit.svg"
    run = cli("fit", path, "--bootstrap", "0", "--json", "--plot", plot)
    assert run.code == 0, run.stderr
    out = run.json()
    assert out["approach2"]["n_used"] == 4 and len(out["approach2"]["groups"]) == 4
    assert out["approach2"]["a"] == pytest.approx(EXP_A, abs=0.01)
    assert out["a"] == pytest.approx(EXP_A, abs=1e-3)  # the Approach 3 fit agrees on noiseless runs
    assert out["envelope"]["n_points"] >= 4  # jittered budgets put a few more runs on the envelope
    assert "IsoFLOP" in plot.read_text()
    table = cli("fit", path, "--bootstrap", "0")
    assert "Approach 2" in table.stdout and "N_opt ~ C^" in table.stdout
