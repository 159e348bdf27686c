"""Predict every row of the published serving sample with `llmplan serve`'s model and report the errors.

    python benchmarks/serving_validation.py                 # the table, per source and scenario
    python benchmarks/serving_validation.py --rows          # every row: measured, predicted, ratio
    python benchmarks/serving_validation.py --write docs/validation.md   # refresh the doc's section

Data: /work/shared/reference/serving/published_serving.json (or $LLMPLAN_SERVING_ROWS, or the copy in
benchmarks/data/). Each row is predicted from what it states (model, GPU, TP, EP, formats, lengths, load, engine)
and nothing it measured. Error = predicted / measured - 1; the table gives the median of |error| and the median
ratio per source, scenario and metric. Rows that cannot be predicted are counted with the reason.

How many requests each benchmark sent (`--requests`: its mean TTFT includes the first wave, when C prompts arrive
at once; llmplan.estimate.serve_bench), from the source or, where it is silent, the documented default of the tool:
- AIConfigurator silicon rows: not stated (its design notes call the sample "a 2026-04 dump of the internal
  benchmark DB", docs/design/prediction_regression_gate_design.md); its own benchmark scripts send 20 x C with aiperf
  (generator/config/backend_templates/benchmark/bench_run.sh.j2: `--num-requests $((concurrency*20))`, the
  MULTI_ROUND default 20, and generator/sflow.py `--request-count $((MULTI_ROUND*CONCURRENCY))`, MULTI_ROUND 20),
  after C or 2 C warm-up requests that aiperf lets finish first (aiperf/timing/credit_issuing_strategy.py). The
  project disagrees with itself: its k8s_bench.yaml.j2 sends 50 x C, and docs/dynamo_deployment_guide.md says
  10 x C ("to reduce the impact of first batch of requests"). 20 x C is taken.
- TensorRT-LLM 0.14 online tables: 500 requests (stated); the request-rate-infinity row sends them at once.
- TensorRT-LLM issue 5929 (LLMPerf against trtllm-serve): not stated; LLMPerf's token_benchmark_ray.py
  `--max-num-completed-requests` defaults to 10 (its TTFT is the p50, the model's the mean).
TensorRT-LLM 0.14 ran behind Triton's tensorrtllm_backend: the per-request overhead fitted on OpenAI-compatible
Python servers (serve_engines) is not added to its TTFT (none is fitted for Triton): those TTFTs are the engine's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.serving_models import model_for  # noqa: E402
from llmplan.errors import LlmplanError  # noqa: E402
from llmplan.estimate.serve_engines import get_engine  # noqa: E402
from llmplan.estimate.serve_model import serve_estimate  # noqa: E402
from llmplan.hardware import match_gpu  # noqa: E402

DATA_CANDIDATES = (os.environ.get("LLMPLAN_SERVING_ROWS", ""),
                   str(ROOT / "benchmarks" / "data" / "published_serving.json"),
                   "/work/shared/reference/serving/published_serving.json")
SECTION_START, SECTION_END = "<!-- section: serving -->\n", "\n<!-- end: serving -->"


def load_rows() -> list[dict]:
    for p in DATA_CANDIDATES:
        if p and Path(p).is_file():
            return json.loads(Path(p).read_text())
    raise SystemExit("published_serving.json not found (set LLMPLAN_SERVING_ROWS)")


def source_group(row: dict) -> str:
    s, v, e = row["source"], str(row.get("engine_version") or ""), row["engine"]
    if s.startswith("NVIDIA ai-dynamo/aiconfigurator"):
        return f"AIConfigurator silicon, {e}"
    if "perf-overview, Throughput Measurements" in s:
        return "TRT-LLM 0.17 perf tables"
    if "perf-overview (version with" in s:
        return "TRT-LLM 1.0 perf tables"
    if "Online Serving" in s:
        return "TRT-LLM 0.14 online serving"
    if s.startswith("LMDeploy"):
        return "LMDeploy 0.1 (A100)"
    if "issue #5929" in s:
        return "TRT-LLM issue 5929"
    if "DeepSeek-R1 in TensorRT LLM" in s:
        return "TRT-LLM DeepSeek-R1 guide"
    if "tuning guide" in s:
        return "TRT-LLM tuning guide"
    if s.startswith("MLPerf"):
        return "MLPerf"
    if "SGLang" in s or "LMSYS" in s:
        return "SGLang blog"
    if v.startswith(("0.5", "0.6", "0.7", "0.8")):
        return "TRT-LLM 0.5-0.8 docs/blogs"
    return e


ENGINES = {"TensorRT-LLM": "trtllm", "vLLM": "vllm", "SGLang": "sglang"}
AIC_ROUNDS = 20        # AIConfigurator's aiperf scripts: 20 x C requests (see the docstring)
LLMPERF_REQUESTS = 10  # LLMPerf token_benchmark_ray.py --max-num-completed-requests default


def benchmark_requests(row: dict) -> int | None:
    """Requests the row's benchmark sent (stated, or its tool's documented default); None: not a benchmark of a
    bounded number of requests that the model replays (request-rate rows, static batches, unknown)."""
    group, c = source_group(row), row.get("concurrency")
    if group.startswith("AIConfigurator silicon") and c:
        return AIC_ROUNDS * int(c)
    if group == "TRT-LLM issue 5929" and c and row["scenario"].startswith("fixed_concurrency"):
        return max(LLMPERF_REQUESTS, int(c))
    stated = (row.get("other_measured") or {}).get("num_requests")
    if stated and row.get("request_rate") == "inf":
        return int(stated)
    return None


def frontend_overhead_known(row: dict) -> bool:
    """The fitted request overhead is that of OpenAI-compatible Python servers; Triton's is not known."""
    return "Triton" not in row["engine"]
