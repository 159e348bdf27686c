#!/usr/bin/env python
"""One-GPU check of `llmplan bench`, in a few minutes.

1. GPT-3 XL (Brown et al. 2020, Table 2.1: 24 layers, d_model 2048, 16 heads of 128; the `gpt3-1.3b` preset) at
   sequence 2048 in bf16 autocast with torch.compile (regional, per block), fused AdamW: MFU against the catalog's
   dense bf16 peak must reach 45%.
2. The same model without compilation: llmplan's memory prediction must be within 5% of
   torch.cuda.max_memory_allocated. The check is made on it, since llmplan's activation accounting
   describes PyTorch's eager operations; the compiled run's memory is reported beside it (compiled graphs choose
   for themselves what to save and what to recompute).
3. Calibration (benchmarks/gpu_calibration.py): the kernels `llmplan bench --calibrate` measures (GEMM curve in bf16
   and fp32, HBM bandwidth, attention prefill and decode), saved in profile.json under the step-time model's keys;
   the step-time model's prediction for three shapes against their measured single-GPU steps, within 5% (when
   this checkout has the model); memory of an MLA and a MoE block within 5% of max_memory_allocated (when the
   bench builds them).
4. A short ladder of sizes with a throughput fit and its leave-largest-out error, with the time that is left.
5. The scaling sweep (`llmplan bench --scaling`, benchmarks/gpu_scaling.py): its fit must predict the held-back
   larger run within 5%.
6. Two processes under torch.distributed, DDP and FSDP (benchmarks/gpu_distributed.py), when the machine has two
   GPUs or more; skipped, and said so, on one.

The whole script keeps to --budget-seconds (default 480): the calibration phases run only while the sweep's
shortest useful run still fits after them, the ladder gets what the sweep leaves, and the sweep is shortened; what
is skipped is said so. Results go to $OUT (or ./gpu-results, or --out), rewritten after every phase so that a
call cut short still returns what was measured: gpu-check.json (every measurement, device, versions, argv, the
seconds of each phase), gpu-check.md (a markdown snippet for docs/validation.md), profile.json (the GPU's calibration
profile with its kernel measurements: to be kept as benchmarks/results/<device>.json, where CPU tests check that the
planner reads a real GPU profile), and the sweep's
scaling/runs.csv and scaling/law.json. Exit status 0 when every check passes, 1 when one fails, 2 when no GPU is
present (use --dry-run to exercise the script on a CPU with a tiny shape). llmplan need not be installed: the
script and the commands it starts use this checkout (torch, numpy, scipy, typer and rich must be importable).

    python3 benchmarks/gpu_check.py                # on the GPU machine, from the repository root (results in $OUT)
    python3 benchmarks/gpu_check.py --dry-run --out /tmp/gpu-check  # anywhere: tiny shape, CPU, fp32, ~1.5 min
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

TARGET_MFU = 0.45             # the target; published bf16 anchors: MPT-1B on H100 41.8%, Llama 3.1 8B ~39%
MEMORY_TOLERANCE_PCT = 5.0    # |predicted - max_memory_allocated| / max_memory_allocated
# One device call: 8 minutes in all, so that a call with its machine start fits a 15-minute device budget with time
# for a shortened rerun. Expected on one H200: XL compiled ~1.5 min (compilation of one block shape, 13 steps of
# ~0.8 s), uncompiled ~20 s, kernels ~30 s, MLA and MoE blocks ~40 s, two more compiled step-time shapes ~80 s (only
# when the step-time model exists), then the sweep (<= 150 s x 1.25 + 30 s) and the ladder with what is left; two
# GPUs or more add two launches of up to 2 minutes each, taken from the ladder and the sweep.
TOTAL_SECONDS = 480.0
SCALING_FIXED = 30.0          # the sweep's process start, corpus load and bootstrap refits
MIN_LADDER_SECONDS = 20.0     # a shorter ladder measures too few sizes to fit
MIN_SCALING_SECONDS = 60.0    # a shorter sweep cannot fit five constants on a GPU
DISTRIBUTED_SECONDS = 240.0   # two launches (DDP, FSDP), each torchrun, NCCL and a one-process baseline


sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_env import use_checkout  # noqa: E402

use_checkout()  # llmplan from this checkout: the GPU machine gets the tree, not an installed package
import gpu_calibration as calib  # noqa: E402
from gpu_distributed import MEMORY_TOLERANCE_PCT as DISTRIBUTED_TOLERANCE_PCT  # noqa: E402
from gpu_distributed import distributed_check, gpu_count  # noqa: E402
from gpu_distributed import markdown as distributed_markdown  # noqa: E402
from gpu_scaling import markdown as scaling_markdown  # noqa: E402
from gpu_scaling import scaling_check  # noqa: E402


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="tiny shape on the CPU in fp32, no compile: checks the "
                   "script itself, not a GPU")
    p.add_argument("--out", default=None, help="results folder (default: $OUT, else ./gpu-results)")
    p.add_argument("--batch", type=int, default=None, help="micro-batch of the XL run (default 16; halved on OOM)")
    p.add_argument("--seq", type=int, default=None, help="sequence length (default 2048)")
    p.add_argument("--steps", type=int, default=10, help="timed steps of the XL run")
    p.add_argument("--ladder-seconds", type=float, default=100.0, help="time budget of the ladder")
    p.add_argument("--ladder-rungs", type=int, default=7, help="at most this many ladder sizes")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--no-eager-memory", action="store_true", help="skip the uncompiled memory run")
    p.add_argument("--scaling-seconds", type=float, default=150.0, help="time budget of the scaling sweep (0: skip)")
    p.add_argument("--no-distributed", action="store_true", help="skip the two-process check")
    p.add_argument("--no-calibration", action="store_true", help="skip the kernels, the step-time shapes and the "
                   "MLA and MoE memory blocks")
    p.add_argument("--budget-seconds", type=float, default=TOTAL_SECONDS, help="the whole script's time: the ladder "
                   "and the sweep are shortened (or skipped) to end by then (default %(default)g)")
    return p.parse_args(argv)


class Clock:
    """The script's time budget: what each later phase may still use, so that one call ends in time."""

    def __init__(self, total: float):
        self.total, self.t0 = total, time.monotonic()

    def left(self) -> float:
        return self.total - (time.monotonic() - self.t0)


