"""`llmplan bench --calibrate`: the kernel measurements that calibrate the step-time and serving models (GEMM
curve, memory bandwidth, attention prefill and decode), and with --nproc the collectives' bus bandwidth; merged into
the device's calibration profile. torch is imported only once it runs."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from llmplan.errors import LlmplanError
from llmplan.report.output import emit_json, note, warn

ACCEPTED = ("--device", "--dtype", "--quick", "--steps", "--warmup", "--peak-tflops", "--nproc", "--out",
            "--no-save", "--json")


class _Progress:
    """A bar over the plan's measurements (stderr, transient), or nothing when `total` is 0."""

    def __init__(self, total: int):
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        from llmplan.report.output import stderr_console

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                 TimeElapsedColumn(), console=stderr_console(), transient=True)
        self.task = self.progress.add_task("calibration", total=total)
        self.started = False

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def __call__(self, what: str) -> None:
        if self.started:
            self.progress.advance(self.task)
        self.started = True
        self.progress.update(self.task, description=what)


def run_calibrate(device: str, dtype: str | None, quick: bool, steps: int | None, warmup: int | None,
                  peak_tflops: float | None, nproc: int | None, out: Path | None, no_save: bool, as_json: bool,
                  unsupported: list[str], argv: list[str]) -> None:
    from llmplan.bench.distributed import dist_env

    if unsupported:
        raise LlmplanError(f"--calibrate measures kernels, not a model: {', '.join(unsupported)} do(es) not apply "
                           f"(accepted with it: {', '.join(ACCEPTED)})")
    if no_save and out:
        raise LlmplanError("give --out PATH or --no-save, not both")
    if out is not None:
        from llmplan.cli.bench_cmd import _check_path

        out = _check_path(out, "--out", (".json",))
    for value, option in ((steps, "--steps"), (nproc, "--nproc")):
        if value is not None and value < 1:
            raise LlmplanError(f"{option} must be a whole number of at least 1, got {value}")
    if warmup is not None and warmup < 0:
        raise LlmplanError(f"--warmup must be zero or more, got {warmup}")
    from llmplan.bench.device import detect_device

    env = dist_env()
    dev = detect_device(device, dtype=dtype, peak_tflops=peak_tflops,
                        index=env.local_rank if env is not None and device != "cpu" else 0)
    if dev.kind == "mps" and (nproc or env):
        raise LlmplanError("collectives are measured on CUDA GPUs (NCCL) or CPUs (gloo), not Apple MPS")
    if nproc is not None and env is None:
        return _launch(dev, nproc, argv)
    if env is not None and env.rank != 0:
        import warnings

        warnings.simplefilter("ignore")
    from llmplan.bench.kernels import measure_kernels, plan_for

    plan = plan_for(dev, quick)
    if steps or warmup is not None:
        from dataclasses import replace

        plan = replace(plan, repeats=steps or plan.repeats, warmup=plan.warmup if warmup is None else warmup)
    collectives = _collectives(dev, env, quick, plan) if env is not None else None
    if env is not None and env.rank != 0:
        return
    for n in dev.notes:
        if "MFU" not in n:  # no MFU here; GEMMs are put beside the peak where one is known
            note(n)
    note(f"calibrating {dev.name}: {len(plan.gemm_shapes) * len(plan.dtypes)} GEMMs "
         f"({', '.join(plan.dtypes)}), memory bandwidth, {len(plan.prefill)} prefill and {len(plan.decode)} decode "
         f"attention kernels; about {max(plan.predicted_seconds, 1):.0f} s")
    with _Progress(plan.count) as progress:
        measured = measure_kernels(dev, plan, on_step=progress)
    report = _report(dev, measured, collectives, argv)
    if measured["interrupted"]:
        warn("interrupted: keeping the kernels measured so far")
    if not no_save and (measured["gemm_curve"] or collectives):
        from llmplan.calibration import default_profile_path, merge_profile, profile_at, save_profile

        target = out or default_profile_path(dev.name)
        old, entries = profile_at(target, dev.name), profile_entries(report)
        report["profile_path"] = str(save_profile(merge_profile(old, entries) if old else fresh_profile(entries),
                                                  target))
    if as_json:
        emit_json(report)
    else:
        from llmplan.report.calibrate_views import render_calibration

        render_calibration(report)
    if measured["interrupted"]:
        import typer

        raise typer.Exit(130)


