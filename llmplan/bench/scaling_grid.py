"""The IsoFLOP grid of a scaling sweep and its training recipe (no torch here: plain arithmetic on shapes).

A sweep trains, at each of several compute budgets C, several model sizes N with D = C / (6 N) tokens each
(Hoffmann et al. 2022, Chinchilla, section 3.2: IsoFLOP profiles), then fits L(N, D) = E + A/N^alpha + B/D^beta to
all runs (their section 3.3, Approach 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmplan.bench.corpus import VOCAB
from llmplan.errors import LlmplanError
from llmplan.models.params import count_params
from llmplan.models.spec import ModelSpec

PRIOR_TOKENS_PER_PARAM = 20.0  # where each budget's window of sizes is centred (Hoffmann et al. 2022, Table 3)
VALIDATION_FACTOR = 4.0        # the held-back run uses 4x the largest budget of the grid
_HIDDENS = (16, 24, 32, 48, 64, 80, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 1024)
_ASPECT = 32.0                 # preferred hidden / layers; Kaplan et al. 2020 (Fig. 5): loss barely depends on it


@dataclass(frozen=True)
class Recipe:
    """How every run of a sweep is trained; the same for all sizes except the learning rate (see peak_lr)."""

    seq: int = 128                 # tokens per sequence (bytes)
    batch: int = 32                # sequences per step
    warmup_fraction: float = 0.1   # linear warm-up over the first 10 % of steps
    final_lr_fraction: float = 0.1  # cosine decay to 10 % of the peak at the run's last step (Hoffmann et al. 2022)
    weight_decay: float = 0.1      # AdamW decoupled decay on matrices (Loshchilov and Hutter 2019)
    beta1: float = 0.9
    beta2: float = 0.95            # GPT-3's Adam betas (Brown et al. 2020, Appendix B)
    grad_clip: float = 1.0         # global gradient-norm clip, as GPT-3
    init_std: float = 0.02         # GPT-2 initialisation; residual projections / sqrt(2 layers) (Radford et al. 2019)
    seed: int = 0
    eval_tokens: int = 65_536      # held-out tokens scored after each run (the same windows for every run)
    min_steps: int = 20            # a run shorter than this is too noisy to keep in the grid

    @property
    def tokens_per_step(self) -> int:
        return self.seq * self.batch

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {
            "optimizer": "AdamW", "schedule": "linear warm-up, cosine decay",
            "learning_rate_rule": "peak lr = 0.074 * hidden^-0.77"}


def peak_lr(hidden: int) -> float:
    """Peak learning rate by width: 0.074 * hidden^-0.77, the least-squares power law through GPT-3's learning rates
    against d_model (Brown et al. 2020, Table 2.1: 6e-4 at 768 ... 0.6e-4 at 12288; the line passes within 20 % of
    every row but the first, 26 % under 125M's 6e-4), extrapolated down to tiny widths (5.1e-3 at 32, 1.8e-3 at
    128)."""
    return 0.074 * hidden ** -0.77


def lr_at(step: int, steps: int, peak: float, recipe: Recipe) -> float:
    """Linear warm-up to `peak`, then cosine decay to final_lr_fraction * peak at the last step."""
    warm = max(1, round(recipe.warmup_fraction * steps))
    if step < warm:
        return peak * (step + 1) / warm
    progress = (step - warm) / max(1, steps - warm - 1)
    floor = recipe.final_lr_fraction
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def tiny_spec(hidden: int, layers: int, seq: int) -> ModelSpec:
    """A LLaMA-style byte-level decoder: rotary positions, RMSNorm, SwiGLU MLP (ffn ~ 8/3 hidden), tied embeddings."""
    heads = hidden // 32 if hidden % 32 == 0 else hidden // 16
    ffn = max(8, round(hidden * 8 / 3 / 8) * 8)
    return ModelSpec(name=f"tiny-{hidden}x{layers}", arch="decoder", layers=layers, hidden=hidden, heads=heads,
                     ffn=ffn, vocab=VOCAB, context=seq, mlp="gated", activation="silu", position="rotary",
                     norm="rmsnorm", tied_embeddings=True, source="llmplan scaling sweep")


def shape_ladder(seq: int, max_params: float = 2e8) -> list[ModelSpec]:
    """Shapes about 1.25-1.6x apart in parameters, each with hidden / layers as close to 32 as the step allows."""
    candidates = []
    for h in _HIDDENS:
        for layers in range(1, 33):
            if 12 <= h / layers <= 80 or layers == 1:
                spec = tiny_spec(h, layers, seq)
                candidates.append((count_params(spec).total, spec))
    candidates.sort(key=lambda c: c[0])
    ladder = [candidates[0]]
    while True:
        last = ladder[-1][0]
        above = [c for c in candidates if 1.25 * last <= c[0] <= max_params]
        if not above:
            break
        band = [c for c in above if c[0] <= 1.6 * last] or above[:1]
        ladder.append(min(band, key=lambda c: abs(math.log(c[1].hidden / c[1].layers / _ASPECT))))
    return [spec for _, spec in ladder]


@dataclass(frozen=True)
class PlannedRun:
    budget_flops: float   # C of the IsoFLOP group (6 N D)
    spec: ModelSpec
    params: int           # N: every parameter, embeddings included (the N of Hoffmann et al. 2022)
    steps: int
    tokens: int           # D = steps * tokens_per_step (close to C / 6N, rounded to whole steps)

    @property
    def flops(self) -> float:
        return 6.0 * self.params * self.tokens


def plan_run(budget: float, spec: ModelSpec, recipe: Recipe) -> PlannedRun:
    n = count_params(spec).total
    steps = max(1, round(budget / (6.0 * n * recipe.tokens_per_step)))
    return PlannedRun(budget, spec, n, steps, steps * recipe.tokens_per_step)


def sizes_for_budget(budget: float, ladder: list[ModelSpec], recipe: Recipe, per_budget: int,
                     spread: float = 4.0) -> list[PlannedRun]:
    """`per_budget` ladder shapes spread evenly in log N over [N*/spread, N* spread] around the prior optimum
    N* = sqrt(C / (6 * 20)), keeping only runs of at least min_steps steps."""
    centre = math.sqrt(budget / (6.0 * PRIOR_TOKENS_PER_PARAM))
    distance = lambda s: abs(math.log(count_params(s).total / centre))  # noqa: E731
    inside = [s for s in ladder if distance(s) <= math.log(spread) + 1e-9]
    if len(inside) < per_budget:  # too few shapes in the window: the nearest ones, in ladder order
        near = sorted(ladder, key=distance)[:per_budget]
        inside = [s for s in ladder if s in near]
    picks = sorted({round(i * (len(inside) - 1) / max(1, per_budget - 1)) for i in range(per_budget)})
    chosen = [inside[i] for i in picks]
    runs = [plan_run(budget, s, recipe) for s in chosen]
    return [r for r in runs if r.steps >= recipe.min_steps]


def isoflop_grid(max_budget: float, n_budgets: int, per_budget: int, ladder: list[ModelSpec], recipe: Recipe,
                 ratio: float = 3.0) -> list[PlannedRun]:
    """Budgets max_budget / ratio^k for k = n_budgets-1 .. 0, smallest first; several sizes per budget."""
    if n_budgets < 1 or per_budget < 1:
        raise LlmplanError("a sweep needs at least one budget and one size per budget")
    runs: list[PlannedRun] = []
    for k in range(n_budgets - 1, -1, -1):
        runs += sizes_for_budget(max_budget / ratio ** k, ladder, recipe, per_budget)
    return runs


def nearest_shape(params: float, ladder: list[ModelSpec]) -> ModelSpec:
    return min(ladder, key=lambda s: abs(math.log(count_params(s).total / params)))


def validation_run(max_budget: float, optimal_params: float | None, ladder: list[ModelSpec],
                   recipe: Recipe) -> PlannedRun:
    """The held-back run: VALIDATION_FACTOR x the largest budget, at the ladder shape nearest the fitted optimum (or
    the prior one when there is no fit yet)."""
    budget = VALIDATION_FACTOR * max_budget
    n = optimal_params or math.sqrt(budget / (6.0 * PRIOR_TOKENS_PER_PARAM))
    return plan_run(budget, nearest_shape(n, ladder), recipe)


def estimate_seconds(runs: list[PlannedRun], step_seconds) -> float:
    """Wall time of `runs` given step_seconds(params) -> seconds per optimiser step."""
    return sum(r.steps * step_seconds(r.params) for r in runs)


def budget_for_seconds(seconds: float, n_budgets: int, per_budget: int, ladder: list[ModelSpec], recipe: Recipe,
                       step_seconds) -> float:
    """The largest budget C_max whose grid plus validation run is estimated to take about `seconds`."""
    def total(c_max: float) -> float:
        grid = isoflop_grid(c_max, n_budgets, per_budget, ladder, recipe)
        return estimate_seconds(grid + [validation_run(c_max, None, ladder, recipe)], step_seconds)

    smallest = count_params(ladder[0]).total
    lo = 6.0 * smallest * recipe.tokens_per_step * recipe.min_steps  # one minimal run of the smallest model
    hi = lo * 1e12
    if total(lo) > seconds:
        return lo
    for _ in range(60):  # bisection in log C
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if total(mid) <= seconds else (lo, mid)
    return lo
