"""The serving validation table in docs/validation.md is what the model predicts today, and the predictions stay
near the published measurements they were checked against."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _validation():
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import serving_validation
    finally:
        sys.path.remove(str(ROOT))
    return serving_validation


def test_serving_section_is_current():
    v = _validation()
    page = (ROOT / "docs" / "validation.md").read_text()
    section = page.split(v.SECTION_START, 1)[1].split(v.SECTION_END, 1)[0]
    assert section == v.render(), "stale: python benchmarks/serving_validation.py --write docs/validation.md"


def test_published_rows_stay_near_their_measurements():
    # TPOT: AIConfigurator silicon rows, TensorRT-LLM 0.14 online tables, LMDeploy, TRT-LLM issue 5929;
    # max throughput: TensorRT-LLM perf-overview tables 0.17 and 1.0 (docs/validation.md lists each source)
    v = _validation()
    results, _ = v.evaluate(v.load_rows())
    summary = v.overall(results)
    n, err, _ = summary["TPOT"]
    assert n >= 50 and err <= v.TARGETS["TPOT"] + 0.05
    n, err, _ = summary["max-throughput tok/s/GPU"]
    assert n >= 70 and err <= v.TARGETS["max-throughput tok/s/GPU"] + 0.05


def test_engine_constants_are_the_declared_fit():
    """serve_engines.py holds what benchmarks/serving_fit.py fits on its declared subset (and only there)."""
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.serving_fit import fit
    finally:
        sys.path.remove(str(ROOT))
    from llmplan.estimate.serve_engines import ENGINES

    fitted, _ = fit()
    stale = "stale: python benchmarks/serving_fit.py --write, then benchmarks/serving_validation.py --write"
    for name, e in fitted.items():
        shipped = ENGINES[name]
        assert abs(shipped.fixed_layer_seconds - e.fixed_layer_seconds) < 0.06e-6, (name, stale)
        assert abs(shipped.fixed_moe_layer_seconds - e.fixed_moe_layer_seconds) < 0.06e-6, (name, stale)
        assert abs(shipped.request_overhead_seconds - e.request_overhead_seconds) < 0.06e-3, (name, stale)


def test_each_benchmark_sends_its_stated_or_default_requests():
    """AIConfigurator's aiperf scripts send 20 x C; TensorRT-LLM 0.14's online table states 500 (its
    request-rate-infinity row sends them at once); LLMPerf's default is 10 completed requests."""
    v = _validation()
    rows = v.load_rows()
    aic = [r for r in rows if v.source_group(r).startswith("AIConfigurator") and r.get("concurrency")]
    assert aic and all(v.benchmark_requests(r) == 20 * r["concurrency"] for r in aic)
    burst = [r for r in rows if v.source_group(r) == "TRT-LLM 0.14 online serving" and r["request_rate"] == "inf"]
    assert burst and all(v.benchmark_requests(r) == 500 for r in burst)
    poisson = [r for r in rows if v.source_group(r) == "TRT-LLM 0.14 online serving" and r["request_rate"] != "inf"]
    assert poisson and all(v.benchmark_requests(r) is None for r in poisson)
    llmperf = [r for r in rows if v.source_group(r) == "TRT-LLM issue 5929" and r["scenario"] == "fixed_concurrency"]
    assert llmperf and all(v.benchmark_requests(r) == 10 for r in llmperf)
    # Triton's frontend has no fitted overhead: those rows' TTFT is the engine's alone
    row = poisson[0]
    est, _ = v.predict(row)
    assert est.ttft_seconds == est.steady.ttft_seconds + est.admission_wait_seconds