def ladder_plan(left: float, wanted: float, scaling_wanted: float, distributed_reserve: float) -> float:
    """Seconds to give the ladder: what is left once the sweep (with its overrun and start-up) and the distributed
    launches have their reserve, at most `wanted`; 0 when that is too short to measure a few sizes."""
    scaling_reserve = scaling_wanted * 1.25 + SCALING_FIXED if scaling_wanted else 0.0
    seconds = min(wanted, left - scaling_reserve - distributed_reserve)
    return seconds if seconds >= MIN_LADDER_SECONDS else 0.0


def phase_fits(left: float, planned: float, keep: float) -> bool:
    """A phase planned at `planned` seconds runs only when `keep` seconds (the sweep's shortest useful run with its
    overrun and start-up, and the distributed launches) are still left after it."""
    return left - planned >= keep


def sweep_floor(scaling_wanted: float) -> float:
    """Seconds the sweep needs at the least: its shortest useful budget, overrun and start-up (0 when skipped)."""
    return MIN_SCALING_SECONDS * 1.25 + SCALING_FIXED if scaling_wanted else 0.0


def scaling_plan(left: float, wanted: float) -> float:
    """Seconds to give the sweep: it may overrun its budget by 25% (one run it started), and starts a Python
    process that loads torch and the corpus and bootstraps the fit (SCALING_FIXED)."""
    return max(min(wanted, (left - SCALING_FIXED) / 1.25), 0.0)


