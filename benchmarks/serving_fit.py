"""Fit each engine's fixed costs on a declared subset of the published serving rows, and only there.

    python benchmarks/serving_fit.py          # prints the fitted constants and the subset they came from
    python benchmarks/serving_fit.py --write  # and writes them into llmplan/estimate/serve_engines.py

FIT_SUBSET: AIConfigurator's measured silicon rows at concurrency <= 4 (where the fixed per-layer cost and the
per-request overhead are the largest share of TPOT and TTFT, and queueing is smallest):
- fixed_layer_seconds per engine: its dense-model rows, TPOT;
- fixed_moe_layer_seconds (all engines together, after their dense fit): the MoE-model rows, TPOT;
- request_overhead_seconds per engine: its rows, TTFT (API server, tokenization, scheduling before the first step).
Each constant is the value at which the median of predicted / measured over its rows is 1 (bisection; the
prediction grows with the constant). An engine with fewer than MIN_ROWS rows for a constant keeps the generic
engine's value, which is fitted on all engines' rows. The constants in llmplan/estimate/serve_engines.py are these
numbers (tests/test_serve_validation.py re-runs the fit and compares); every other row is reported, never fitted,
in docs/validation.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import serving_validation as sv  # noqa: E402
from benchmarks.serving_models import model_for  # noqa: E402
from llmplan.estimate.serve_engines import ENGINES  # noqa: E402
from llmplan.models.layers import MoE  # noqa: E402

MIN_ROWS = 3
NAMES = ("vllm", "trtllm", "sglang")


def fit_subset(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["source"].startswith("NVIDIA ai-dynamo/aiconfigurator")
            and (r.get("concurrency") or 99) <= 4]


def _is_moe(row: dict) -> bool:
    spec = model_for(row["model"])
    return spec is not None and any(isinstance(g.ffn, MoE) for g in spec.layer_groups)


def _engine_of(row: dict) -> str:
    return sv.ENGINES.get(row["engine"], "generic")


def _median_ratio(rows, metric, engines) -> float | None:
    ratios = []
    for r in rows:
        est, m = sv.predict(r, engines)
        if est is not None and metric in m:
            meas, pred = m[metric]
            ratios.append(pred / meas)
    return statistics.median(ratios) if ratios else None


def _solve(rows, metric, field, engines, names, lo=0.0, hi=400e-6) -> float:
    """The value of `field` (set on every engine in `names`) at which the median ratio is 1, within [lo, hi]."""
    def at(x):
        trial = {n: dataclasses.replace(engines[n], **{field: x}) for n in names}
        return _median_ratio(rows, metric, {**engines, **trial})

    if at(lo) >= 1.0:
        return lo
    if at(hi) <= 1.0:
        return hi
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if at(mid) < 1.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def fit(rows: list[dict] | None = None) -> tuple[dict, dict]:
    """The fitted engines and, per constant, the ids of the rows it was fitted on."""
    rows = fit_subset(sv.load_rows() if rows is None else rows)
    engines = {n: ENGINES[n] for n in (*NAMES, "generic")}
    used: dict[str, list[str]] = {}
    dense = [r for r in rows if not _is_moe(r) and r.get("tpot_ms")]
    moe = [r for r in rows if _is_moe(r) and r.get("tpot_ms")]
    ttft = [r for r in rows if r.get("ttft_ms")]
    # generic first (all engines' rows, each predicted with the generic engine), then each engine on its own rows
    as_generic = [{**r, "engine": "generic"} for r in dense]
    x = _solve(as_generic, "TPOT", "fixed_layer_seconds", engines, ("generic",))
    engines["generic"] = dataclasses.replace(engines["generic"], fixed_layer_seconds=x)
    used["generic.fixed_layer_seconds"] = [r["id"] for r in dense]
    for n in NAMES:
        own = [r for r in dense if _engine_of(r) == n]
        value = (_solve(own, "TPOT", "fixed_layer_seconds", engines, (n,)) if len(own) >= MIN_ROWS
                 else engines["generic"].fixed_layer_seconds)
        engines[n] = dataclasses.replace(engines[n], fixed_layer_seconds=value)
        used[f"{n}.fixed_layer_seconds"] = [r["id"] for r in own] if len(own) >= MIN_ROWS else ["generic"]
    x = _solve(moe, "TPOT", "fixed_moe_layer_seconds", engines, (*NAMES, "generic"))
    for n in (*NAMES, "generic"):
        engines[n] = dataclasses.replace(engines[n], fixed_moe_layer_seconds=x)
    used["fixed_moe_layer_seconds"] = [r["id"] for r in moe]
    as_generic = [{**r, "engine": "generic"} for r in ttft]
    x = _solve(as_generic, "TTFT", "request_overhead_seconds", engines, ("generic",), hi=0.5)
    engines["generic"] = dataclasses.replace(engines["generic"], request_overhead_seconds=x)
    used["generic.request_overhead_seconds"] = [r["id"] for r in ttft]
    for n in NAMES:
        own = [r for r in ttft if _engine_of(r) == n]
        value = (_solve(own, "TTFT", "request_overhead_seconds", engines, (n,), hi=0.5) if len(own) >= MIN_ROWS
                 else engines["generic"].request_overhead_seconds)
        engines[n] = dataclasses.replace(engines[n], request_overhead_seconds=value)
        used[f"{n}.request_overhead_seconds"] = [r["id"] for r in own] if len(own) >= MIN_ROWS else ["generic"]
    return engines, used


ENGINES_FILE = ROOT / "llmplan" / "estimate" / "serve_engines.py"


def write(engines: dict) -> None:
    """Put the fitted constants into serve_engines.py (each engine's block, rounded as printed)."""
    text = ENGINES_FILE.read_text()
    for name, e in engines.items():
        start = text.index(f'"{name}": Engine(')
        end = text.index("source=", start)
        block = text[start:end]
        for field, scale, unit in (("fixed_layer_seconds", 1e6, "e-6"), ("fixed_moe_layer_seconds", 1e6, "e-6"),
                                   ("request_overhead_seconds", 1e3, "e-3")):
            block = re.sub(rf"{field}=[0-9.e-]+", f"{field}={getattr(e, field) * scale:.1f}{unit}", block)
        text = text[:start] + block + text[end:]
    ENGINES_FILE.write_text(text)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="write the constants into serve_engines.py")
    args = ap.parse_args(argv)
    engines, used = fit()
    for n in ("generic", *NAMES):
        e = engines[n]
        print(f"{n:8s} fixed_layer_seconds={e.fixed_layer_seconds * 1e6:.1f}e-6 "
              f"fixed_moe_layer_seconds={e.fixed_moe_layer_seconds * 1e6:.1f}e-6 "
              f"request_overhead_seconds={e.request_overhead_seconds * 1e3:.1f}e-3")
    for k, ids in used.items():
        what = "the generic value" if ids == ["generic"] else f"{len(ids)} rows: {', '.join(i[:70] for i in ids)}"
        print(f"{k}: {what}")
    if args.write:
        write(engines)


if __name__ == "__main__":
    main()