# The rows' GPU names for catalog entries named otherwise: "GH200 480GB" is the 96 GB HBM3 part (480 GB of LPDDR5X
# beside it), "GB200 192GB" one Blackwell GPU of a GB200 NVL72.
GPU_NAMES = {"GH200-480GB": "GH200-96GB", "GB200-192GB": "GB200-NVL72"}


def _dtype(text: str | None, spec) -> str | None:
    if not text:
        return None
    t = text.lower()
    if "fp4" in t:
        # gpt-oss is published with MXFP4 experts and bf16 attention; its own format is the one the engines load
        return None if spec.weight_format is not None else "nvfp4"
    for name in ("fp8", "bf16", "fp16", "int8", "int4"):
        if name in t:
            return name
    return None


def _kv(text: str | None) -> str | None:
    if not text:
        return None
    t = text.lower()
    return next((n for n in ("fp8", "bf16", "fp16", "int8") if n in t), None)


def predict(row: dict, engines: dict | None = None):
    """(estimate, metrics {name: (measured, predicted)}) or (None, reason). `engines`: name -> Engine to use in
    place of the shipped one (the fit of benchmarks/serving_fit.py)."""
    spec = model_for(row["model"])
    if spec is None:
        return None, f"model {row['model']!r} has no config here"
    gpu = match_gpu(GPU_NAMES.get(row["gpu"], row["gpu"]))
    if gpu is None:
        return None, f"GPU {row['gpu']} not in the catalog"
    scen = row["scenario"]
    if scen.startswith(("disaggregated", "mlperf", "min_latency_batch1_mtp", "trtllm_bench_case")):
        return None, f"scenario {scen} not modelled (disaggregated, speculative, or lengths/concurrency not stated)"
    tp = row.get("tp")
    if not tp or not row.get("isl") or not row.get("osl"):
        return None, "TP or lengths not stated"
    gpus = row.get("gpu_count") or tp
    ep = row.get("ep") or 1
    if ep > tp:
        return None, f"EP {ep} beyond TP {tp} (attention data parallelism) not modelled"
    engine = ENGINES.get(row["engine"]) or "generic"
    if engines and engine in engines:
        engine = engines[engine]
    if not frontend_overhead_known(row):
        engine = dataclasses.replace(get_engine(engine) if isinstance(engine, str) else engine,
                                     request_overhead_seconds=0.0)
    frac = 0.95 if source_group(row) == "TRT-LLM 0.17 perf tables" else None  # the table's stated setting
    kwargs = dict(input_tokens=int(row["isl"]), output_tokens=int(row["osl"]), gpus=int(gpus), tp=int(tp),
                  ep=int(ep), dtype=_dtype(row.get("weight_precision"), spec), kv_dtype=_kv(row.get("kv_precision")),
                  engine=engine, memory_fraction=frac,
                  check_context=False,  # synthetic benchmark lengths may pass the model's context
                  attention_dp=bool(row.get("attention_dp")))
    rate = row.get("request_rate")
    if scen.startswith("static") or scen == "batch1_latency":
        kwargs["static_batch"] = int(row.get("batch_size") or row.get("concurrency") or 1)
    elif scen.startswith("max_throughput") and not row.get("concurrency"):
        kwargs["max_throughput"] = True
    elif row.get("concurrency"):
        kwargs["concurrency"] = float(row["concurrency"])
    elif rate == "inf":
        kwargs["max_throughput"] = True
    elif rate:
        kwargs["rate"] = float(rate)
    else:
        return None, "no load stated"
    if "concurrency" in kwargs or kwargs.get("max_throughput"):
        kwargs["requests"] = benchmark_requests(row)
    try:
        est = serve_estimate(spec, gpu, **kwargs)
    except LlmplanError as exc:
        return None, f"rejected: {exc}"
    metrics = {}
    tpot = row.get("tpot_ms") or row.get("itl_ms")
    if tpot:
        metrics["TPOT"] = (tpot / 1e3, est.tpot_seconds)
    if row.get("ttft_ms") and math.isfinite(est.ttft_seconds):
        metrics["TTFT"] = (row["ttft_ms"] / 1e3, est.ttft_seconds)
    if row.get("output_tok_s_per_gpu"):
        metrics["tok/s/GPU"] = (row["output_tok_s_per_gpu"], est.output_tokens_per_second_per_gpu)
    return est, metrics