def _launch(dev, nproc: int, argv: list[str]) -> None:
    if nproc < 2:
        raise LlmplanError(f"--nproc {nproc}: collectives need at least 2 processes")
    if dev.kind == "cuda":
        import torch

        if nproc > torch.cuda.device_count():
            raise LlmplanError(f"--nproc {nproc}: only {torch.cuda.device_count()} GPU(s) visible; give --nproc "
                               f"{torch.cuda.device_count()} or less, or --device cpu")
    if "bench" not in argv:
        raise LlmplanError("--nproc relaunches the command line of this process, which is not `llmplan bench`; "
                           "run it from a shell")
    from llmplan.bench.launch import launch, strip_option

    note(f"starting torchrun: {nproc} processes on this node to measure collectives "
         f"({'NCCL' if dev.kind == 'cuda' else 'gloo'}); rank 0 then measures the kernels")
    launch(nproc, strip_option(argv[argv.index("bench"):], "--nproc"))


def _collectives(dev, env, quick: bool, plan) -> dict:
    from llmplan.bench.collectives import measure_collectives, sizes_for
    from llmplan.bench.distributed import abort_rank, init_process_group

    device = None
    try:
        device, backend = init_process_group(env, dev.kind)
        records, notes = measure_collectives(device, backend, sizes_for(dev.kind, quick), warmup=plan.warmup,
                                             repeats=plan.repeats, sample_seconds=plan.sample_seconds)
        import torch.distributed as dist

        dist.destroy_process_group()
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # one line from the rank that failed; torchrun stops the others
        abort_rank(exc, env, device)
    return {"records": records, "notes": notes, "backend": backend, "ranks": env.world_size}


def _report(dev, measured: dict, collectives: dict | None, argv: list[str]) -> dict:
    from llmplan import __version__

    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    try:
        import torch

        threads = torch.get_num_threads()
    except Exception:  # not reached: torch ran the measurements
        threads = None
    notes = list(measured["notes"]) + (collectives["notes"] if collectives else [])
    if collectives is None:
        notes.append("collectives not measured: add --nproc N (N processes on this node)")
    return {"schema_version": 1, "mode": "calibrate", "created": created, "argv": list(argv),
            "device": dev.as_dict(), "versions": {**dev.versions, "llmplan": __version__},
            "threads": threads, "gemm_curve": measured["gemm_curve"], "hbm_bytes_per_s": measured["hbm_bytes_per_s"],
            "memory_bandwidth": measured["memory_bandwidth"], "attention": measured["attention"],
            "collectives": collectives["records"] if collectives else [],
            "settings": measured["settings"], "seconds": measured["seconds"], "interrupted": measured["interrupted"],
            "notes": notes, "profile_path": None}


def profile_entries(report: dict) -> dict:
    """What a calibration adds to the device's profile (merged with what is already saved there)."""
    from llmplan.calibration import PROFILE_KIND, PROFILE_SCHEMA

    data = {"schema_version": PROFILE_SCHEMA, "kind": PROFILE_KIND, "device": report["device"],
            "versions": report["versions"],
            "calibration": {"kernels": {"created": report["created"], "argv": report["argv"],
                                        "seconds": report["seconds"], "threads": report["threads"],
                                        "settings": report["settings"], "interrupted": report["interrupted"],
                                        "notes": report["notes"]}}}
    if report["gemm_curve"]:
        data.update(gemm_curve=report["gemm_curve"], attention=report["attention"],
                    memory_bandwidth=report["memory_bandwidth"])
    if report["hbm_bytes_per_s"]:
        data["hbm_bytes_per_s"] = report["hbm_bytes_per_s"]
    if report["collectives"]:
        data["collectives"] = report["collectives"]
    return data


def fresh_profile(entries: dict) -> dict:
    """A profile holding only a calibration (no training runs yet)."""
    return {"created": entries["calibration"]["kernels"]["created"], "runs": [], "fit": None,
            "overhead_bytes": None, "overhead_method": "not measured: no training run in this profile", **entries}

