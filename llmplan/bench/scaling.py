"""Train the runs of a scaling sweep, fit L(N, D) to them, and test the fit on one larger held-back run.

The grid and the recipe are in scaling_grid.py; this module trains (torch), scores held-out loss, and hands the runs
to llmplan.fit.chinchilla.fit_chinchilla. Nothing here prints: progress goes through a callback, and the result is a
frozen dataclass that the CLI renders.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from llmplan.bench.corpus import Corpus
from llmplan.bench.scaling_grid import (VALIDATION_FACTOR, PlannedRun, Recipe, budget_for_seconds, isoflop_grid,
                                        lr_at, nearest_shape, peak_lr, shape_ladder, validation_run)
from llmplan.errors import LlmplanError, RunError

MIN_RUNS_TO_FIT = 6  # five constants: at least one more run than unknowns


@dataclass(frozen=True)
class RunResult:
    name: str
    hidden: int
    layers: int
    params: int
    tokens: int
    flops: float          # 6 N D
    budget_flops: float   # the IsoFLOP group
    steps: int
    peak_lr: float
    loss: float           # held-out cross-entropy, nats per byte
    train_loss: float     # mean training loss over the last 10 % of steps
    epochs: float         # passes over the training split
    seconds: float


@dataclass(frozen=True)
class SweepResult:
    runs: tuple[RunResult, ...]
    fit: object | None                   # ChinchillaFit, or None when too few runs finished
    prediction: dict | None              # flops, params, tokens, predicted_loss, measured_loss, error
    corpus: dict
    recipe: dict
    device: str
    seconds: float
    interrupted: bool = False
    assumptions: tuple[str, ...] = field(default_factory=tuple)


def _init_weights(model, recipe: Recipe, layers: int) -> None:
    """GPT-2 initialisation (Radford et al. 2019): N(0, 0.02) everywhere, residual output projections scaled by
    1/sqrt(2 layers); norms keep weight 1."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() < 2:
                continue
            std = recipe.init_std
            if name.endswith(("out.weight", "down.weight")):
                std /= math.sqrt(2 * layers)
            p.normal_(0.0, std)


def _batches(tokens, recipe: Recipe, device: str, seed: int):
    """An endless stream of (inputs, targets): random windows of seq+1 bytes, the same order for every run."""
    import torch

    data = torch.from_numpy(tokens.astype("int64"))
    gen = torch.Generator().manual_seed(seed)
    span = len(data) - recipe.seq - 1
    if span < 1:
        raise LlmplanError(f"the training split ({len(data)} bytes) is shorter than one sequence of "
                           f"{recipe.seq + 1}; give more text or a shorter --seq")
    offsets = torch.arange(recipe.seq + 1)
    while True:
        starts = torch.randint(0, span, (recipe.batch,), generator=gen)
        window = data[starts[:, None] + offsets]
        yield window[:, :-1].to(device), window[:, 1:].to(device)