def xl_spec(dry: bool):
    from llmplan.models import get_preset

    spec = get_preset("gpt3-1.3b")
    if (spec.layers, spec.hidden, spec.heads) != (24, 2048, 16):  # the preset must be the shape checked here
        raise SystemExit(f"gpu_check: the gpt3-1.3b preset is not GPT-3 XL's shape: {spec}")
    if dry:
        spec = spec.with_(name="gpt3-xl-dry-run", layers=2, hidden=64, heads=4, ffn=256, vocab=512, context=128)
    return spec


def run_with_fallback(cfg, device, what: str):
    """run_config, halving the micro-batch on out-of-memory."""
    from llmplan.bench.runner import run_config

    while True:
        log(f"{what}: {cfg.built_layers} layers, batch {cfg.batch} x seq {cfg.seq}, "
            f"{'compiled' if cfg.compile else 'eager'}")
        r = run_config(cfg, device)
        if r.status == "ok" or cfg.batch == 1:
            return r
        log(f"{what}: out of memory at batch {cfg.batch}; halving")
        cfg = replace(cfg, batch=cfg.batch // 2)


def _gib(x) -> str:
    from llmplan.units import format_bytes

    return "-" if x is None else format_bytes(x)


def check_rows(xl, eager, dry: bool) -> list[dict]:
    rows = []
    mfu_ok = xl.mfu is not None and xl.mfu >= TARGET_MFU
    rows.append({"check": "MFU, GPT-3 XL, bf16, seq 2048, torch.compile", "target": f">= {TARGET_MFU:.0%}",
                 "measured": None if xl.mfu is None else f"{xl.mfu:.1%} ({xl.achieved_flops / 1e12:.0f} TFLOP/s, "
                 f"{xl.tokens_per_second:,.0f} tokens/s, batch {xl.batch})",
                 "passed": None if dry else mfu_ok})
    # The memory check runs on the uncompiled model: llmplan's activation accounting describes PyTorch's eager ops
    # ("pytorch" implementation); compiled graphs choose what to save and recompute themselves (reported beside).
    judged = eager if eager is not None and eager.status == "ok" else xl
    label = "uncompiled" if judged is eager else "compiled"
    err = judged.memory_error_pct
    rows.append({"check": f"memory: llmplan prediction vs max_memory_allocated ({label})",
                 "target": f"within {MEMORY_TOLERANCE_PCT:g}%",
                 "measured": None if err is None else f"predicted {_gib(judged.peak_bytes_predicted)}, measured "
                 f"{_gib(judged.peak_bytes_measured)} ({err:+.1f}%)",
                 "passed": None if dry else (err is not None and abs(err) <= MEMORY_TOLERANCE_PCT)})
    if judged is eager and xl.memory_error_pct is not None:
        rows.append({"check": f"memory: the same, {'compiled' if xl.compiled else 'first run'} (information)",
                     "target": "-",
                     "measured": f"predicted {_gib(xl.peak_bytes_predicted)}, measured "
                     f"{_gib(xl.peak_bytes_measured)} ({xl.memory_error_pct:+.1f}%)", "passed": None})
    return rows


def markdown(report: dict) -> str:
    d, v = report["device"], report["versions"]
    facts = d.get("facts") or {}
    about = f"torch {v.get('torch')}, CUDA {v.get('cuda')}, driver {v.get('driver')}"
    if facts.get("power_limit_watts"):
        about += f", power limit {facts['power_limit_watts']:.0f} W"
    if d.get("peak_flops"):
        about += f"; dense peak {d['peak_flops'] / 1e12:.1f} TFLOP/s ({d['dtype']})"
    about += f"; script time {report['seconds']:.0f} s of {report['budget_seconds']:.0f}"
    if report.get("phase_seconds"):
        about += " (" + ", ".join(f"{k} {v:.0f} s" for k, v in report["phase_seconds"].items()) + ")"
    if report["dry_run"]:
        about += " (dry run on CPU with a tiny shape: not a GPU result)"
    lines = [f"### GPU check: {d['name']}, {report['date']}", "", about, "",
             "| check | target | measured | result |", "|---|---|---|---|"]
    for c in report["checks"]:
        result = {True: "pass", False: "**fail**", None: "-"}[c["passed"]]
        lines.append(f"| {c['check']} | {c['target']} | {c['measured'] or '-'} | {result} |")
    for what in report.get("skipped") or []:
        lines += ["", f"Skipped {what}."]
    runs = [r for r in report["ladder"]["runs"] if r["status"] == "ok"]
    if runs:
        lines += ["", "| ladder model | params | batch x seq | tokens/s | TFLOP/s | MFU | memory error |",
                  "|---|---|---|---|---|---|---|"]
        for r in runs:
            mfu = "-" if r["mfu"] is None else f"{r['mfu']:.1%}"
            err = "-" if r["memory_error_pct"] is None else f"{r['memory_error_pct']:+.1f}%"
            lines.append(f"| {r['name']} | {r['params'] / 1e6:.1f} M | {r['batch']} x {r['seq']} | "
                         f"{r['tokens_per_second']:,.0f} | {r['achieved_flops'] / 1e12:.1f} | {mfu} | {err} |")
    fit = report["ladder"].get("fit")
    if fit:
        hold = fit.get("holdout") or {}
        nan = float("nan")
        lines += ["", f"Throughput fit: {fit['why']}; leave-largest-out error {hold.get('error_pct', nan):+.1f}% "
                      f"(extrapolated {hold.get('extrapolated_error_pct', nan):+.1f}%)."]
    lines += calib.markdown(report, d)
    if report.get("scaling"):
        lines += ["", scaling_markdown(report["scaling"]).rstrip()]
    if report.get("distributed"):
        lines += ["", distributed_markdown(report["distributed"]).rstrip()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse(argv)
    warnings.filterwarnings("ignore", message="The pynvml package is deprecated")
    from llmplan.bench.device import detect_device
    from llmplan.bench.ladder import run_ladder
    from llmplan.bench.runner import BenchConfig

    out = Path(args.out or os.environ.get("OUT") or "gpu-results").expanduser()
    if out.exists() and not out.is_dir():
        print(f"gpu_check: {out} is not a folder", file=sys.stderr)
        return 2
    dry = args.dry_run
    try:
        device = detect_device("cpu" if dry else "cuda", dtype="fp32" if dry else "bf16")
    except Exception as exc:  # no GPU: say so in one line
        print(f"gpu_check: {exc} (use --dry-run to test the script without a GPU)", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    clock = Clock(args.budget_seconds)
    log(f"device {device.name}; peak {device.peak_source}; time budget {args.budget_seconds:g} s")
    spec = xl_spec(dry)
    seq = args.seq or (64 if dry else 2048)
    compiled = not (dry or args.no_compile)
    base = BenchConfig(spec, batch=args.batch or (2 if dry else 16), seq=seq, compile=compiled,
                       warmup_steps=1 if dry else 3, timed_steps=2 if dry else args.steps)
    state = {"xl": None, "eager": None, "ladder": None, "scaling": None, "distributed": None, "interrupted": False,
             "kernels": None, "steps": None, "blocks": None, "phases": {}, "skipped": []}

    def phase(name: str, fn):
        t = time.monotonic()
        try:
            return fn()
        finally:
            state["phases"][name] = round(time.monotonic() - t, 1)
            save(out, device, state, dry, clock)  # what is measured so far comes back even if the call is cut

    try:
        state["xl"] = phase("xl", lambda: run_with_fallback(base, device, "GPT-3 XL"))
        xl = state["xl"]
        log(f"GPT-3 XL: {xl.status}, MFU {xl.mfu}, memory error {xl.memory_error_pct}")
        if not args.no_eager_memory and xl.status == "ok":
            state["eager"] = phase("eager", lambda: run_with_fallback(
                replace(base, batch=xl.batch, compile=False, warmup_steps=1, timed_steps=2), device,
                "GPT-3 XL eager (memory)"))
        # Time left is shared out: the distributed launches and the sweep keep their reserve, the calibration phases
        # run while the sweep's shortest run still fits after them, the ladder gets the rest (at most
        # --ladder-seconds); the sweep then gets what the ladder left.
        scaling_wanted = (20.0 if dry else args.scaling_seconds) if args.scaling_seconds > 0 else 0.0
        dist_reserve = 0.0 if args.no_distributed or (not dry and gpu_count() < 2) else DISTRIBUTED_SECONDS
        keep = sweep_floor(scaling_wanted) + dist_reserve
        if not args.no_calibration:
            calibration_phases(state, phase, device, xl, spec, dry, clock, keep)
        ladder_seconds = 10.0 if dry else ladder_plan(clock.left(), args.ladder_seconds, scaling_wanted,
                                                      dist_reserve)
        if ladder_seconds > 0:
            ladder_base = replace(base, batch=2 if dry else 8, seq=seq if dry else 1024,
                                  warmup_steps=1 if dry else (3 if compiled else 2), timed_steps=2 if dry else 5)
            log(f"ladder: {ladder_seconds:.0f} s")
            state["ladder"] = phase("ladder", lambda: run_ladder(
                device, ladder_base, budget_seconds=ladder_seconds, vocab=512 if dry else 32000,
                max_rungs=3 if dry else args.ladder_rungs,
                on_event=lambda kind, info: log(f"ladder {info['result'].name}: {info['result'].status}")
                if kind == "done" else None))
        else:
            state["skipped"].append(f"ladder: {clock.left():.0f} s left of the time budget")
        if scaling_wanted:
            seconds = scaling_wanted if dry else scaling_plan(clock.left() - dist_reserve, scaling_wanted)
            if dry or seconds >= MIN_SCALING_SECONDS:
                state["scaling"] = phase("scaling", lambda: scaling_check(
                    out, dry=dry, seconds=seconds, log=log, timeout=max(1.25 * seconds + SCALING_FIXED + 60.0, 120.0)))
            else:
                state["skipped"].append(f"scaling sweep: {clock.left():.0f} s left of the time budget")
        if not args.no_distributed:
            state["distributed"] = phase("distributed", lambda: distributed_check(
                out, dry=dry, log=log, timeout=300.0 if dry else DISTRIBUTED_SECONDS / 2))
    except KeyboardInterrupt:
        state["interrupted"] = True
        log("interrupted: writing what was measured")
    for what in state["skipped"]:
        log(f"skipped {what}")
    report = save(out, device, state, dry, clock)
    log(f"wrote {out / 'gpu-check.json'} and {out / 'gpu-check.md'} in {report['seconds']:.0f} s")
    print(markdown(report))
    failed = [c for c in report["checks"] if c["passed"] is False]
    return 1 if failed or state["interrupted"] else 0


def calibration_phases(state: dict, phase, device, xl, spec, dry: bool, clock: Clock, keep: float) -> None:
    """Kernels, then the MLA and MoE memory blocks, then the step-time shapes, each while time is left for what
    must follow (`keep`); a phase that does not fit is skipped and said so."""
    def run(cfg, what):
        return run_with_fallback(cfg, device, what)

    step_seconds = calib.STEP_SECONDS if calib.step_model()[0] else 0.0  # nothing is run without the model
    plans = (("kernels", calib.KERNEL_SECONDS, lambda: calib.kernels(device, dry, log)),
             ("blocks", calib.BLOCK_SECONDS, lambda: calib.block_checks(device, dry, log, run)),
             ("steps", step_seconds, lambda: calib.step_checks(device, xl, spec, state["kernels"], dry, log, run)))
    for name, planned, fn in plans:
        if dry or phase_fits(clock.left(), planned, keep):
            state[name] = phase(name, fn)
        else:
            state["skipped"].append(f"{name}: {clock.left():.0f} s left of the time budget, {planned:.0f} s needed "
                                    f"with {keep:.0f} s kept for the sweep and the distributed launches")


def all_checks(state: dict, dry: bool) -> list[dict]:
    xl, eager = state["xl"], state["eager"]
    checks = check_rows(xl, eager, dry) if xl is not None and xl.status == "ok" else [
        {"check": "GPT-3 XL run", "target": "fits and runs", "measured": "did not run or did not fit",
         "passed": None if dry else False}]
    checks += calib.check_rows(state, dry)
    sc = state["scaling"]
    if sc is not None:
        p = (sc.get("sweep") or {}).get("prediction") or {}
        err = p.get("relative_error")
        checks.append({"check": "scaling sweep: fit predicts the held-back 4x run", "target": "within 5%",
                       "measured": sc.get("error") or ("validation run not trained" if err is None
                                                       else f"{err:+.2%}"),
                       "passed": None if dry else bool(sc.get("passed"))})
    dist = state["distributed"]
    for r in (dist or {}).get("runs", []):
        err = r.get("memory_error_pct")
        ok = r["ok"] and err is not None and abs(err) <= DISTRIBUTED_TOLERANCE_PCT
        checks.append({"check": f"two processes, {r['strategy']}: per-rank peak vs llmplan memory",
                       "target": f"within {DISTRIBUTED_TOLERANCE_PCT:g}%",
                       "measured": r.get("error") if not r["ok"] else "-" if err is None else f"{err:+.1f}%",
                       "passed": None if dry else ok})
    return checks


def save(out: Path, device, state: dict, dry: bool, clock: Clock) -> dict:
    """Write gpu-check.json, gpu-check.md and a calibration profile from what was measured so far."""
    from llmplan.calibration import PROFILE_KIND, PROFILE_SCHEMA, save_profile
    from llmplan.report.files import write_text
    from llmplan.report.output import jsonable

    xl, eager, ladder = state["xl"], state["eager"], state["ladder"]
    report = {
        "schema_version": 1, "kind": "llmplan.gpu-check", "dry_run": dry, "interrupted": state["interrupted"],
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "argv": sys.argv,
        "seconds": clock.total - clock.left(), "budget_seconds": clock.total, "phase_seconds": state["phases"],
        "skipped": state["skipped"], "device": device.as_dict(), "versions": device.versions,
        "targets": {"mfu": TARGET_MFU, "memory_tolerance_pct": MEMORY_TOLERANCE_PCT},
        "checks": all_checks(state, dry), "xl": xl.as_dict() if xl else None,
        "xl_eager": eager.as_dict() if eager else None,
        "ladder": {"runs": [r.as_dict() for r in ladder.runs] if ladder else [],
                   "fit": ladder.fit.as_dict() if ladder and ladder.fit else None,
                   "fit_note": ladder.fit_note if ladder else "not run",
                   "stopped": ladder.stopped if ladder else "not run"},
        "scaling": state["scaling"], "distributed": state["distributed"],
        "kernels": state["kernels"], "step_time": state["steps"], "blocks": state["blocks"],
    }
    report = jsonable(report)
    write_text(out / "gpu-check.json", json.dumps(report, indent=2, allow_nan=False) + "\n")
    write_text(out / "gpu-check.md", markdown(report))
    runs = [r for r in report["ladder"]["runs"] + [report["xl"]] if r and r["status"] == "ok"]
    kernels = calib.profile_keys(report["kernels"])
    if runs or kernels:  # a calibration profile of this GPU, as `llmplan bench` and `bench --calibrate` save it
        save_profile({"schema_version": PROFILE_SCHEMA, "kind": PROFILE_KIND, "created": report["date"],
                      "device": report["device"], "versions": report["versions"], "runs": runs,
                      "fit": report["ladder"]["fit"], "overhead_bytes": None,
                      "overhead_method": "not measured by gpu_check", **kernels}, out / "profile.json")
    return report


if __name__ == "__main__":
    sys.exit(main())
