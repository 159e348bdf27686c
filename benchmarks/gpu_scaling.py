#!/usr/bin/env python
"""GPU check of the scaling sweep: a few minutes of `llmplan bench --scaling` should give a fit of L(N, D) that
predicts the held-back run (4x the largest budget, trained after the prediction) within a few percent.

Called from benchmarks/gpu_check.py (`from gpu_scaling import scaling_check`) or alone:

    python benchmarks/gpu_scaling.py --out /tmp/gpu-results              # on the GPU machine, ~4 minutes
    python benchmarks/gpu_scaling.py --dry-run --out /tmp/gpu-results    # CPU, --quick, about 2 minutes

Writes gpu-scaling.json (the sweep's JSON) and gpu-scaling.md (a snippet for docs/validation.md); runs.csv and
law.json go to <out>/scaling. Exit status 1 when the prediction misses by more than TARGET_ERROR.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_env import ROOT, checkout_env  # noqa: E402

TARGET_ERROR = 0.05  # |predicted - measured| / measured for the held-back run


def scaling_check(out: Path, dry: bool = False, seconds: float = 240.0, log=None,
                  timeout: float | None = None) -> dict:
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    out.mkdir(parents=True, exist_ok=True)
    device = ["--device", "cpu", "--quick"] if dry else ["--device", "cuda"]
    cmd = [sys.executable, "-m", "llmplan", "bench", "--scaling", *device, "--budget-seconds", f"{seconds:g}",
           "--json", "--out", str(out / "scaling")]
    log(f"scaling check: {' '.join(cmd[2:])}")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout or 3 * seconds + 120,
                           cwd=ROOT, env=checkout_env())
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout or 3 * seconds + 120:.0f} s", "argv": cmd}
    if r.returncode != 0:
        return {"ok": False, "error": (r.stderr.strip().splitlines() or ["no message"])[-1], "argv": cmd}
    sweep = json.loads(r.stdout)
    p = sweep.get("prediction") or {}
    err = p.get("relative_error")
    passed = err is not None and abs(err) <= TARGET_ERROR
    log(f"  predicted {p.get('predicted_loss')}, measured {p.get('measured_loss')}, error {err}")
    return {"ok": True, "passed": passed, "dry_run": dry, "target_error": TARGET_ERROR, "sweep": sweep,
            "argv": cmd}


def markdown(check: dict) -> str:
    if not check["ok"]:
        return f"Scaling sweep check **failed**: {check['error']}\n"
    s = check["sweep"]
    fit, p = s.get("fit") or {}, s.get("prediction") or {}
    opt = (s.get("optimal") or [{}])[-1]
    note = " (dry run: CPU, --quick)" if check["dry_run"] else ""
    measured = "not run" if p.get("measured_loss") is None else f"{p['measured_loss']:.4f}"
    error = "-" if p.get("relative_error") is None else f"{p['relative_error']:+.2%}"
    lines = [f"Scaling sweep on {s['device']}{note}: {len(s['runs'])} runs in {s['seconds']:.0f} s, "
             f"{s['corpus']['description']}.", "",
             "| E | A | B | alpha | beta | residual RMS | D/N at the validation budget | predicted | measured | "
             "error (target within " + f"{check['target_error']:.0%})" + " |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    if fit:
        lines.append(f"| {fit['E']:.3g} | {fit['A']:.3g} | {fit['B']:.3g} | {fit['alpha']:.3g} | {fit['beta']:.3g} "
                     f"| {fit['residual_rms']:.3g} | {opt.get('tokens_per_param', float('nan')):.3g} | "
                     f"{p.get('predicted_loss', float('nan')):.4f} | {measured} | {error} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, --quick: checks the script, not a GPU")
    ap.add_argument("--out", default=None, help="results folder (default: $OUT, else ./gpu-results)")
    ap.add_argument("--seconds", type=float, default=None, help="sweep time budget (default 240; 90 dry)")
    args = ap.parse_args(argv)
    out = Path(args.out or os.environ.get("OUT") or "gpu-results").expanduser()
    check = scaling_check(out, args.dry_run, args.seconds or (90.0 if args.dry_run else 240.0))
    (out / "gpu-scaling.json").write_text(json.dumps(check, indent=2) + "\n")
    (out / "gpu-scaling.md").write_text(markdown(check))
    print(markdown(check))
    return 0 if check["ok"] and (check["passed"] or args.dry_run) else 1


if __name__ == "__main__":
    sys.exit(main())
