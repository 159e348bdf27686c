"""`llmplan chinchilla`: compute-optimal sizing, a run's diagnosis, frontiers, inference-aware and data-constrained
variants, under several scaling laws side by side."""

from __future__ import annotations

from typing import Optional

import typer
from rich.markup import escape

from llmplan.cli import chinchilla_views as views
from llmplan.cli.app import command_app
from llmplan.cli.common import JSON_OPTION
from llmplan.cli.held_notes import HeldNotes
from llmplan.errors import LlmplanError
from llmplan.estimate import data_constrained as dc
from llmplan.estimate import sizing
from llmplan.estimate.inference_aware import inference_aware
from llmplan.estimate.laws import COMPARED, Law, get_law
from llmplan.estimate.timecost import DEFAULT_MFU  # the same default as `llmplan compute`
from llmplan.report.output import emit_json, note, stdout_console
from llmplan.units import PFLOPS_DAY, format_count, format_flops, parse_count, parse_dtype, parse_int_count

LOSS_LAWS = ("hoffmann", "epoch")  # the compared laws that predict a loss (same data set, MassiveText)
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _budget(flops: Optional[str], pf_days: Optional[str], gpu: Optional[str], gpus: Optional[int],
            days: Optional[float], mfu: Optional[float], dtype: Optional[str],
            notes: HeldNotes) -> tuple[list[float] | None, dict | None]:
    """The budget as a list of FLOPs (one value, or a frontier range) and a description of where it came from.
    Notes for the user are collected in `notes`, printed once every input has been checked."""
    given = [name for name, v in (("--flops", flops), ("--pf-days", pf_days), ("--gpu", gpu)) if v is not None]
    if len(given) > 1:
        raise LlmplanError(f"give one budget, not {' and '.join(given)}: --flops C, --pf-days P, or --gpu with --days")
    if gpu is None and (gpus is not None or days is not None or mfu is not None):
        raise LlmplanError("--gpus, --days and --mfu describe a GPU budget: add --gpu NAME (e.g. --gpu h100)")
    if flops is not None:
        if ".." in flops:
            low_text, _, high_text = flops.partition("..")
            low = parse_count(low_text, "--flops (low end)")
            high = parse_count(high_text, "--flops (high end)")
            return None, {"range": (low, high), "source": "flops"}
        return [parse_count(flops, "--flops")], {"source": "flops"}
    if pf_days is not None:
        value = parse_count(pf_days, "--pf-days")
        # 1 PF/s-day = 8.64e19 FLOPs (Brown et al. 2020, Appendix D)
        return [value * PFLOPS_DAY], {"source": "pf-days", "pf_days": value}
    if gpu is not None:
        from llmplan.estimate.flops import flops_budget
        from llmplan.hardware import parse_gpu

        if days is None:
            raise LlmplanError("a GPU budget needs --days (e.g. --gpu h100 --gpus 256 --days 30)")
        if not 0 < days <= 36_525:
            raise LlmplanError(f"--days must be a number of days greater than zero and at most a century, got "
                               f"{days:g}")
        if gpus is not None and gpus < 1:
            raise LlmplanError(f"--gpus must be at least 1, got {gpus if abs(gpus) < 10**12 else 'a huge number'}")
        n = 1 if gpus is None else parse_int_count(str(gpus), "--gpus")  # bounded as in every command
        used_mfu = DEFAULT_MFU if mfu is None else mfu
        device = parse_gpu(gpu)
        if dtype is None:  # bf16, or fp16 on a GPU without bf16 (V100), as `llmplan compute` does
            dtype = "bf16" if device.peak("bf16") is not None or device.peak("fp16") is None else "fp16"
        total = flops_budget(device, n, days * 86_400.0, used_mfu, dtype)
        if mfu is None:
            notes.add(f"assuming MFU {DEFAULT_MFU:.0%} of the dense {dtype} peak; pass --mfu to change it")
        return [total], {"source": "gpus", "gpu": gpu, "gpus": n, "days": days, "mfu": used_mfu, "dtype": dtype}
    return None, None


def _laws(chosen: Law, names: tuple[str, ...]) -> dict[str, Law]:
    out = {chosen.name: chosen}
    for name in names:
        out.setdefault(name, get_law(name))
    return out


def _pick_law(law: Optional[str], needs_loss: str | None, notes: HeldNotes) -> Law:
    if law is not None:
        return get_law(law)
    if needs_loss:
        notes.add(f"using the {needs_loss} law, which predicts a loss (rule20 does not); pass --law to choose")
        return get_law(needs_loss)
    return get_law("rule20")


def _common(chosen: Law, question: str, assumptions: list[str]) -> dict:
    return {"question": question, "law": chosen.name, "law_source": chosen.source, "law_form": chosen.describe(),
            "assumptions": assumptions}


