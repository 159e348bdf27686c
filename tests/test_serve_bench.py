"""TTFT at a fixed concurrency as a benchmark of N requests reports it (llmplan.estimate.serve_bench): the first
wave, when all C prompts arrive at once, then the staggered regime."""

import pytest

from llmplan.errors import LlmplanError
from llmplan.estimate.serve_bench import benchmark_ttft_seconds, later_ttft_seconds, run_benchmark
from llmplan.estimate.serve_model import deployment, serve_estimate
from llmplan.estimate.serve_queue import steady_state
from llmplan.estimate.serve_step import step_time
from llmplan.hardware import get_gpu
from llmplan.models import get_preset

H100 = get_gpu("h100")
SPEC = get_preset("llama-3.1-8b")


def _dep(chunk=8192):
    return deployment(SPEC, H100, engine="vllm", prefill_chunk=chunk)


def test_one_request_on_an_idle_engine_is_one_prefill():
    dep = _dep()
    b = run_benchmark(dep, 1, 1, 4000, 100)
    assert b.first_wave_ttft_seconds == pytest.approx(step_time(dep, 0.0, 0.0, 4000.0).seconds)
    # afterwards the one client finds its engine idle again: no step in progress to wait for
    assert later_ttft_seconds(dep, 1.0, 4000, 100) == pytest.approx(steady_state(dep, 1.0, 4000, 100).ttft_seconds)


def test_the_first_wave_queues_behind_the_prompts_before_it():
    # each 8,000-token prompt needs a step of its own (budget 8,192 less the decodes): request i waits for i - 1
    # prefills, (C + 1) / 2 on average, in steps that also carry the decodes of those already prefilled
    dep = _dep()
    one = run_benchmark(dep, 1, 1, 8000, 500).first_wave_ttft_seconds
    wave = run_benchmark(dep, 16, 16, 8000, 500).first_wave_ttft_seconds
    assert 8.5 <= wave / one < 12.0


def test_prompts_that_fit_one_step_together_share_it():
    dep = _dep()
    b = run_benchmark(dep, 8, 8, 1000, 100)  # 8,000 tokens: one step
    assert b.first_wave_ttft_seconds == pytest.approx(step_time(dep, 0.0, 0.0, 8000.0).seconds)


def test_the_benchmark_mean_mixes_the_first_wave_and_the_later_regime():
    dep = _dep()
    mean, wave, later = benchmark_ttft_seconds(dep, 32.0, 32 * 20, 8000, 500, 1000)
    assert mean == pytest.approx((32 * wave + (640 - 32) * later) / 640)
    assert later < mean < wave
    assert benchmark_ttft_seconds(dep, 32.0, 32, 8000, 500, 1000)[0] == pytest.approx(wave)
    assert benchmark_ttft_seconds(dep, 32.0, None, 8000, 500, 1000) == (later, None, later)


def test_later_requests_wait_for_the_step_in_progress():
    dep = _dep()
    s = steady_state(dep, 32.0, 2000, 500, closed_loop=True, staggered=True)
    later = later_ttft_seconds(dep, 32.0, 2000, 500)
    assert s.decode_only.seconds / 2 < later - s.ttft_seconds < s.mixed.seconds


def test_a_burst_beyond_the_slots_waits_for_them():
    dep = _dep()
    free = run_benchmark(dep, 64, 64, 1000, 200, slots=64).ttft_seconds
    capped = run_benchmark(dep, 64, 64, 1000, 200, slots=16).ttft_seconds
    assert capped > 2 * free
    b = run_benchmark(dep, 4, 40, 1000, 50)
    assert b.requests == 40 and b.steps > 40 and b.tpot_seconds > 0


def test_fewer_requests_than_clients_is_refused():
    with pytest.raises(LlmplanError, match="fewer than"):
        run_benchmark(_dep(), 8, 4, 1000, 100)


def test_serve_estimate_reports_the_benchmark_mean():
    kw = dict(input_tokens=8000, output_tokens=1000, tp=2, concurrency=32.0)
    long_run = serve_estimate(SPEC, H100, **kw)
    bench = serve_estimate(SPEC, H100, requests=640, **kw)
    assert long_run.requests is None and long_run.first_wave_ttft_seconds is None
    assert long_run.ttft_seconds == pytest.approx(long_run.later_ttft_seconds)
    assert bench.later_ttft_seconds == pytest.approx(long_run.ttft_seconds)
    assert long_run.ttft_seconds < bench.ttft_seconds < bench.first_wave_ttft_seconds
    assert bench.tpot_seconds == long_run.tpot_seconds  # TPOT and throughput: the cycle average, unchanged
    burst = serve_estimate(SPEC, H100, input_tokens=200, output_tokens=200, max_throughput=True, requests=500)
    steady = serve_estimate(SPEC, H100, input_tokens=200, output_tokens=200, max_throughput=True)
    assert burst.ttft_seconds > steady.ttft_seconds and burst.requests == 500


@pytest.mark.parametrize("kw,message", [
    (dict(concurrency=32.0, requests=16), "fewer than --concurrency 32"),
    (dict(rate=2.0, requests=100), "drop it with --rate"),
    (dict(concurrency=4.0, requests=0), "whole number from 1"),
])
def test_requests_bad_input(kw, message):
    with pytest.raises(LlmplanError, match=message):
        serve_estimate(SPEC, H100, input_tokens=1000, output_tokens=100, **kw)


def test_cli_requests(cli):
    base = ("serve", "--model", "llama-3.1-8b", "--gpu", "h100", "-i", "8000", "-o", "500", "-c", "16")
    r = cli(*base, "--requests", "320", "--json")
    assert r.code == 0, r.stderr
    out = r.json()
    assert out["requests"] == 320 and out["later_ttft_seconds"] < out["ttft_seconds"] < \
        out["first_wave_ttft_seconds"]
    r = cli(*base, "--json")
    assert r.json()["requests"] is None and r.json()["first_wave_ttft_seconds"] is None
    r = cli(*base, "--requests", "8")
    assert r.code == 2 and len(r.stderr.strip().splitlines()) == 1 and "send at least 16" in r.stderr