def evaluation_windows(heldout, recipe: Recipe):
    """Evenly spaced, non-overlapping windows of the held-out split: the same for every run of a sweep."""
    import torch

    data = torch.from_numpy(heldout.astype("int64"))
    n = min(max(1, recipe.eval_tokens // recipe.seq), (len(data) - 1) // recipe.seq)
    if n < 1:
        raise LlmplanError(f"the held-out split ({len(data)} bytes) is shorter than one sequence of "
                           f"{recipe.seq + 1}; give more text or a shorter --seq")
    starts = torch.linspace(0, len(data) - recipe.seq - 1, n).long()
    return data[starts[:, None] + torch.arange(recipe.seq + 1)]


def heldout_loss(model, windows, device: str, batch: int) -> float:
    import torch

    model.eval()
    total = 0.0
    with torch.no_grad(), _autocast(device):
        for i in range(0, len(windows), batch):
            w = windows[i:i + batch].to(device)
            total += float(model(w[:, :-1], w[:, 1:])) * len(w)
    model.train()
    return total / len(windows)


def _autocast(device: str):
    import contextlib

    import torch

    # bf16 matmuls on GPUs that support them (Ampere and later), fp32 master weights and loss; fp32 elsewhere
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


def train_run(run: PlannedRun, corpus: Corpus, windows, recipe: Recipe, device: str = "cpu",
              on_step: Callable[[int, int], None] | None = None) -> RunResult:
    """Train one model of the grid from scratch with the sweep's recipe and score its held-out loss."""
    import torch

    from llmplan.bench.model import build_model

    torch.manual_seed(recipe.seed)
    model = build_model(run.spec, device=device)
    _init_weights(model, recipe, run.spec.layers)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    lr = peak_lr(run.spec.hidden)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(recipe.beta1, recipe.beta2), eps=1e-8)
    batches = _batches(corpus.train, recipe, device, recipe.seed)
    tail_from = int(0.9 * run.steps)
    tail: list[float] = []
    start = time.perf_counter()
    for step in range(run.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, run.steps, lr, recipe)
        x, y = next(batches)
        with _autocast(device):
            loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        opt.step()
        if step >= tail_from:
            tail.append(float(loss.detach()))
        if on_step:
            on_step(step + 1, run.steps)
    if not all(math.isfinite(v) for v in tail):
        raise RunError(f"training {run.spec.name} diverged (non-finite loss); lower the learning rate or use "
                       "a smaller budget")
    loss_value = heldout_loss(model, windows, device, recipe.batch)
    seconds = time.perf_counter() - start
    return RunResult(name=run.spec.name, hidden=run.spec.hidden, layers=run.spec.layers, params=run.params,
                     tokens=run.tokens, flops=run.flops, budget_flops=run.budget_flops, steps=run.steps,
                     peak_lr=lr, loss=loss_value, train_loss=sum(tail) / len(tail),
                     epochs=run.tokens / len(corpus.train), seconds=seconds)


def measure_step_seconds(shapes, corpus: Corpus, recipe: Recipe, device: str, repeats: int = 3):
    """step_seconds(params): a line a + b * params through the timed steps of two shapes (small, larger).

    Tiny models are dominated by per-step overhead, large ones by arithmetic; a line through the two covers both.
    """
    import torch

    from llmplan.bench.model import build_model
    from llmplan.models.params import count_params

    points = []
    for spec in shapes:
        model = build_model(spec, device=device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        batches = _batches(corpus.train, recipe, device, recipe.seed)
        times = []
        for i in range(repeats + 1):  # the first step warms up allocators and kernels
            x, y = next(batches)
            t = time.perf_counter()
            with _autocast(device):
                loss = model(x, y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            _sync(device)
            if i:
                times.append(time.perf_counter() - t)
        points.append((count_params(spec).total, sorted(times)[len(times) // 2]))
    (n0, t0), (n1, t1) = points
    slope = max((t1 - t0) / (n1 - n0), 0.0) if n1 != n0 else 0.0
    return lambda n: max(t0 + slope * (n - n0), 1e-6)


def _too_short(fit, done: list, grid: list, why_not: str, unvalidated: bool = False) -> str:
    """Why the sweep was too short for a trustworthy fit, or "" when it was not."""
    reasons = []
    if fit is None:
        reasons.append(f"no law could be fitted ({why_not})")
    elif getattr(fit, "at_bounds", ()):
        reasons.append(f"the runs do not determine {', '.join(fit.at_bounds)}")
    if len(done) < len(grid):
        reasons.append(f"{len(grid) - len(done)} of the {len(grid)} planned runs did not fit in the time")
    if unvalidated:
        reasons.append("the held-back validation run did not fit in the time, so the law is unchecked")
    if not reasons:
        return ""
    return ("the sweep was too short for a trustworthy fit: " + "; ".join(reasons) +
            "; give more --budget-seconds (900 by default, 150 with --quick)")


def fit_runs(runs: list[RunResult], bootstrap: int = 100):
    """fit_chinchilla on the finished runs, with bootstrap intervals (None when fewer than MIN_RUNS_TO_FIT)."""
    if len(runs) < MIN_RUNS_TO_FIT or len({r.params for r in runs}) < 2 or len({r.tokens for r in runs}) < 2:
        return None
    from llmplan.fit.chinchilla import bootstrap_chinchilla, fit_chinchilla

    n, d, loss = ([float(getattr(r, k)) for r in runs] for k in ("params", "tokens", "loss"))
    fit = fit_chinchilla(n, d, loss)
    if bootstrap >= 2:
        try:
            fit = bootstrap_chinchilla(n, d, loss, fit, samples=bootstrap)
        except (LlmplanError, ValueError, OverflowError):
            pass  # the refits failed: report the fit without intervals
    return fit


class NullProgress:
    """The progress interface run_sweep reports through; the CLI passes a rich progress bar on stderr."""

    def plan(self, runs: int) -> None: ...
    def start(self, index: int, total: int, run: PlannedRun, label: str) -> None: ...
    def step(self, done: int, steps: int) -> None: ...
    def done(self, result: RunResult) -> None: ...
    def note(self, message: str) -> None: ...


def _probe_shape(ladder, device: str):
    return nearest_shape(3e7 if device.startswith("cuda") else 3e5, ladder)


def optimal_points(fit, budgets: list[float]) -> list[dict]:
    """Compute-optimal N, D and D/N at each budget, from the fitted law."""
    points = []
    for c in budgets:
        n, d = fit.optimal(c)  # Hoffmann et al. 2022, eq. 4
        points.append({"flops": c, "params": n, "tokens": d, "tokens_per_param": d / n})
    return points


def isoflop_minima(runs: list[RunResult]) -> list[dict]:
    """Each budget's minimum from a parabola in log N through its runs (Hoffmann et al. 2022, Approach 2): a check
    on the parametric fit that does not assume its functional form."""
    from llmplan.fit.isoflop import fit_approach2

    if not runs:
        return []
    a2 = fit_approach2([r.params for r in runs], [r.budget_flops for r in runs], [r.loss for r in runs])
    if a2 is None:
        return []
    return [{"flops": g.flops, "params_opt": g.params_opt, "tokens_opt": g.tokens_opt,
             "tokens_per_param": g.tokens_opt / g.params_opt if g.params_opt else None, "loss_opt": g.loss_opt,
             "inside_sizes_tried": g.used, "note": g.note} for g in a2.groups]


def run_sweep(corpus: Corpus, recipe: Recipe, device: str = "cpu", n_budgets: int = 4, per_budget: int = 5,
              budget_seconds: float | None = None, max_budget: float | None = None, validate: bool = True,
              bootstrap: int = 100, progress=None) -> SweepResult:
    """Plan the IsoFLOP grid (from `max_budget`, or sized to `budget_seconds` by timing a few steps), train it, fit
    L(N, D), predict the held-back run's loss, then train that run and measure it. Ctrl-C keeps the finished runs."""
    import torch

    progress = progress or NullProgress()
    if device != "cpu":
        return _sweep(corpus, recipe, device, n_budgets, per_budget, budget_seconds, max_budget, validate,
                      bootstrap, progress)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models gain nothing from threads; on a busy machine threads wait on each other
    try:
        return _sweep(corpus, recipe, device, n_budgets, per_budget, budget_seconds, max_budget, validate,
                      bootstrap, progress)
    finally:
        torch.set_num_threads(threads)


def _sweep(corpus, recipe, device, n_budgets, per_budget, budget_seconds, max_budget, validate, bootstrap,
           progress) -> SweepResult:
    began = time.perf_counter()
    windows = evaluation_windows(corpus.heldout, recipe)
    ladder = shape_ladder(recipe.seq)
    step_seconds = None
    assumptions = ["N counts every parameter, embeddings included; C = 6 N D (Hoffmann et al. 2022)",
                   f"loss: held-out cross-entropy in nats per byte over {len(windows) * recipe.seq:,} tokens"]
    if max_budget is None:
        if not budget_seconds or budget_seconds <= 0:
            raise LlmplanError("give a time budget in seconds (greater than zero) or a largest FLOP budget")
        progress.note("timing a few training steps to size the grid to the time budget")
        step_seconds = measure_step_seconds([ladder[0], _probe_shape(ladder, device)], corpus, recipe, device)
        left = 0.9 * budget_seconds - (time.perf_counter() - began)
        max_budget = budget_for_seconds(max(left, 1.0), n_budgets, per_budget, ladder, recipe, step_seconds)
    grid = isoflop_grid(max_budget, n_budgets, per_budget, ladder, recipe)
    if len(grid) < MIN_RUNS_TO_FIT or len({r.budget_flops for r in grid}) < 2:
        raise LlmplanError(f"the budget allows only {len(grid)} runs of at least {recipe.min_steps} steps, too few "
                           f"to fit five constants (need {MIN_RUNS_TO_FIT} over two budgets or more); give more "
                           "--budget-seconds or fewer tokens per step")
    total = len(grid) + (1 if validate else 0)
    progress.plan(total)

    def over_time(run: PlannedRun) -> bool:
        if step_seconds is None or not budget_seconds:
            return False
        # a run starts only if it is expected to end within the budget: the fit, the validation run's own check
        # and the timing error stay inside the 10% beyond it that `--budget-seconds` allows
        return time.perf_counter() - began + run.steps * step_seconds(run.params) > budget_seconds

    done: list[RunResult] = []
    interrupted = False
    try:
        for i, run in enumerate(grid):
            if over_time(run):
                progress.note(f"skipping {run.spec.name} at {run.budget_flops:.2e} FLOPs: it would overrun the "
                              "time budget")
                continue
            progress.start(i + 1, total, run, "grid")
            done.append(train_run(run, corpus, windows, recipe, device, progress.step))
            progress.done(done[-1])
    except KeyboardInterrupt:
        interrupted = True
        progress.note(f"interrupted: keeping the {len(done)} finished runs")

    fit, why_not = None, f"{len(done)} runs finished, {MIN_RUNS_TO_FIT} needed"
    if budget_seconds and time.perf_counter() - began > 0.95 * budget_seconds:
        bootstrap = 0  # no time left for the intervals inside the budget
        assumptions.append("no bootstrap intervals: the time budget was spent on the runs")
    try:  # the finished runs survive whatever the fit does: no law for them, a Ctrl-C (again) during it
        fit = fit_runs(done, bootstrap)
    except LlmplanError as exc:
        why_not = str(exc)
    except KeyboardInterrupt:
        interrupted, why_not = True, "interrupted during the fit"
        progress.note("interrupted during the fit: keeping the finished runs")
    prediction = None
    if fit is None:
        assumptions.append(f"no fit: {why_not}")
    elif validate and not interrupted:
        budget = max(r.budget_flops for r in done)
        vrun = validation_run(budget, fit.optimal(VALIDATION_FACTOR * budget)[0], ladder, recipe)
        predicted = fit.loss(vrun.params, vrun.tokens)  # stated before the run is trained
        prediction = {"name": vrun.spec.name, "flops": vrun.flops, "params": vrun.params, "tokens": vrun.tokens,
                      "predicted_loss": predicted, "measured_loss": None, "relative_error": None}
        progress.note(f"predicted held-out loss of {vrun.spec.name} at {vrun.flops:.2e} FLOPs: {predicted:.4f}")
        if over_time(vrun):
            progress.note("skipping the validation run: it would overrun the time budget")
        else:
            try:
                progress.start(total, total, vrun, "validation")
                measured = train_run(vrun, corpus, windows, recipe, device, progress.step)
                progress.done(measured)
                prediction["measured_loss"] = measured.loss
                prediction["relative_error"] = (predicted - measured.loss) / measured.loss
                prediction["seconds"] = measured.seconds
            except KeyboardInterrupt:
                interrupted = True
                progress.note("interrupted during the validation run")
    short = _too_short(fit, done, grid, why_not, validate and not interrupted and not (prediction or {}).get(
        "measured_loss"))
    if short:
        assumptions.append(short)
        progress.note(short)
    epochs = max((r.epochs for r in done), default=0.0)
    if epochs > 4:  # Muennighoff et al. 2023: up to ~4 epochs of repeated data cost little loss
        assumptions.append(f"the largest run saw the training text {epochs:.1f} times; beyond ~4 epochs repeated "
                           "data is worth less than fresh data (Muennighoff et al. 2023); use --data with more text")
    return SweepResult(runs=tuple(done), fit=fit, prediction=prediction, corpus=corpus.summary(),
                       recipe=recipe.as_dict(), device=device, seconds=time.perf_counter() - began,
                       interrupted=interrupted, assumptions=tuple(assumptions))
