"""Compute-optimal questions answered with one scaling law: budget -> size, size -> data, a run's diagnosis, and
a frontier over a range of budgets. Pure functions returning frozen results in base units (parameters, tokens,
FLOPs, nats per token)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmplan.errors import LlmplanError
from llmplan.estimate.laws import FLOPS_PER_PARAM_TOKEN, Law, _check_count, _check_flops

# A run whose tokens per parameter is within this factor of the compute-optimal ratio at its own budget counts as
# near compute-optimal. A factor 2 in D/N at fixed C is a factor sqrt(2) in N, which costs little loss
# (Hoffmann et al. 2022, Fig. 3: the iso-FLOP valleys are flat within about that range).
NEAR_OPTIMAL_FACTOR = 2.0

UNDERTRAINED = "undertrained"
NEAR_OPTIMAL = "near compute-optimal"
PAST_OPTIMUM = "trained past the optimum"


@dataclass(frozen=True)
class Sizing:
    """One law's answer at one point: a model of `params` trained on `tokens` for `flops` training FLOPs."""

    law: str
    params: float
    tokens: float
    flops: float
    tokens_per_param: float
    loss: float | None


@dataclass(frozen=True)
class Diagnosis:
    """A given run (params, tokens) judged against one law's compute-optimal point for the same FLOPs."""

    law: str
    params: float
    tokens: float
    flops: float
    tokens_per_param: float
    loss: float | None
    optimal_tokens_per_param: float  # the law's D/N at the optimum for this run's FLOPs
    ratio_to_optimal: float  # tokens_per_param / optimal_tokens_per_param
    verdict: str
    compute_optimal: Sizing  # the law's alternative for the same FLOPs
    loss_gap: float | None  # loss - compute_optimal.loss (>= 0 for laws with a loss)


def _sizing(law: Law, params: float, tokens: float) -> Sizing:
    flops = FLOPS_PER_PARAM_TOKEN * params * tokens  # C = 6 N D (Kaplan et al. 2020, section 2.1)
    return Sizing(law.name, params, tokens, flops, tokens / params, law.loss(params, tokens))


def size_for_budget(law: Law, flops: float) -> Sizing:
    """Budget -> size: the compute-optimal parameters and tokens for `flops` training FLOPs."""
    params, tokens = law.optimal(_check_flops(flops))
    return _sizing(law, params, tokens)


def data_for_size(law: Law, params: float) -> Sizing:
    """Size -> data: the compute-optimal tokens for a model of `params`, and the FLOPs that costs."""
    params = _check_count(params, "--params")
    return _sizing(law, params, law.optimal_tokens(params))


def verdict_for(ratio_to_optimal: float) -> str:
    if ratio_to_optimal < 1.0 / NEAR_OPTIMAL_FACTOR:
        return UNDERTRAINED
    if ratio_to_optimal > NEAR_OPTIMAL_FACTOR:
        return PAST_OPTIMUM
    return NEAR_OPTIMAL


def diagnose(law: Law, params: float, tokens: float) -> Diagnosis:
    """Diagnosis: tokens per parameter against the optimum at the run's own FLOPs, a verdict, the loss, and the
    compute-optimal alternative for the same FLOPs."""
    run = _sizing(law, _check_count(params, "--params"), _check_count(tokens, "--tokens"))
    best = size_for_budget(law, run.flops)
    ratio = run.tokens_per_param / best.tokens_per_param
    gap = None if run.loss is None or best.loss is None else run.loss - best.loss
    return Diagnosis(law.name, run.params, run.tokens, run.flops, run.tokens_per_param, run.loss,
                     best.tokens_per_param, ratio, verdict_for(ratio), best, gap)


def frontier(law: Law, budgets: list[float]) -> list[Sizing]:
    """The compute-optimal point for each budget."""
    return [size_for_budget(law, c) for c in budgets]


def decade_budgets(low: float, high: float, per_decade: int = 1) -> list[float]:
    """Budgets from low to high: both ends plus the powers of ten (or finer steps) between them."""
    low, high = _check_flops(low), _check_flops(high)
    if high < low:
        raise LlmplanError(f"a budget range must go from low to high, got {low:g}..{high:g}")
    if per_decade < 1 or per_decade > 20:
        raise LlmplanError(f"points per decade must be between 1 and 20, got {per_decade}")
    points = {low, high}
    k = math.ceil(math.log10(low) * per_decade - 1e-9)
    while True:
        c = float(10 ** k) if per_decade == 1 else 10 ** (k / per_decade)
        if c > high * (1 + 1e-12):
            break
        if c >= low * (1 - 1e-12):
            points.add(c)
        k += 1
    ordered = sorted(points)
    # drop near-duplicates produced by rounding (e.g. low = 1e19 and the computed 10**19)
    out: list[float] = []
    for c in ordered:
        if not out or c > out[-1] * (1 + 1e-9):
            out.append(c)
    if len(out) > 200:
        raise LlmplanError(f"a budget range of {len(out)} points is too many; use at most 200")
    return out
