"""`llmplan fit RUNS.csv`: fit L(N, D) = E + A/N^alpha + B/D^beta (and the envelope, and Approach 2) to runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from llmplan.cli.app import command_app
from llmplan.cli.common import JSON_OPTION
from llmplan.errors import LlmplanError
from llmplan.files import check_writable_target
from llmplan.report.output import emit_json, kv_table, stdout_console, table
from llmplan.units import format_count, format_flops, parse_count


MAX_BOOTSTRAP = 100_000  # resamples; each is one L-BFGS refit (~10-50 ms), so 10^5 take about an hour at most


def _shorten(n: int) -> str:
    text = str(n)
    return text if len(text) <= 24 else f"a number of {len(text.lstrip('-'))} digits"


def _interval(fit, key: str, digits: int = 4) -> str:
    if not fit.intervals:
        return "-"
    lo, hi = fit.intervals[key]
    if hi - lo <= 1e-12 * max(abs(lo), abs(hi), 1e-300):
        return f"{lo:.{digits}g} in every resample (degenerate)"
    return f"[{lo:.{digits}g}, {hi:.{digits}g}]"


def degenerate(fit) -> tuple[str, ...]:
    """Constants not determined by the runs: on the edge of the search box, or with a zero-width interval."""
    out = list(getattr(fit, "at_bounds", ()))
    for key, (lo, hi) in (fit.intervals or {}).items():
        if key in ("E", "A", "B", "alpha", "beta") and key not in out and \
                hi - lo <= 1e-12 * max(abs(lo), abs(hi), 1e-300):
            out.append(key)
    return tuple(out)


def _value(fit, key: str) -> str:
    text = f"{getattr(fit, key):.4g}"
    return f"{text} (undetermined)" if key in degenerate(fit) else text


def _payload(runs, fit, at_flops: float, envelope, approach2) -> dict:
    n_opt, d_opt = fit.optimal(at_flops)
    env = None
    if envelope is not None:
        env = {"E": envelope.E, "A": envelope.A, "gamma": envelope.gamma, "n_points": envelope.n_points,
               "residual_rms": envelope.residual_rms, "fitted_on": envelope.fitted_on}
    a2 = None
    if approach2 is not None:
        a2 = {"a": approach2.a, "b": approach2.b, "params_coef": approach2.params_coef,
              "tokens_coef": approach2.tokens_coef, "tolerance": approach2.tolerance, "n_used": approach2.n_used,
              "groups": [{"flops": g.flops, "n_runs": len(g.params), "params_opt": g.params_opt,
                          "tokens_opt": g.tokens_opt, "loss_opt": g.loss_opt, "used": g.used, "note": g.note}
                         for g in approach2.groups]}
    return {
        **fit.constants(), "a": fit.a, "b": fit.b, "G": fit.G,
        "intervals": {k: list(v) for k, v in fit.intervals.items()} if fit.intervals else None,
        "interval_level": fit.interval_level, "bootstrap_samples": fit.bootstrap_samples,
        "n_runs": fit.n_runs, "dropped": runs.dropped, "residual_rms": fit.residual_rms,
        "max_abs_residual": fit.max_abs_residual, "objective": fit.objective, "delta": fit.delta,
        "starts": fit.starts, "grid_points": fit.grid_points, "undetermined": list(degenerate(fit)),
        "at_flops": {"flops": at_flops, "params": n_opt, "tokens": d_opt, "tokens_per_param": d_opt / n_opt,
                     "loss": fit.loss(n_opt, d_opt)},
        "envelope": env, "approach2": a2, "source": runs.source, "tokens_from_flops": runs.tokens_from_flops,
        "assumptions": list(fit.assumptions),
    }


def _render(runs, fit, at_flops: float, envelope, approach2) -> None:
    console = stdout_console()
    level = f"{fit.interval_level:.0%} bootstrap ({fit.bootstrap_samples} resamples)" if fit.intervals else \
        "no intervals (--bootstrap 0)"
    rows = [[k, _value(fit, k), _interval(fit, k)] for k in ("E", "A", "B", "alpha", "beta", "a", "b")]
    console.print(table(f"L(N, D) = E + A/N^alpha + B/D^beta from {fit.n_runs} runs; a = beta/(alpha+beta), "
                        f"b = alpha/(alpha+beta)", ["constant", "value", level], rows))
    n_opt, d_opt = fit.optimal(at_flops)
    console.print(kv_table(f"Compute-optimal at {format_flops(at_flops)} FLOPs (C = 6 N D)", [
        ("params N_opt", format_count(n_opt)),
        ("tokens D_opt", format_count(d_opt)),
        ("tokens per parameter", f"{d_opt / n_opt:.3g}"),
        ("predicted loss", f"{fit.loss(n_opt, d_opt):.4g}"),
    ]))
    console.print(kv_table("Fit quality", [
        ("runs fitted", f"{fit.n_runs}" + (f" ({runs.dropped} highest-loss dropped)" if runs.dropped else "")),
        ("RMS log residual", f"{fit.residual_rms:.4g} (~{fit.residual_rms:.2%} of loss)"),
        ("largest |log residual|", f"{fit.max_abs_residual:.4g}"),
        ("Huber objective (sum)", f"{fit.objective:.6g} (delta {fit.delta:g})"),
        ("L-BFGS starts", f"best {fit.starts} of {fit.grid_points} grid points"),
    ]))
    if envelope is not None:
        console.print(kv_table(f"Envelope L(C) = E + A C^-gamma on the lower envelope ({envelope.n_points} runs)", [
            ("E", f"{envelope.E:.4g}"), ("A", f"{envelope.A:.4g}"), ("gamma", f"{envelope.gamma:.4g}"),
            ("RMS log residual", f"{envelope.residual_rms:.4g}")]))
    if approach2 is not None:
        rows = [[format_flops(g.flops), str(len(g.params)), format_count(g.params_opt) if g.params_opt else "-",
                 format_count(g.tokens_opt) if g.tokens_opt else "-", f"{g.loss_opt:.4g}" if g.loss_opt else "-",
                 "yes" if g.used else f"no: {g.note}"] for g in approach2.groups]
        title = "Approach 2: IsoFLOP parabolas in log N"
        if approach2.a is not None:
            title += f"; N_opt ~ C^{approach2.a:.3f}, D_opt ~ C^{approach2.b:.3f}"
        else:
            title += "; fewer than two usable budgets, no power law"
        console.print(table(title, ["budget", "runs", "N_opt", "D_opt", "loss at N_opt", "used"], rows))
    for a in fit.assumptions:
        console.print(f"[yellow]assumption:[/yellow] {a}")


app = command_app()


@app.command("fit")
def fit(
    runs_csv: Path = typer.Argument(..., help="CSV of runs with columns params, tokens (or flops) and loss.",
                                    show_default=False),
    delta: float = typer.Option(1e-3, "--delta", help="Huber threshold on log-loss residuals (Chinchilla: 1e-3)."),
    bootstrap: int = typer.Option(100, "--bootstrap", help="Bootstrap resamples for the intervals; 0 for none."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resampling."),
    at_flops: str = typer.Option("1e23", "--at-flops", help="Budget at which to report the compute-optimal size."),
    drop_highest: int = typer.Option(0, "--drop-highest", help="Leave out the K highest-loss runs (the Chinchilla "
                                     "replication drops 5)."),
    isoflop_tol: float = typer.Option(0.15, "--isoflop-tol", help="Runs within this fraction of a budget share an "
                                      "IsoFLOP group (Approach 2)."),
    save: Optional[Path] = typer.Option(None, "--save", help="Write the law as law.json (for `llmplan chinchilla "
                                        "--law`)."),
    name: Optional[str] = typer.Option(None, "--name", help="Name stored in law.json (default: the CSV's name)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a plot (.png, .pdf or .svg)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Fit the Chinchilla law L(N, D) = E + A/N^alpha + B/D^beta to training runs, with bootstrap intervals.

    Also fits the envelope L(C) = E + A C^-gamma and, where runs share budgets, Approach 2 (IsoFLOP parabolas).

    Examples:

      llmplan fit examples/runs.csv

      llmplan fit examples/chinchilla_figure4_points.csv --drop-highest 5 --bootstrap 200

      llmplan fit examples/runs.csv --at-flops 1e24 --save law.json --plot fit.png

      llmplan fit examples/runs.csv --json --bootstrap 0
    """
    from llmplan.fit import (bootstrap_chinchilla, drop_highest_loss, fit_approach2, fit_chinchilla, fit_envelope,
                             read_runs, write_law)
    from llmplan.report.plot_fit import check_plot_path

    # Validate every input before any work or any output file.
    budget = parse_count(at_flops, "--at-flops")
    if not (delta > 0 and delta < float("inf")):
        raise LlmplanError(f"--delta must be a finite number greater than zero, got {delta}")
    if bootstrap < 0 or bootstrap == 1 or bootstrap > MAX_BOOTSTRAP:
        raise LlmplanError(f"--bootstrap must be 0 (no intervals) or 2 to {MAX_BOOTSTRAP:,} resamples (Besiroglu "
                           f"et al. 2024 use 4,000), got {_shorten(bootstrap)}")
    if not 0 <= seed < 2**63:
        raise LlmplanError(f"--seed must be a whole number from 0 to 2^63 - 1, got {_shorten(seed)}")
    if not (isoflop_tol >= 0 and isoflop_tol < 10):
        raise LlmplanError(f"--isoflop-tol must be between 0 and 10 (a fraction of the budget), got {isoflop_tol}")
    if save is not None:
        check_writable_target(save, "--save")  # a regular file or a new path, never a device node or FIFO
        if save.is_dir() or not os.path.isdir(os.path.dirname(os.path.abspath(save))):
            raise LlmplanError(f"--save {save}: give a file path in an existing folder")
    if plot is not None:
        check_plot_path(str(plot))
    runs = drop_highest_loss(read_runs(runs_csv), drop_highest)

    law = fit_chinchilla(runs.params, runs.tokens, runs.losses, delta=delta)
    if bootstrap:
        law = _bootstrap(bootstrap_chinchilla, runs, law, bootstrap, seed)
    influence = _influence(runs, law, delta)
    envelope = fit_envelope(runs.flops, runs.losses, delta=delta)
    approach2 = fit_approach2(runs.params, runs.flops, runs.losses, tolerance=isoflop_tol)

    if save is not None:
        law_name = name or Path(runs.source).stem
        write_law(save, law, law_name, f"llmplan fit {Path(runs.source).name} ({law.n_runs} runs)")
    if plot is not None:
        from llmplan.report.plot_fit import plot_fit

        plot_fit(str(plot), runs, law, envelope, approach2)
    if degenerate(law):
        from llmplan.report.output import warn

        warn(f"the runs do not determine {', '.join(degenerate(law))} (on the edge of the search range or the same "
             "in every resample): the law below is not a result to plan with")
    if as_json:
        emit_json({**_payload(runs, law, budget, envelope, approach2), "influential": influence})
    else:
        _render(runs, law, budget, envelope, approach2)