app = command_app()


@app.command("chinchilla")
def chinchilla(
    flops: Optional[str] = typer.Option(None, "--flops", "-c", help="Training budget in FLOPs (1e23), or a range "
                                        "LOW..HIGH (1e19..1e26) for a frontier."),
    pf_days: Optional[str] = typer.Option(None, "--pf-days", help="Training budget in petaFLOP/s-days "
                                          "(8.64e19 FLOPs)."),
    gpu: Optional[str] = typer.Option(None, "--gpu", help="Budget from hardware: GPU name (see `llmplan hardware`)."),
    gpus: Optional[int] = typer.Option(None, "--gpus", help="Number of GPUs for a --gpu budget (default 1)."),
    days: Optional[float] = typer.Option(None, "--days", help="Wall-clock days for a --gpu budget."),
    mfu: Optional[float] = typer.Option(None, "--mfu", help="Model FLOPs utilisation for a --gpu budget "
                                        "(default 0.4)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="Precision whose dense peak a --gpu budget uses "
                                        "(default bf16; fp16 on GPUs without bf16)."),
    params: Optional[str] = typer.Option(None, "--params", "-p", help="Model size (70B): alone, the compute-optimal "
                                         "tokens; with --tokens, a diagnosis of that run."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="A model instead of --params (preset, "
                                        "config.json or folder, as in the other commands): its exact parameter "
                                        "count."),
    tokens: Optional[str] = typer.Option(None, "--tokens", "-t", help="Training tokens of the run given by --params."),
    law: Optional[str] = typer.Option(None, "--law", help="rule20 (default), hoffmann, epoch, kaplan, muennighoff, "
                                      "or a law.json from `llmplan fit --save` / `llmplan bench --scaling`."),
    inference_tokens: Optional[str] = typer.Option(None, "--inference-tokens", help="Tokens the model will serve "
                                                   "over its life (2T): size it for training + inference FLOPs."),
    loss: Optional[float] = typer.Option(None, "--loss", help="Target loss for --inference-tokens, instead of the "
                                         "loss of --params trained compute-optimally."),
    unique_tokens: Optional[str] = typer.Option(None, "--unique-tokens", help="Unique tokens available (data-"
                                                "constrained: repeated epochs are worth less)."),
    per_decade: int = typer.Option(1, "--per-decade", help="Frontier points per decade of FLOPs."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Write the frontier as a figure (PATH.png, .pdf, .svg)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Compute-optimal model size and data for a budget, under several scaling laws side by side.

    Examples:

      llmplan chinchilla --flops 5.76e23

      llmplan chinchilla --gpu h100 --gpus 256 --days 30 --mfu 0.4

      llmplan chinchilla --params 70B

      llmplan chinchilla --params 175B --tokens 300B

      llmplan chinchilla --model llama-2-7b --tokens 2T

      llmplan chinchilla --flops 1e19..1e26 --plot frontier.png

      llmplan chinchilla --params 7B --inference-tokens 2T --law hoffmann

      llmplan chinchilla --flops 1e22 --unique-tokens 100B

      llmplan chinchilla --flops 1e22 --law examples/law.json --json
    """
    # Validate every input before computing or writing anything.
    if model is not None:
        if params is not None:
            raise LlmplanError("give either --model or --params, not both")
        from llmplan.cli.common import model_from_options
        from llmplan.models import count_params

        params = str(count_params(model_from_options(model, None)).total)  # every parameter, as the laws count
    if tokens is not None and params is None:
        raise LlmplanError("--tokens needs --params (the run's model size), e.g. --params 175B --tokens 300B")
    if loss is not None and inference_tokens is None:
        raise LlmplanError("--loss sets the target quality for --inference-tokens; add --inference-tokens T")
    if inference_tokens is not None and unique_tokens is not None:
        raise LlmplanError("--inference-tokens and --unique-tokens are separate questions; give one of them")
    dtype = parse_dtype(dtype) if dtype is not None else None
    if not 1 <= per_decade <= 20:
        raise LlmplanError(f"--per-decade must be between 1 and 20, got {per_decade}")
    notes = HeldNotes()
    budgets, budget_info = _budget(flops, pf_days, gpu, gpus, days, mfu, dtype, notes)
    frontier_range = budget_info.get("range") if budget_info else None
    if plot is not None:
        if frontier_range is None:
            raise LlmplanError("--plot draws a frontier: give a budget range, e.g. --flops 1e19..1e26")
        if not plot.lower().endswith(PLOT_SUFFIXES):
            raise LlmplanError(f"--plot {plot!r}: the file name must end in {', '.join(PLOT_SUFFIXES)}")
        from llmplan.files import check_writable_target

        check_writable_target(plot, "--plot")  # a regular file or a new path, before any work
    if frontier_range is not None and (params is not None or inference_tokens is not None or unique_tokens):
        raise LlmplanError("a budget range (--flops LOW..HIGH) draws a frontier; it does not combine with --params, "
                           "--inference-tokens or --unique-tokens")
    n = parse_count(params, "--params") if params is not None else None
    d = parse_count(tokens, "--tokens") if tokens is not None else None

    if inference_tokens is not None:
        t = parse_count(inference_tokens, "--inference-tokens", allow_zero=True)
        if (n is None) == (loss is None):
            raise LlmplanError("--inference-tokens needs the target quality: --params N (that model trained "
                               "compute-optimally) or --loss L, one of them")
        if budgets is not None or d is not None:
            raise LlmplanError("--inference-tokens takes --params or --loss only (no budget, no --tokens)")
        return _inference(_pick_law(law, "hoffmann", notes), n, loss, t, notes, as_json)
    if unique_tokens is not None:
        u = parse_count(unique_tokens, "--unique-tokens")
        if n is None and budgets is None:
            raise LlmplanError("--unique-tokens needs a budget (--flops, --pf-days, --gpu) or a run (--params)")
        if n is not None and budgets is not None:
            raise LlmplanError("give a budget or --params with --unique-tokens, not both")
        return _data_constrained(_pick_law(law, "muennighoff", notes), u, n, d, budgets[0] if budgets else None,
                                 budget_info, notes, as_json)
    chosen = _pick_law(law, None, notes)
    laws = _laws(chosen, COMPARED)
    if frontier_range is not None:
        return _frontier(chosen, laws, frontier_range, per_decade, plot, notes, as_json)
    if n is not None and budgets is not None:
        raise LlmplanError("give a budget (--flops, --pf-days, --gpu) or --params, not both")
    if n is not None and d is not None:
        return _diagnosis(chosen, laws, n, d, notes, as_json)
    if n is not None:
        rows = {name: sizing.data_for_size(lw, n) for name, lw in laws.items()}
        return _sizings(chosen, rows, "size", f"Compute-optimal data for {format_count(n)} parameters", None,
                        notes, as_json)
    if budgets is not None:
        rows = {name: sizing.size_for_budget(lw, budgets[0]) for name, lw in laws.items()}
        return _sizings(chosen, rows, "budget", f"Compute-optimal size for {format_flops(budgets[0])} FLOPs",
                        budget_info, notes, as_json)
    raise LlmplanError("nothing to plan: give a budget (--flops C, --flops LOW..HIGH, --pf-days P, or --gpu G "
                       "--gpus N --days D) or a model (--params N, optionally with --tokens D)")


ASSUME_6ND = "training FLOPs C = 6 N D (Kaplan et al. 2020); attention and embedding FLOPs ignored"
ASSUME_KAPLAN = "kaplan counts non-embedding parameters; the other laws count all parameters"


def _sizings(chosen: Law, rows: dict, question: str, title: str, budget_info: dict | None, notes: HeldNotes,
             as_json: bool) -> None:
    main = rows[chosen.name]
    notes.flush()
    assumptions = [ASSUME_6ND, ASSUME_KAPLAN]
    if as_json:
        payload = {**_common(chosen, question, assumptions), **views.sizing_json(main),
                   "laws": {name: views.sizing_json(s) for name, s in rows.items()}}
        if budget_info:
            payload["budget"] = budget_info
        emit_json(payload)
        return
    console = stdout_console()
    console.print(views.sizing_table(title, rows))
    _footer(console, chosen, assumptions)


def _diagnosis(chosen: Law, laws: dict[str, Law], n: float, d: float, notes: HeldNotes,
               as_json: bool) -> None:
    rows = {name: sizing.diagnose(lw, n, d) for name, lw in laws.items()}
    notes.flush()
    main = rows[chosen.name]
    assumptions = [ASSUME_6ND, ASSUME_KAPLAN,
                   f"near compute-optimal: tokens per parameter within a factor {sizing.NEAR_OPTIMAL_FACTOR:g} of "
                   "the law's optimum at the run's own FLOPs"]
    if as_json:
        emit_json({**_common(chosen, "diagnosis", assumptions), **views.diagnosis_json(main),
                   "laws": {name: views.diagnosis_json(x) for name, x in rows.items()}})
        return
    console = stdout_console()
    title = (f"{format_count(n)} parameters on {format_count(d)} tokens: {format_flops(main.flops)} FLOPs, "
             f"{views.ratio_text(main.tokens_per_param)} tokens/param")
    console.print(views.diagnosis_table(title, rows))
    advice = {sizing.UNDERTRAINED: "a smaller model on more tokens would reach a lower loss for the same FLOPs",
              sizing.NEAR_OPTIMAL: "close to the best loss these FLOPs can buy",
              sizing.PAST_OPTIMUM: "more loss than the FLOPs could buy, but a smaller model is cheaper to serve"}
    console.print(f"verdict ({escape(chosen.name)}): [bold]{main.verdict}[/bold]: {advice[main.verdict]}")
    _footer(console, chosen, assumptions)


def _frontier(chosen: Law, laws: dict[str, Law], bounds: tuple[float, float], per_decade: int,
              plot: str | None, notes: HeldNotes, as_json: bool) -> None:
    budgets = sizing.decade_budgets(bounds[0], bounds[1], per_decade)
    series = {name: sizing.frontier(lw, budgets) for name, lw in laws.items()}
    notes.flush()
    if plot is not None:
        from llmplan.report.plot_frontier import plot_frontier

        plot_frontier(plot, series, chosen.name)
    assumptions = [ASSUME_6ND, ASSUME_KAPLAN]
    if as_json:
        emit_json({**_common(chosen, "frontier", assumptions), **views.frontier_json(series[chosen.name]),
                   "laws": {name: views.frontier_json(rows) for name, rows in series.items()}, "plot": plot})
        return
    console = stdout_console()
    console.print(views.frontier_table("Compute-optimal frontier (params / tokens)", series, chosen.name))
    if plot is not None:
        note(f"wrote {plot}")
    _footer(console, chosen, assumptions)


def _inference(chosen: Law, n: float | None, target: float | None, t: float, notes: HeldNotes,
               as_json: bool) -> None:
    names = (chosen.name,) + tuple(x for x in LOSS_LAWS if x != chosen.name)
    rows = {}
    for name in names:
        lw = get_law(name) if name != chosen.name else chosen
        goal = target if target is not None else lw.loss(n, lw.optimal_tokens(n)) if lw.has_loss else None
        try:
            rows[name] = inference_aware(lw, t, goal if goal is not None else float("nan"))
        except LlmplanError as exc:
            if name == chosen.name:
                raise
            notes.add(f"{name}: {exc}", "warn")
    notes.flush()
    main = rows[chosen.name]
    assumptions = [ASSUME_6ND, *main.assumptions]
    if as_json:
        emit_json({**_common(chosen, "inference-aware", assumptions), **views.inference_json(main),
                   "laws": {name: views.inference_json(r) for name, r in rows.items()}})
        return
    console = stdout_console()
    goal_text = (f"loss {target:.4f}" if target is not None
                 else f"the loss of {format_count(n)} trained compute-optimally")
    console.print(views.inference_table(f"Least training + inference FLOPs for {goal_text}, serving "
                                        f"{format_count(t)} tokens", rows))
    _footer(console, chosen, assumptions)


def _data_constrained(chosen: Law, u: float, n: float | None, d: float | None, budget: float | None,
                      budget_info: dict | None, notes: HeldNotes, as_json: bool) -> None:
    result = dc.data_constrained(chosen, u, params=n, tokens=d, flops=budget)
    main = result.best if budget is not None else result.run
    others = {}
    for name in ("muennighoff", *LOSS_LAWS):
        if name != chosen.name:
            other = dc.data_constrained(get_law(name), u, params=n, tokens=d, flops=budget)
            others[name] = other.best if budget is not None else other.run
    notes.flush()
    assumptions = [ASSUME_6ND, *result.assumptions]
    if as_json:
        payload = {**_common(chosen, "data-constrained", assumptions), **views.dc_point_json(main),
                   "best_allocation": views.dc_point_json(result.best),
                   "compute_optimal_ignoring_repeats": views.dc_point_json(result.unconstrained),
                   "laws": {chosen.name: views.dc_point_json(main),
                            **{name: views.dc_point_json(p) for name, p in others.items()}}}
        if result.run is not None:
            payload["run"] = views.dc_point_json(result.run)
        if budget_info:
            payload["budget"] = budget_info
        emit_json(payload)
        return
    rows = {}
    if result.run is not None:
        rows["your run"] = result.run
    rows["best for the FLOPs"] = result.best
    rows["optimal ignoring repeats"] = result.unconstrained
    console = stdout_console()
    console.print(views.data_constrained_table(
        f"Data-constrained ({chosen.name}): {format_count(u)} unique tokens, {format_flops(result.best.flops)} FLOPs",
        rows))
    which = "best allocation" if budget is not None else "your run"
    console.print(views.data_constrained_table(f"Other laws ({which}, Muennighoff's decay constants)", others))
    _footer(console, chosen, assumptions)


def _footer(console, chosen: Law, assumptions: list[str]) -> None:
    console.print(f"[dim]{escape(f'law {chosen.name}: {chosen.describe()}; {chosen.source}')}[/dim]")
    for a in assumptions:
        console.print(f"[dim]assumption:[/dim] {escape(a)}")
