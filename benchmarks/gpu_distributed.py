#!/usr/bin/env python
"""Two-process check of the distributed bench: DDP, then FSDP2 full sharding, on two GPUs with NCCL.

Runs `llmplan bench --nproc 2 --strategy S --device cuda --json` for S in ddp, fsdp when the machine has two GPUs or
more; with one GPU or none it reports "skipped" (tests/test_bench_distributed.py's two gloo processes on CPU are the
proof there). --dry-run runs the same two launches on the CPU with gloo and a tiny model.

Called from benchmarks/gpu_check.py (`from gpu_distributed import distributed_check`) or alone:

    python benchmarks/gpu_distributed.py --out /tmp/gpu-results
    python benchmarks/gpu_distributed.py --dry-run --out /tmp/gpu-results

Writes gpu-distributed.json and gpu-distributed.md (a snippet for docs/validation.md) to the folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_env import ROOT, checkout_env  # noqa: E402

STRATEGIES = ("ddp", "fsdp")
MEMORY_TOLERANCE_PCT = 10.0  # per-rank peak against llmplan memory for the same dp degree and ZeRO stage


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:
        return 0


def _launch(strategy: str, out: Path, dry: bool, timeout: float) -> dict:
    target = out / f"distributed-{strategy}.json"
    if dry:
        args = ["--device", "cpu", "--quick", "--steps", "2"]
    else:  # GPT-3 XL's shape (Brown et al. 2020, Table 2.1), 4 of its 24 layers, bf16
        args = ["--device", "cuda", "--model", "gpt3-1.3b", "--layers", "4", "--batch", "8", "--seq", "2048",
                "--steps", "10"]
    cmd = [sys.executable, "-m", "llmplan", "bench", "--nproc", "2", "--strategy", strategy, *args, "--json",
           "--out", str(target)]
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=checkout_env())
    except subprocess.TimeoutExpired:
        return {"strategy": strategy, "ok": False, "error": f"timed out after {timeout:.0f} s", "argv": cmd}
    result = {"strategy": strategy, "ok": r.returncode == 0, "seconds": time.monotonic() - t0, "argv": cmd}
    if r.returncode != 0:
        result["error"] = (r.stderr.strip().splitlines() or ["no message"])[-1]
        return result
    report = json.loads(r.stdout)
    pred = report.get("predicted_memory") or {}
    errors = [(pred["bytes"] - p["peak_bytes"]) / p["peak_bytes"] * 100 for p in report["per_rank"]
              if pred and p.get("peak_bytes")]
    result.update(report=report, memory_error_pct=max(errors, key=abs) if errors else None)
    return result


def distributed_check(out: Path, dry: bool = False, timeout: float = 300.0, log=None) -> dict:
    """Run both strategies on two processes; {"skipped": why} on fewer than two GPUs (and no --dry-run)."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    out.mkdir(parents=True, exist_ok=True)
    gpus = gpu_count()
    if not dry and gpus < 2:
        why = f"{gpus} GPU(s): the two-process case needs two; tests/test_bench_distributed.py (gloo, CPU) is the proof"
        log(f"distributed check skipped: {why}")
        return {"skipped": why, "gpus": gpus}
    runs = []
    for strategy in STRATEGIES:
        log(f"distributed check: 2 processes, {strategy}")
        runs.append(_launch(strategy, out, dry, timeout))
        r = runs[-1]
        log(f"  {strategy}: " + ("failed: " + r["error"] if not r["ok"] else
                                 f"efficiency {r['report']['scaling_efficiency']:.1%}, memory error "
                                 f"{r['memory_error_pct']:+.1f}%"))
    return {"gpus": gpus, "dry_run": dry, "runs": runs, "memory_tolerance_pct": MEMORY_TOLERANCE_PCT}


def _gib(b) -> str:
    return "-" if b is None else f"{b / 2**30:.2f} GiB"


def markdown(check: dict) -> str:
    if "skipped" in check:
        return f"Distributed check skipped: {check['skipped']}.\n"
    lines = ["| strategy | step (min / median / max across ranks) | one process | efficiency | peak per rank | "
             "predicted | memory error |", "|---|---|---|---|---|---|---|"]
    for r in check["runs"]:
        if not r["ok"]:
            lines.append(f"| {r['strategy']} | **failed**: {r['error']} | | | | | |")
            continue
        rep = r["report"]
        s = rep["step_seconds"]
        peak = rep.get("peak_bytes", {}).get("max")
        pred = (rep.get("predicted_memory") or {}).get("bytes")
        err = "-" if r["memory_error_pct"] is None else f"{r['memory_error_pct']:+.1f}%"
        lines.append(f"| {r['strategy']} | {s['min']:.4f} / {s['median']:.4f} / {s['max']:.4f} s | "
                     f"{rep['single_process_step_seconds']:.4f} s | {rep['scaling_efficiency']:.1%} | {_gib(peak)} | "
                     f"{_gib(pred)} | {err} |")
    note = " (dry run: CPU, gloo, tiny model)" if check.get("dry_run") else ""
    return f"Two-process distributed bench{note}:\n\n" + "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="two gloo processes on the CPU with a tiny model")
    p.add_argument("--out", default=None, help="results folder (default: $OUT, else ./gpu-results)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per launch")
    args = p.parse_args(argv)
    out = Path(args.out or os.environ.get("OUT") or "gpu-results").expanduser()
    check = distributed_check(out, args.dry_run, args.timeout)
    (out / "gpu-distributed.json").write_text(json.dumps(check, indent=2) + "\n")
    (out / "gpu-distributed.md").write_text(markdown(check))
    print(markdown(check))
    if "skipped" in check:
        return 0
    bad = [r for r in check["runs"] if not r["ok"] or (r["memory_error_pct"] is not None
                                                       and abs(r["memory_error_pct"]) > MEMORY_TOLERANCE_PCT)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
