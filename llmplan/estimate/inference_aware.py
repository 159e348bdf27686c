"""Inference-aware sizing (Sardana et al. 2024, "Beyond Chinchilla-Optimal: Accounting for Inference in Language
Model Scaling Laws"): the model that reaches a target loss with the least training plus inference FLOPs.

Minimise 6 N D + 2 N T subject to L(N, D) = target (Sardana et al. 2024, section 2, eq. 3 with the Chinchilla loss).
For a given N the constraint fixes D in closed form, so the search is one-dimensional over N, done here with a
log-spaced scan and a golden-section refinement in plain Python (no scipy on the planner path).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmplan.errors import LlmplanError
from llmplan.estimate.laws import FLOPS_PER_PARAM_TOKEN, ParametricLaw, _check_count
from llmplan.estimate.minimise import minimise_scalar

INFERENCE_FLOPS_PER_PARAM_TOKEN = 2.0  # a forward pass: 2 N FLOPs per token (Kaplan et al. 2020, Table 1)


@dataclass(frozen=True)
class InferencePlan:
    """A model (params, tokens) with its training, inference and total FLOPs."""

    params: float
    tokens: float
    tokens_per_param: float
    train_flops: float
    inference_flops: float
    total_flops: float
    loss: float


@dataclass(frozen=True)
class InferenceAwareResult:
    law: str
    target_loss: float
    inference_tokens: float
    best: InferencePlan  # least training + inference FLOPs at the target loss
    compute_optimal: InferencePlan  # the law's compute-optimal model at the same loss
    saved_flops: float  # compute_optimal.total_flops - best.total_flops (>= 0)
    saved_fraction: float
    assumptions: tuple[str, ...]


def tokens_for_loss(law: ParametricLaw, params: float, target_loss: float) -> float:
    """The D with L(N, D) = target: D = (B / (L - E - A/N^alpha))^(1/beta); inf where N alone cannot reach it."""
    room = target_loss - law.E - law.params_term(params)
    if room <= 0:
        return math.inf
    log_d = (math.log(law.B) - math.log(room)) / law.beta  # in logs: (B/room)^(1/beta) can pass 1e308
    return math.exp(log_d) if log_d < 700 else math.inf


def min_params_for_loss(law: ParametricLaw, target_loss: float) -> float:
    """The N below which no amount of data reaches the target: A/N^alpha = L - E."""
    log_n = (math.log(law.A) - math.log(target_loss - law.E)) / law.alpha
    if not -700 < log_n < 700:
        raise LlmplanError(f"the {law.name} law reaches loss {target_loss:g} only at N = e^{log_n:.4g}, beyond any "
                           "model: choose another target loss or law")
    return math.exp(log_n)


def compute_optimal_for_loss(law: ParametricLaw, target_loss: float) -> tuple[float, float]:
    """The compute-optimal (N, D) on the law's frontier whose loss equals the target (bisection on log C)."""
    _check_target(law, target_loss)

    def frontier_loss(log_c: float) -> float:
        n, d = law.optimal(math.exp(log_c))
        return law.loss(n, d)

    lo, hi = math.log(1e3), math.log(1e30)
    while frontier_loss(hi) > target_loss:  # loss falls towards E as C grows, so this ends
        hi += math.log(1e10)
        if hi > math.log(1e300):
            raise LlmplanError(f"loss {target_loss:g} is out of reach of the {law.name} law at any budget")
    if frontier_loss(lo) <= target_loss:
        raise LlmplanError(f"loss {target_loss:g} is reached by a model smaller than 1 kFLOP of training; "
                           "choose a lower target loss")
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if frontier_loss(mid) > target_loss:
            lo = mid
        else:
            hi = mid
    return law.optimal(math.exp(0.5 * (lo + hi)))


def _check_target(law: ParametricLaw, target_loss: float) -> None:
    if not math.isfinite(target_loss) or target_loss <= law.E:
        raise LlmplanError(f"target loss {target_loss:g} must be above the {law.name} law's irreducible loss "
                           f"E = {law.E:.4g}")


def _plan(law: ParametricLaw, params: float, tokens: float, inference_tokens: float) -> InferencePlan:
    train = FLOPS_PER_PARAM_TOKEN * params * tokens  # 6 N D (Kaplan et al. 2020)
    infer = INFERENCE_FLOPS_PER_PARAM_TOKEN * params * inference_tokens  # 2 N T (Sardana et al. 2024, eq. 3)
    return InferencePlan(params, tokens, tokens / params, train, infer, train + infer, law.loss(params, tokens))


def inference_aware(law: ParametricLaw, inference_tokens: float, target_loss: float) -> InferenceAwareResult:
    """The (N, D) reaching `target_loss` with the least 6 N D + 2 N T, against the compute-optimal model."""
    if not isinstance(law, ParametricLaw):
        raise LlmplanError(f"inference-aware sizing needs a law with a loss (hoffmann, epoch, muennighoff or a "
                           f"law file), not {law.name}")
    inference_tokens = _check_count(inference_tokens, "--inference-tokens") if inference_tokens else 0.0
    _check_target(law, target_loss)
    n_min = min_params_for_loss(law, target_loss)

    def total(log_n: float) -> float:
        n = math.exp(log_n)
        d = tokens_for_loss(law, n, target_loss)
        return FLOPS_PER_PARAM_TOKEN * n * d + INFERENCE_FLOPS_PER_PARAM_TOKEN * n * inference_tokens

    # The optimum lies between N_min (infinite data) and the compute-optimal N (T = 0), which is a few times
    # N_min; scan six decades above N_min to be safe, then refine.
    n_best = math.exp(minimise_scalar(total, math.log(n_min) + 1e-9, math.log(n_min) + math.log(1e6), steps=600))
    best = _plan(law, n_best, tokens_for_loss(law, n_best, target_loss), inference_tokens)
    n_co, d_co = compute_optimal_for_loss(law, target_loss)
    baseline = _plan(law, n_co, d_co, inference_tokens)
    saved = max(baseline.total_flops - best.total_flops, 0.0)
    assumptions = (
        f"quality held fixed as the {law.name} law's predicted loss {target_loss:.4f}",
        "inference costs 2 N FLOPs per token (forward pass, no KV-cache or attention FLOPs)",
        "training costs 6 N D FLOPs; the law is extrapolated to many tokens per parameter, where Sardana et al. "
        "2024 found real models keep improving but the fitted law is least tested",
    )
    return InferenceAwareResult(law.name, target_loss, inference_tokens, best, baseline, saved,
                                saved / baseline.total_flops if baseline.total_flops else 0.0, assumptions)