def evaluate(rows: list[dict]):
    results, skipped = [], {}
    for row in rows:
        est, m = predict(row)
        if est is None:
            skipped[m] = skipped.get(m, 0) + 1
            continue
        results.append((row, est, m))
    return results, skipped


def scenario_of(row: dict) -> str:
    s = row["scenario"]
    if s.startswith("max_throughput"):
        return "max throughput"
    if s.startswith("fixed_concurrency"):
        return "fixed concurrency"
    if s.startswith("static") or s == "batch1_latency":
        return "static batch"
    if s.startswith("online"):
        return "request rate"
    return s


def table(results) -> list[tuple]:
    groups: dict[tuple, list[float]] = {}
    for row, _, metrics in results:
        for name, (meas, pred) in metrics.items():
            groups.setdefault((source_group(row), scenario_of(row), name), []).append(pred / meas)
    out = []
    for key in sorted(groups):
        ratios = groups[key]
        out.append((*key, len(ratios), statistics.median(abs(r - 1) for r in ratios), statistics.median(ratios)))
    return out


def overall(results) -> dict[str, tuple[int, float, float]]:
    """The issue's three targets: TPOT over every row that has it, max-throughput tokens/s per GPU over the
    max-throughput rows, TTFT under load over the continuous-batching rows (fixed concurrency or a rate)."""
    by: dict[str, list[float]] = {}
    for row, _, metrics in results:
        scen = scenario_of(row)
        for name, (meas, pred) in metrics.items():
            if name == "tok/s/GPU":
                name = "max-throughput tok/s/GPU" if scen == "max throughput" else "other tok/s/GPU"
            elif name == "TTFT":
                name = "TTFT under load" if scen in ("fixed concurrency", "request rate") else "TTFT, static batch"
            by.setdefault(name, []).append(pred / meas)
    return {k: (len(v), statistics.median(abs(r - 1) for r in v), statistics.median(v)) for k, v in by.items()}


TARGETS = {"TPOT": 0.15, "max-throughput tok/s/GPU": 0.20, "TTFT under load": 0.30}


