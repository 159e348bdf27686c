"""Data-constrained scaling (Muennighoff et al. 2023, "Scaling Data-Constrained Language Models", arXiv 2305.16264):
the loss when training repeats U unique tokens for several epochs, and the best use of a budget given U.

Repeated tokens and excess parameters are worth less than fresh ones, with exponential decay:
  D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)),  R_D = D / U_D - 1          (section 3.1, eq. 5)
  N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)),  R_N = N / U_N - 1,
  U_N = min(N, N_opt(U_D)), the compute-optimal size for U_D tokens     (section 3.1, eq. 6)
  L = E + A / N'^alpha + B / D'^beta                                     (section 3.1, eq. 7)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmplan.errors import LlmplanError
from llmplan.estimate.laws import (
    FLOPS_PER_PARAM_TOKEN,
    ParametricLaw,
    _check_count,
    _check_flops,
)
from llmplan.estimate.minimise import minimise_scalar

# Fitted decay constants (Muennighoff et al. 2023, App. A, eq. 17): repeated data keeps value for longer
# (R_D* ~ 15.4 repetitions) than excess parameters do (R_N* ~ 5.3).
R_D_STAR = 15.387756
R_N_STAR = 5.309743


@dataclass(frozen=True)
class DataConstrainedPoint:
    law: str
    params: float
    tokens: float  # training tokens seen, repeats included
    unique_tokens: float
    epochs: float  # tokens / unique_tokens
    flops: float
    tokens_per_param: float
    effective_tokens: float  # D'
    effective_params: float  # N'
    loss: float  # with repetition (eq. 7)
    loss_fresh_data: float  # the same N and D if every token were unique


@dataclass(frozen=True)
class DataConstrainedResult:
    law: str
    unique_tokens: float
    run: DataConstrainedPoint | None  # the run the user described, if any
    best: DataConstrainedPoint | None  # the best allocation of the budget given U
    unconstrained: DataConstrainedPoint | None  # the law's compute-optimal point for the budget, repeats and all
    assumptions: tuple[str, ...]


def effective_tokens(tokens: float, unique_tokens: float) -> float:
    """D' of eq. 5: U_D = min(U, D) unique tokens seen, R_D = D / U_D - 1 repetitions."""
    u = min(unique_tokens, tokens)
    repeats = max(tokens / u - 1.0, 0.0)
    return u + u * R_D_STAR * (1.0 - math.exp(-repeats / R_D_STAR))


def effective_params(law: ParametricLaw, params: float, unique_tokens: float, tokens: float) -> float:
    """N' of eq. 6: parameters beyond the compute-optimal size for the unique data decay like repeated tokens."""
    u_n = min(params, law.optimal_params_for_tokens(min(unique_tokens, tokens)))
    excess = max(params / u_n - 1.0, 0.0)
    return u_n + u_n * R_N_STAR * (1.0 - math.exp(-excess / R_N_STAR))


def point(law: ParametricLaw, params: float, tokens: float, unique_tokens: float) -> DataConstrainedPoint:
    """The data-constrained loss of training N parameters on D tokens drawn from U unique ones."""
    d_eff = effective_tokens(tokens, unique_tokens)
    n_eff = effective_params(law, params, unique_tokens, tokens)
    loss = law.loss(n_eff, d_eff)  # eq. 7: E + A/N'^alpha + B/D'^beta, in logs (no overflow)
    return DataConstrainedPoint(law.name, params, tokens, unique_tokens, tokens / unique_tokens,
                                FLOPS_PER_PARAM_TOKEN * params * tokens, tokens / params, d_eff, n_eff, loss,
                                law.loss(params, tokens))


def best_allocation(law: ParametricLaw, flops: float, unique_tokens: float) -> DataConstrainedPoint:
    """The N (and D = C / 6N) with the least data-constrained loss for `flops` given U unique tokens."""
    flops = _check_flops(flops)
    n_free, _ = law.optimal(flops)

    def loss_at(log_n: float) -> float:
        n = math.exp(log_n)
        return point(law, n, flops / (FLOPS_PER_PARAM_TOKEN * n), unique_tokens).loss

    # Three decades either side of the unconstrained optimum.
    n = math.exp(minimise_scalar(loss_at, math.log(n_free) - math.log(1e3), math.log(n_free) + math.log(1e3),
                                 steps=360, iterations=120))
    return point(law, n, flops / (FLOPS_PER_PARAM_TOKEN * n), unique_tokens)


def data_constrained(law: ParametricLaw, unique_tokens: float, *, params: float | None = None,
                     tokens: float | None = None, flops: float | None = None) -> DataConstrainedResult:
    """A described run (params, with tokens or the law's optimal tokens) and/or the best use of a budget."""
    if not isinstance(law, ParametricLaw):
        raise LlmplanError(f"data-constrained scaling needs a law with a loss (muennighoff, hoffmann, epoch or a "
                           f"law file), not {law.name}")
    unique_tokens = _check_count(unique_tokens, "--unique-tokens")
    run = best = free = None
    if params is not None:
        params = _check_count(params, "--params")
        tokens = _check_count(tokens, "--tokens") if tokens is not None else law.optimal_tokens(params)
        run = point(law, params, tokens, unique_tokens)
        flops = flops if flops is not None else run.flops
    if flops is not None:
        best = best_allocation(law, flops, unique_tokens)
        n_free, d_free = law.optimal(flops)
        free = point(law, n_free, d_free, unique_tokens)
    assumptions = [f"decay constants R_D* = {R_D_STAR:g}, R_N* = {R_N_STAR:g} (Muennighoff et al. 2023, App. A)"]
    if law.name != "muennighoff":
        assumptions.append(f"Muennighoff's decay constants applied to the {law.name} law's constants; they were "
                           "fitted together with the muennighoff law (C4)")
    return DataConstrainedResult(law.name, unique_tokens, run, best, free, tuple(assumptions))