def _influence(runs, law, delta: float) -> dict | None:
    """Warn when a few runs dominate the fit (a gross residual, or the law moving beyond its interval without
    them), and say which --drop-highest leaves them out."""
    from llmplan.fit import fit_chinchilla
    from llmplan.fit.chinchilla import MIN_RUNS
    from llmplan.fit.influence import GROSS_Z, drop_highest_for, influential_runs, moved, threshold
    from llmplan.report.output import warn

    flagged = influential_runs(law, runs.params, runs.tokens, runs.losses)
    if not flagged:
        return None
    out = {i for i in (x.index for x in flagged)}
    keep = [i for i in range(len(runs)) if i not in out]
    shifts: list[str] = []
    if len(keep) >= MIN_RUNS:
        try:
            refit = fit_chinchilla(*([getattr(runs, c)[i] for i in keep] for c in ("params", "tokens", "losses")),
                                   delta=delta)
            shifts = moved(law, refit, law.intervals)
        except LlmplanError:
            shifts = ["the law cannot be fitted without them"]
    dominant = bool(shifts) or any(abs(x.z) > GROSS_Z for x in flagged)
    k = drop_highest_for(flagged, len(runs), MIN_RUNS)
    info = {"runs": [{"params": x.params, "tokens": x.tokens, "loss": x.loss, "z": x.z, "loss_rank": x.loss_rank}
                     for x in flagged], "threshold": threshold(len(runs)), "dominant": dominant,
            "drop_highest": runs.dropped + k if k is not None else None, "moves_without_them": shifts}
    if not dominant:
        return info  # large residuals that do not move the law: noise, not a warning
    shown = ", ".join(f"N={format_count(x.params)} D={format_count(x.tokens)} loss {x.loss:.4g} (z {x.z:+.1f})"
                      for x in flagged[:3]) + (f" and {len(flagged) - 3} more" if len(flagged) > 3 else "")
    text = (f"{len(flagged)} run(s) dominate the fit (modified z-score of the log residual above "
            f"{threshold(len(runs)):.2g}): {shown}")
    text += f"; without them the law moves: {'; '.join(shifts)}" if shifts else ""
    if k is None:
        text += "; they are not the highest-loss runs, so --drop-highest cannot leave them out alone"
    else:
        total, covered = runs.dropped + k, sum(1 for x in flagged if x.loss_rank <= k)
        which = "them" if covered == len(flagged) else f"{covered} of them (the others are not high-loss runs)"
        text += f"; --drop-highest {total} leaves out {which}" + (
            f" with {k - covered} other high-loss run(s)" if k > covered else "")
    warn(text)
    return info


def _columns(runs):
    return runs.params, runs.tokens, runs.losses


def _bootstrap(bootstrap_chinchilla, runs, law, samples: int, seed: int):
    """Refit on resampled runs with a progress bar on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from llmplan.report.output import stderr_console

    import time

    # Say how long it will take before starting: time two refits first (a small cost against the whole).
    t0 = time.perf_counter()
    bootstrap_chinchilla(runs.params, runs.tokens, runs.losses, law, samples=2, seed=seed)
    predicted = (time.perf_counter() - t0) / 2 * samples
    if predicted > 10:
        from llmplan.report.output import warn
        from llmplan.units import format_seconds

        warn(f"bootstrap: {samples:,} refits of {len(runs)} runs will take about {format_seconds(predicted)} "
             "(Ctrl-C stops it; fewer --bootstrap resamples give rougher intervals sooner)")
    columns = (TextColumn("bootstrap"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=stderr_console(), transient=True) as bar:
        task = bar.add_task("bootstrap", total=samples)
        return bootstrap_chinchilla(runs.params, runs.tokens, runs.losses, law, samples=samples, seed=seed,
                                    progress=lambda done, total: bar.update(task, completed=done))