def render(rows: list[dict] | None = None) -> str:
    rows = load_rows() if rows is None else rows
    results, skipped = evaluate(rows)
    lines = [f"Predicted {len(results)} of {len(rows)} published rows "
             f"(`python benchmarks/serving_validation.py`); error = predicted / measured - 1.", "",
             "| metric | rows | median abs. error | median ratio | target |", "|---|---:|---:|---:|---:|"]
    for name, (n, err, ratio) in sorted(overall(results).items()):
        target = f"{TARGETS[name]:.0%}" if name in TARGETS else "-"
        lines.append(f"| {name} | {n} | {err:.1%} | {ratio:.2f} | {target} |")
    lines += ["", "| source | scenario | metric | rows | median abs. error | median ratio |",
              "|---|---|---|---:|---:|---:|"]
    for src, scen, name, n, err, ratio in table(results):
        lines.append(f"| {src} | {scen} | {name} | {n} | {err:.0%} | {ratio:.2f} |")
    lines += ["", "Not predicted:", ""]
    for reason, n in sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"- {n} x {reason}")
    return "\n".join(lines)


def replay(rows: list[dict]) -> str:
    """The AIConfigurator rows' TTFT from a step-by-step replay of all their requests (serve_bench.run_benchmark:
    equal requests keep the first wave's convoy), beside the model's (first wave, then staggered)."""
    from llmplan.estimate.serve_bench import run_benchmark
    from llmplan.estimate.serve_model import deployment

    by: dict[str, list[float]] = {}
    for row in rows:
        n = benchmark_requests(row)
        if not source_group(row).startswith("AIConfigurator") or n is None:
            continue
        est, m = predict(row)
        if est is None or "TTFT" not in m:
            continue
        spec = model_for(row["model"])
        dep = deployment(spec, match_gpu(GPU_NAMES.get(row["gpu"], row["gpu"])), est.tp, est.ep,
                         _dtype(row.get("weight_precision"), spec), est.kv_dtype, ENGINES.get(row["engine"]),
                         attention_dp=est.attention_dp)
        c = max(round(est.concurrency / est.replicas), 1)
        b = run_benchmark(dep, c, max(round(n / est.replicas), c), est.input_tokens, est.output_tokens,
                          est.max_concurrency // est.replicas, dep.engine.request_overhead_seconds)
        meas = m["TTFT"][0]
        band = "c <= 4" if c <= 4 else "c >= 32" if c >= 32 else "4 < c < 32"
        for key, pred in ((f"model, {band}", m["TTFT"][1]), (f"replay, {band}", b.ttft_seconds)):
            by.setdefault(key, []).append(pred / meas)
    lines = ["| TTFT of the AIConfigurator rows | rows | median abs. error | median ratio |", "|---|---:|---:|---:|"]
    for key in sorted(by):
        v = by[key]
        lines.append(f"| {key} | {len(v)} | {statistics.median(abs(r - 1) for r in v):.0%} | "
                     f"{statistics.median(v):.2f} |")
    return "\n".join(lines)


def write(path: Path) -> None:
    page = path.read_text()
    if SECTION_START not in page:
        page = page.rstrip("\n") + "\n\n## Serving (llmplan serve)\n\n" + SECTION_START + SECTION_END + "\n"
    head, rest = page.split(SECTION_START, 1)
    tail = rest.split(SECTION_END, 1)[1]
    path.write_text(head + SECTION_START + render() + SECTION_END + tail)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", action="store_true", help="print every row")
    ap.add_argument("--write", type=Path, help="refresh the serving section of this markdown file")
    ap.add_argument("--replay", action="store_true", help="AIConfigurator rows: a step-by-step replay of every "
                    "request against the model's TTFT")
    args = ap.parse_args(argv)
    if args.replay:
        print(replay(load_rows()))
        return
    if args.write:
        write(args.write)
        return
    if args.rows:
        results, skipped = evaluate(load_rows())
        for row, est, metrics in results:
            cells = "  ".join(f"{k} {m:.4g}->{p:.4g} ({p / m:.2f})" for k, (m, p) in metrics.items())
            print(f"{row['id'][:58]:58s} c={est.concurrency:7.1f} {cells}")
        for reason, n in skipped.items():
            print(f"skipped {n}: {reason}")
        return
    print(render())


if __name__ == "__main__":
    main()
