"""`llmplan bench`: train real transformer blocks on this machine, measure throughput and memory beside llmplan's
predictions, fit throughput against size, and save a calibration profile for `compute` and `memory --profile`.

torch, numpy, scipy and matplotlib are imported only once the command runs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer

from llmplan.cli.app import command_app
from llmplan.cli.common import JSON_OPTION
from llmplan.errors import LlmplanError
from llmplan.report.output import emit_json, note, warn

DEFAULT_BUDGET = 180.0  # seconds; the same default as llmplan.bench.settings (not imported here: it loads torch)


class BenchProgress:
    """A rich progress bar with ETA on stderr. Ladder: the bar is the time budget (the run ends by then at the
    latest); a single model: the bar counts steps."""

    def __init__(self, total: float, by_time: bool):
        from rich.progress import (BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        from llmplan.report.output import stderr_console

        self.by_time, self.t0 = by_time, time.monotonic()
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=stderr_console(), transient=True)
        self.task = self.progress.add_task("bench", total=total)

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def __call__(self, kind: str, info: dict) -> None:
        from llmplan.units import format_count

        if kind == "start":
            spec = info["spec"]
            depth = info.get("layers") or spec.layers
            text = f"{spec.name} ({depth} layers, batch {info['batch']} x seq {info['seq']})"
            self.progress.update(self.task, description=text)
            if not self.progress.console.is_terminal:  # piped: no live bar, a line per phase instead
                elapsed = time.monotonic() - self.t0
                self.progress.console.print(f"[dim]measuring {text} ({elapsed:.0f} s in)[/dim]")
        elif kind == "done":
            r = info["result"]
            text = "did not fit in memory" if r.status != "ok" else f"{format_count(r.tokens_per_second)} tokens/s"
            self.progress.console.print(f"[dim]{r.name}: {format_count(r.params)} params, batch {r.batch}: "
                                        f"{text}[/dim]")
        if self.by_time:
            self.progress.update(self.task, completed=min(time.monotonic() - self.t0, self.progress.tasks[0].total))
        elif kind == "step":
            self.progress.advance(self.task)


def _check_path(path: Optional[Path], option: str, suffixes: tuple[str, ...] | None = None) -> Optional[Path]:
    if path is None:
        return None
    from llmplan.files import probe_writable

    probe_writable(path, option)  # a regular file or a new path that can be written, before anything is measured
    p = path.expanduser()
    if p.is_dir():
        raise LlmplanError(f"{option} {p} is a folder; give a file path")
    if suffixes and p.suffix.lower() not in suffixes:
        raise LlmplanError(f"{option} {p}: the file name must end in {', '.join(suffixes)}")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise LlmplanError(f"{option} {p}: {parent} is not a folder")
    return p


app = command_app()


@app.command("bench")
def bench(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Measure this model's exact shape (preset, "
                                        "config.json or folder): a few layers, extrapolated to full depth. "
                                        "Without it, a ladder of sizes is measured and fitted."),
    layers: Optional[int] = typer.Option(None, "--layers", help="With --model: layers to build (default: up to "
                                         "4); half as many are run too, to split fixed and per-layer cost."),
    batch: Optional[int] = typer.Option(None, "--batch", "-b", help="Micro-batch, sequences per step (default 8 "
                                        "on a GPU, 4 on CPU; 2 with --quick)."),
    seq: Optional[int] = typer.Option(None, "--seq", help="Tokens per sequence (default 2048 on a GPU, 256 on "
                                      "CPU; 64 with --quick; at most the model's context)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="fp32, bf16 or fp16 (default: bf16 autocast where "
                                        "supported, fp16 with loss scaling on pre-Ampere GPUs, fp32 on CPU)."),
    device: str = typer.Option("auto", "--device", help="auto, cuda (NVIDIA or ROCm), mps or cpu."),
    attention: str = typer.Option("flash", "--attention", help="flash (scaled_dot_product_attention) or eager "
                                  "(softmax(QK^T) materialised)."),
    recompute: str = typer.Option("none", "--recompute", help="Activation recomputation: none, selective "
                                  "(attention core) or full (every block)."),
    compile_: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the blocks "
                                            "(default: on for CUDA, off elsewhere)."),
    budget_seconds: Optional[float] = typer.Option(None, "--budget-seconds", help="Time budget of the whole "
                                                   f"ladder (default {DEFAULT_BUDGET:g}; 30 with --quick)."),
    quick: bool = typer.Option(False, "--quick", help="A short run: small batch, sequence and vocabulary, few "
                               "steps; well under a minute on a laptop CPU."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Timed steps per configuration (default 5; 3 with "
                                        "--quick)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Untimed warm-up steps (default 2, 3 when "
                                         "compiling; 1 with --quick)."),
    max_rungs: Optional[int] = typer.Option(None, "--max-rungs", help="Stop the ladder after this many sizes."),
    peak_tflops: Optional[float] = typer.Option(None, "--peak-tflops", help="Dense peak TFLOP/s of this device "
                                                "for MFU, when the catalog does not know it (or to override it)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the calibration profile here instead of "
                                       "the user data folder."),
    no_save: bool = typer.Option(False, "--no-save", help="Do not write a calibration profile."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a plot of measured throughput and the fit "
                                        "(.png, .svg or .pdf)."),
    scaling: bool = typer.Option(False, "--scaling", help="Scaling sweep instead: train an IsoFLOP grid of tiny "
                                 "models on real text, fit L(N, D), check it on a held-back run 4x larger. --out is "
                                 "then the output folder (runs.csv, law.json); --budget-seconds defaults to 900 (150 "
                                 "with --quick)."),
    data: Optional[Path] = typer.Option(None, "--data", help="With --scaling: a text file or folder of text "
                                        "files (default: the Python standard library's sources)."),
    save_law: Optional[Path] = typer.Option(None, "--save-law", help="With --scaling: also write the fitted law "
                                            "here, for `llmplan chinchilla --law PATH`."),
    nproc: Optional[int] = typer.Option(None, "--nproc", help="Start torchrun with N processes on this node "
                                        "(one per GPU, or gloo on CPU) and bench data-parallel training."),
    calibrate: bool = typer.Option(False, "--calibrate", help="Measure the kernels that calibrate the step-time "
                                   "and serving models instead: a GEMM curve over sizes, memory bandwidth, attention "
                                   "prefill and decode; with --nproc N also all-reduce, all-gather and reduce-scatter "
                                   "bus bandwidth. Merged into the device's profile (seconds on a CPU)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="Under torchrun or --nproc: ddp "
                                           "(DistributedDataParallel, default) or fsdp (FSDP2 full sharding)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Measure this machine: real training steps (forward, backward, AdamW) beside llmplan's predictions.

    Without --model: a ladder of model sizes within --budget-seconds, throughput fitted against size.

    With --model: a few layers of that model's shape at --batch and --seq, extrapolated to its full depth.

    A calibration profile is saved for `llmplan compute --profile auto` and `llmplan memory --profile auto`.

    Examples:

      llmplan bench --quick

      llmplan bench --budget-seconds 300 --plot bench.png

      llmplan bench --model llama-2-7b --layers 4 --batch 1 --seq 4096

      llmplan bench --device cpu --dtype fp32 --json --out cpu-profile.json

      llmplan bench --scaling --quick

      llmplan bench --calibrate --quick

      llmplan bench --calibrate --nproc 2 --device cpu --quick

      llmplan bench --nproc 2 --strategy fsdp --model llama-2-7b --layers 2
    """
    import warnings

    # torch.cuda imports the deprecated pynvml shim, which warns on every run; the facts it gives are still right.
    warnings.filterwarnings("ignore", message="The pynvml package is deprecated")
    if calibrate:
        from llmplan.cli.bench_calibrate import run_calibrate

        given = {"--model": model, "--layers": layers, "--batch": batch, "--seq": seq, "--attention": None
                 if attention == "flash" else attention, "--recompute": None if recompute == "none" else recompute,
                 "--compile/--no-compile": compile_, "--budget-seconds": budget_seconds, "--max-rungs": max_rungs,
                 "--plot": plot, "--scaling": scaling or None, "--data": data, "--save-law": save_law,
                 "--strategy": strategy}
        return run_calibrate(device=device, dtype=dtype, quick=quick, steps=steps, warmup=warmup,
                             peak_tflops=peak_tflops, nproc=nproc, out=out, no_save=no_save, as_json=as_json,
                             unsupported=[k for k, v in given.items() if v is not None], argv=sys.argv[1:])
    if scaling:
        from llmplan.cli.bench_scaling import run_scaling

        given = {"--model": model, "--layers": layers, "--batch": batch, "--seq": seq, "--nproc": nproc,
                 "--strategy": strategy, "--plot": plot, "--max-rungs": max_rungs}
        return run_scaling(quick=quick, budget_seconds=budget_seconds, data=str(data) if data else None,
                           device=device, out=out, save_law=save_law, as_json=as_json,
                           unsupported=[k for k, v in given.items() if v is not None])
    if data is not None or save_law is not None:
        raise LlmplanError("--data and --save-law go with --scaling")
    from llmplan.bench.distributed import dist_env

    if nproc is not None or strategy is not None or dist_env() is not None:
        from llmplan.cli.bench_distributed import run_distributed

        ignored = {"--plot": plot, "--no-save": no_save or None, "--peak-tflops": peak_tflops,
                   "--max-rungs": max_rungs, "--budget-seconds": budget_seconds, "--compile/--no-compile": compile_}
        unused = [k for k, v in ignored.items() if v is not None]
        if unused:
            raise LlmplanError(f"a distributed bench trains one model and writes one report; {', '.join(unused)} "
                               "do(es) not apply (accepted with it: --model, --layers, --batch, --seq, --dtype, "
                               "--device, --attention, --recompute, --quick, --steps, --warmup, --strategy, "
                               "--out, --json)")

        options = dict(model=model, layers=layers, batch=batch, seq=seq, dtype=dtype, device=device,
                       attention=attention, recompute=recompute, quick=quick, steps=steps, warmup=warmup)
        return run_distributed(options, strategy, nproc, out, as_json, sys.argv[1:])
    from llmplan.bench.settings import resolve_settings, run_bench

    out = _check_path(out, "--out", (".json",))
    from llmplan.report.plot_bench import PLOT_SUFFIXES

    plot = _check_path(plot, "--plot", PLOT_SUFFIXES)
    if no_save and out:
        raise LlmplanError("give --out PATH or --no-save, not both")
    settings = resolve_settings(model=model, layers=layers, batch=batch, seq=seq, dtype=dtype, device=device,
                                attention=attention, recompute=recompute, compile_=compile_,
                                budget_seconds=budget_seconds, quick=quick, steps=steps, warmup=warmup,
                                max_rungs=max_rungs, peak_tflops=peak_tflops)
    from llmplan.bench.settings import preflight

    plan = preflight(settings)  # a run that cannot fit is refused here, in one line, before any note
    for n in settings.device.notes:
        note(n)
    note(f"bench: {plan}")  # what will run, its memory and time, before it starts
    total = settings.budget_seconds if settings.mode == "ladder" else settings.model_steps
    with BenchProgress(total, by_time=settings.mode == "ladder") as progress:
        report = run_bench(settings, on_event=progress, argv=sys.argv)
    measured = any(r["status"] == "ok" for r in report["runs"])
    if report["interrupted"]:
        if not measured:  # no empty table as a result: say that nothing was measured
            warn("interrupted before any configuration was measured: nothing to report or save")
            raise typer.Exit(130)
        warn("interrupted: keeping the configurations measured so far")
    unsaved = None
    try:
        _save(report, no_save, out, plot, measured)
    except LlmplanError as exc:  # the measurements stay printed; the run fails with the reason
        unsaved = exc
    if as_json:
        emit_json(report)
    else:
        from llmplan.report.bench_views import render_bench

        render_bench(report)
    if unsaved is not None:
        raise unsaved
    if report["interrupted"]:
        raise typer.Exit(130)  # what was measured is printed and saved; the status says the run was cut short


def _save(report: dict, no_save: bool, out, plot, measured: bool) -> None:
    """The profile and the plot, written after the run (their paths were checked before it)."""
    if not no_save and measured:
        from llmplan.calibration import merge_profile, profile_at, save_profile

        from llmplan.bench.settings import default_profile_path, profile_data

        target = out or default_profile_path(report)  # what a calibration saved there before is kept
        data = merge_profile(profile_at(target, report["device"]["name"]), profile_data(report))
        report["profile_path"] = str(save_profile(data, target))
    if plot is not None:
        from llmplan.report.plot_bench import plot_ladder

        report["plot_path"] = str(plot_ladder(report["runs"], report["fit"], plot, report["device"]["name"],
                                              report["device"]["peak_flops"]))
