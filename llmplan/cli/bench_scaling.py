"""`llmplan bench --scaling`: options -> a sweep (llmplan.bench.scaling) -> tables or one JSON object.

Called by the bench command; torch, numpy and scipy are imported only once a sweep runs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from llmplan.errors import LlmplanError
from llmplan.report.output import emit_json, kv_table, note, stdout_console, table, warn
from llmplan.units import format_count, format_flops, format_seconds

QUICK = {"recipe": {"seq": 64, "batch": 16, "eval_tokens": 16_384}, "budgets": 3, "sizes": 4, "seconds": 150.0,
         "bootstrap": 50}
FULL = {"recipe": {"seq": 128, "batch": 32, "eval_tokens": 65_536}, "budgets": 4, "sizes": 5, "seconds": 900.0,
        "bootstrap": 100}
GPU_RECIPE = {"seq": 256, "batch": 64, "eval_tokens": 262_144}  # a GPU step costs the same for 16 k tokens as for 4 k


class RichProgress:
    """A progress bar on stderr: which run of how many, and the steps of the current one."""

    def __init__(self, enabled: bool = True):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from llmplan.report.output import stderr_console

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=stderr_console(), disable=not enabled, transient=True)
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def plan(self, runs: int) -> None:
        pass

    def start(self, index: int, total: int, run, label: str) -> None:
        text = f"{label} run {index}/{total}: {run.spec.name} ({format_count(run.params)} params, " \
               f"{format_flops(run.budget_flops)} FLOPs)"
        if self.task is None:
            self.task = self.progress.add_task(text, total=run.steps)
        else:
            self.progress.reset(self.task, total=run.steps, description=text)

    def step(self, done: int, steps: int) -> None:
        self.progress.update(self.task, completed=done)

    def done(self, result) -> None:
        self.progress.console.print(f"[dim]{result.name}: held-out loss {result.loss:.4f} after "
                                    f"{format_count(result.tokens)} tokens ({format_seconds(result.seconds)})[/dim]")

    def note(self, message: str) -> None:
        self.progress.console.print(f"[dim]note:[/dim] {message}")


def run_scaling(quick: bool, budget_seconds: float | None, data: str | None, device: str, out: Path | None,
                save_law: Path | None, as_json: bool, budgets: int | None = None, sizes: int | None = None,
                max_flops: float | None = None, seed: int = 0, max_corpus_bytes: int | None = None,
                progress: bool = True, unsupported: list[str] | None = None,
                recipe_overrides: dict | None = None) -> None:
    """Run the sweep and print it (tables, or one JSON object); runs.csv and law.json go to `out`."""
    import time

    started = time.perf_counter()
    from llmplan.bench import scaling_io
    from llmplan.bench.corpus import load_corpus
    from llmplan.bench.device import detect_device
    from llmplan.bench.scaling import isoflop_minima, optimal_points, run_sweep
    from llmplan.bench.scaling_grid import VALIDATION_FACTOR, Recipe

    from llmplan.bench.distributed import dist_env

    if unsupported:
        raise LlmplanError(f"--scaling trains its own grid of tiny models; {', '.join(unsupported)} do(es) not "
                           "apply (accepted with it: --quick, --budget-seconds, --data, --device, --out, "
                           "--save-law, --json)")
    if dist_env() is not None:
        raise LlmplanError("--scaling runs in one process; start it without torchrun")
    mode = QUICK if quick else FULL
    n_budgets, per_budget = budgets or mode["budgets"], sizes or mode["sizes"]
    if n_budgets < 2 or per_budget < 2:
        raise LlmplanError("a scaling sweep needs at least 2 budgets and 2 sizes per budget")
    from llmplan.bench.settings import check_budget_seconds

    check_budget_seconds(budget_seconds)
    if max_flops is not None and max_flops <= 0:
        raise LlmplanError(f"--max-flops must be greater than zero, got {max_flops}")
    out = out.expanduser() if out else scaling_io.default_output_dir()
    save_law = save_law.expanduser() if save_law else None
    scaling_io.check_output_paths(out, save_law)
    corpus = load_corpus(data, max_bytes=max_corpus_bytes)
    dev = detect_device(device)
    shape = GPU_RECIPE if dev.kind == "cuda" and not quick else mode["recipe"]
    recipe = replace(Recipe(), seed=seed, **{**shape, **(recipe_overrides or {})})
    seconds = budget_seconds or mode["seconds"]
    seconds = max(seconds - (time.perf_counter() - started), 1.0)  # the budget counts from the command's start
    note(f"corpus: {corpus.description}; {format_count(corpus.n_bytes)} bytes = tokens "
         f"({format_count(len(corpus.heldout))} held out)")
    with RichProgress(enabled=progress) as bar:
        result = run_sweep(corpus, recipe, dev.torch_device, n_budgets, per_budget,
                           budget_seconds=None if max_flops else seconds, max_budget=max_flops,
                           bootstrap=mode["bootstrap"], progress=bar)
    result = replace(result, device=dev.name)
    files = scaling_io.write_outputs(result, out, save_law)
    budgets_done = sorted({r.budget_flops for r in result.runs})
    optimal = []
    if result.fit is not None and budgets_done:
        optimal = optimal_points(result.fit, budgets_done + [VALIDATION_FACTOR * budgets_done[-1]])
    isoflop = isoflop_minima(list(result.runs))
    if as_json:
        emit_json(scaling_io.sweep_json(result, optimal, files, isoflop))
    else:
        render(result, optimal, files, isoflop)
    if result.interrupted:  # what finished is printed and kept; the status says the sweep was cut short
        import typer

        warn(f"interrupted: {len(result.runs)} finished runs kept in {files['runs_csv']}")
        raise typer.Exit(130)


def render(result, optimal: list[dict], files: dict[str, str], isoflop: list[dict] | None = None) -> None:
    console = stdout_console()
    c = result.corpus
    console.print(kv_table("Scaling sweep", [
        ("device", result.device), ("corpus", c["description"]),
        ("tokens", f"{format_count(c['tokens'])} bytes ({format_count(c['heldout_tokens'])} held out)"),
        ("recipe", (f"AdamW, warm-up {result.recipe['warmup_fraction']:.0%} then cosine to "
                    f"{result.recipe['final_lr_fraction']:.0%}, {result.recipe['learning_rate_rule']}, "
                    f"seed {result.recipe['seed']}")),
        ("runs", f"{len(result.runs)} in {format_seconds(result.seconds)}")]))
    rows = [[format_flops(r.budget_flops), r.name, format_count(r.params), format_count(r.tokens),
             f"{r.tokens / r.params:.3g}", f"{r.loss:.4f}", format_seconds(r.seconds)] for r in result.runs]
    console.print(table("Runs (held-out loss, nats per byte)",
                        ["budget (6ND)", "model", "params", "tokens", "D/N", "loss", "time"], rows, 2))
    fit = result.fit
    if fit is None:
        console.print("No fit: too few runs finished.")
    else:
        iv = fit.intervals or {}
        def with_iv(k: str, v: float) -> str:
            return f"{v:.4g}" + (f"  [{iv[k][0]:.3g}, {iv[k][1]:.3g}]" if k in iv else "")
        console.print(kv_table("Fitted L(N, D) = E + A/N^alpha + B/D^beta" + (
            f" ({fit.interval_level:.0%} bootstrap intervals)" if iv else ""),
            [(k, with_iv(k, getattr(fit, k))) for k in ("E", "A", "B", "alpha", "beta", "a", "b")]
            + [("residual RMS (log loss)", f"{fit.residual_rms:.4f}"), ("runs", str(fit.n_runs))]))
        console.print(table("Compute-optimal size for this data and hardware",
                            ["FLOPs", "params", "tokens", "tokens per param"],
                            [[format_flops(p["flops"]), format_count(p["params"]), format_count(p["tokens"]),
                              f"{p['tokens_per_param']:.3g}"] for p in optimal]))
    if isoflop:
        rows = [[format_flops(g["flops"]), format_count(g["params_opt"]) if g["params_opt"] else "-",
                 f"{g['tokens_per_param']:.3g}" if g["tokens_per_param"] else "-",
                 f"{g['loss_opt']:.4f}" if g["loss_opt"] else "-", g["note"] or "ok"] for g in isoflop]
        console.print(table("IsoFLOP minima: a parabola in log N per budget (Approach 2, a check on the fit)",
                            ["budget", "params", "tokens per param", "loss", "note"], rows, 1))
    p = result.prediction
    if p:
        measured = "not run" if p["measured_loss"] is None else f"{p['measured_loss']:.4f}"
        error = "" if p["relative_error"] is None else f"{p['relative_error']:+.1%}"
        console.print(kv_table("Validation: a held-back run at 4x the largest budget", [
            ("run", (f"{p['name']}: {format_count(p['params'])} params, {format_count(p['tokens'])} tokens, "
                     f"{format_flops(p['flops'])} FLOPs")),
            ("predicted loss (before training)", f"{p['predicted_loss']:.4f}"),
            ("measured loss", measured), ("prediction error", error)]))
    for key, path in files.items():
        console.print(f"wrote {key.replace('_', ' ')}: {path}")
    for a in result.assumptions:
        note(a)
