"""`llmplan serve`'s estimator: memory, step time, continuous batching, queueing, layouts."""

import math

import pytest

from llmplan.errors import LlmplanError
from llmplan.estimate.kvcache import cache_bytes
from llmplan.estimate.serve_engines import get_engine
from llmplan.estimate.serve_layouts import fewest_gpus_for_rate, layouts_at_slo
from llmplan.estimate.serve_memory import WEIGHT_FORMATS, serve_memory, weight_bytes, weight_plan
from llmplan.estimate.serve_model import deployment, serve_estimate
from llmplan.estimate.serve_queue import steady_state
from llmplan.estimate.serve_step import DECODE_ATTENTION_FLOOR_SECONDS, _touched, step_time
from llmplan.hardware import get_gpu
from llmplan.models import count_params, get_preset
from llmplan.models.layers import Attention, LayerGroup, MoE
from llmplan.models.spec import ModelSpec
from llmplan.models.weight_format import WeightFormat
from llmplan.units import GiB

H100 = get_gpu("h100")


def test_weight_formats_count_their_scales():
    # NVFP4: 4 bits + one FP8 scale per 16 values; MXFP4: 4 bits + one E8M0 scale per 32; AWQ int4 group 128
    assert WEIGHT_FORMATS["nvfp4"] == 0.5625 and WEIGHT_FORMATS["mxfp4"] == 0.53125
    assert WEIGHT_FORMATS["int4"] == pytest.approx(0.515625)


def test_weights_split_over_tp_and_keep_embeddings_16_bit():
    spec = get_preset("llama-3-70b")
    b = count_params(spec)
    bf16 = weight_bytes(spec, weight_plan(spec, "bf16"))
    assert bf16.total == pytest.approx(2 * b.total)
    fp8 = weight_bytes(spec, weight_plan(spec, "fp8"))
    assert fp8.embeddings == 2 * (b.embeddings + b.output_head)
    assert fp8.linear + fp8.experts == pytest.approx(b.total - b.embeddings - b.output_head - b.norms)
    assert fp8.per_gpu(4) == pytest.approx((fp8.total - fp8.norms) / 4 + fp8.norms)


def test_checkpoint_format_for_experts_only():
    moe = MoE(8, 2, 1024)
    att = Attention(8, 8, 64)
    spec = ModelSpec.from_groups(groups=(LayerGroup(4, att, moe),), name="toy", arch="decoder", hidden=512,
                                 vocab=1000, weight_format=WeightFormat("mxfp4", 4, 32, 1.0, applies_to="experts"))
    plan = weight_plan(spec, None)
    assert (plan.linear, plan.experts) == ("bf16", "mxfp4")
    w = weight_bytes(spec, plan)
    assert w.experts == pytest.approx(4 * 8 * moe.expert_params(512) * 0.53125)


@pytest.mark.parametrize("engine", ["vllm", "trtllm"])
def test_kv_pool_follows_the_engines_rule_in_pages(engine):
    spec, eng = get_preset("llama-3-8b"), get_engine(engine)
    m = serve_memory(spec, H100, weight_plan(spec, "bf16"), "bf16", 1, eng, 1000)
    if eng.memory_base == "total":    # vLLM: utilisation of all memory, weights included
        expected = 0.9 * H100.memory_bytes - m.weights_bytes - m.activation_bytes - m.reserve_bytes
    else:                              # TensorRT-LLM: a fraction of what is free after the weights
        expected = 0.9 * (H100.memory_bytes - m.weights_bytes - m.activation_bytes - m.reserve_bytes)
    assert m.kv_pool_bytes == pytest.approx(expected)
    pages = math.ceil(1000 / eng.block_tokens) * eng.block_tokens
    assert m.kv_bytes_per_request == cache_bytes(spec, pages, 1, "bf16").total_bytes
    assert m.max_concurrency == int(m.kv_pool_bytes // m.kv_bytes_per_request)


def test_touched_experts():
    assert _touched(8, 2, 1) == pytest.approx(2)
    assert _touched(256, 8, 4) == pytest.approx(256 * (1 - (1 - 8 / 256) ** 4))  # ~31 of 256 at batch 4
    assert _touched(8, 2, 10_000) == pytest.approx(8)


def test_single_decode_step_is_the_weight_stream_plus_fixed_costs():
    spec = get_preset("llama-3-8b")
    dep = deployment(spec, H100, dtype="bf16")
    st = step_time(dep, 1, 1000)
    hbm = dep.rates.hbm_bytes_per_s
    # every weight but the input embedding (and the norms) is read once: the linear layers and the output head
    b = count_params(spec)
    assert st.weight_bytes == pytest.approx(2 * (b.total - b.embeddings - b.norms))
    # batch 1 is memory-bound: the stream plus a launch per GEMM (4 per layer and the head)
    launches = (4 * spec.layers + 1) * 4e-6
    assert st.weight_bytes / hbm < st.gemm_seconds < st.weight_bytes / hbm + 1.5 * launches
    # the KV read, plus each attention layer's decode kernel floor
    assert st.attention_seconds == pytest.approx(cache_bytes(spec, 1000, 1, "bf16").total_bytes / hbm
                                                 + spec.layers * DECODE_ATTENTION_FLOOR_SECONDS)
    assert st.fixed_seconds == pytest.approx(spec.layers * dep.engine.fixed_layer_seconds)
    assert st.comm_seconds == 0


def test_weight_only_formats_stream_at_their_stored_width():
    spec = get_preset("llama-3-8b")
    bf16, int4 = deployment(spec, H100, dtype="bf16"), deployment(spec, H100, dtype="int4")
    assert int4.compute_dtype == "bf16"  # W4A16: dequantized to 16-bit math
    a, b = step_time(bf16, 1, 500), step_time(int4, 1, 500)
    assert b.weight_bytes < 0.4 * a.weight_bytes and b.gemm_seconds < 0.5 * a.gemm_seconds
    big_a, big_b = step_time(bf16, 0, 0, 8192), step_time(int4, 0, 0, 8192)
    assert big_b.gemm_seconds == pytest.approx(big_a.gemm_seconds, rel=0.05)  # compute-bound: no gain


def test_tensor_parallel_all_reduces_two_per_layer():
    spec = get_preset("llama-3-70b")
    dep = deployment(spec, H100, tp=4, dtype="fp8")
    st = step_time(dep, 64, 1500)
    per = dep.engine.allreduce_latency_seconds + 2 * 3 / 4 * 64 * spec.hidden * 2 / dep.rates.bus_bytes_per_s
    assert st.comm_seconds == pytest.approx(2 * spec.layers * per)


def test_moe_reads_more_experts_as_the_batch_grows():
    spec = get_preset("mixtral-8x7b")
    dep = deployment(spec, H100, tp=2, dtype="fp8")
    small, large = step_time(dep, 1, 500), step_time(dep, 256, 500)
    assert small.weight_bytes < 0.5 * large.weight_bytes
    assert large.weight_bytes == pytest.approx(weight_bytes(spec, dep.plan).per_gpu(2)
                                               - weight_bytes(spec, dep.plan).embeddings / 2
                                               - weight_bytes(spec, dep.plan).norms, rel=0.01)


def test_more_concurrency_more_throughput_and_slower_tokens():
    spec = get_preset("llama-3-8b")
    dep = deployment(spec, H100, dtype="fp8")
    states = [steady_state(dep, c, 1000, 500) for c in (1, 8, 64, 256)]
    rates = [s.concurrency * 500 / s.cycle_seconds for s in states]
    assert rates == sorted(rates) and [s.tpot_seconds for s in states] == sorted(s.tpot_seconds for s in states)
    one = states[0]
    assert one.prefill_wait_steps == 0  # a lone client never waits for another's prefill
    assert one.ttft_seconds == pytest.approx(one.mixed.seconds)


def test_rate_obeys_littles_law_and_overload_is_said():
    spec = get_preset("llama-3-8b")
    e = serve_estimate(spec, H100, input_tokens=1000, output_tokens=200, rate=5.0, dtype="fp8")
    assert e.requests_per_second == pytest.approx(5.0, rel=1e-3)
    assert e.concurrency == pytest.approx(5.0 * (e.steady.ttft_seconds + e.tpot_seconds * e.steady.decode_steps),
                                          rel=0.05)
    top = serve_estimate(spec, H100, input_tokens=1000, output_tokens=200, max_throughput=True, dtype="fp8")
    over = serve_estimate(spec, H100, input_tokens=1000, output_tokens=200, rate=2 * top.requests_per_second,
                          dtype="fp8")
    assert over.overloaded and math.isinf(over.ttft_seconds)
    near = serve_estimate(spec, H100, input_tokens=1000, output_tokens=200, rate=0.95 * top.requests_per_second,
                          dtype="fp8")
    assert near.ttft_seconds > e.ttft_seconds


def test_replicas_multiply_throughput():
    spec = get_preset("llama-3-8b")
    one = serve_estimate(spec, H100, input_tokens=500, output_tokens=500, concurrency=32)
    four = serve_estimate(spec, H100, input_tokens=500, output_tokens=500, concurrency=128, gpus=4)
    assert four.replicas == 4
    assert four.output_tokens_per_second == pytest.approx(4 * one.output_tokens_per_second)
    assert four.output_tokens_per_second_per_gpu == pytest.approx(one.output_tokens_per_second_per_gpu)


def test_fp8_kv_holds_twice_the_requests():
    spec = get_preset("llama-3-70b")
    a = serve_estimate(spec, H100, input_tokens=2000, output_tokens=500, tp=4, max_throughput=True, dtype="fp8",
                       kv_dtype="bf16", engine="trtllm")
    b = serve_estimate(spec, H100, input_tokens=2000, output_tokens=500, tp=4, max_throughput=True, dtype="fp8",
                       kv_dtype="fp8", engine="trtllm")
    assert b.memory.max_concurrency == pytest.approx(2 * a.memory.max_concurrency, rel=0.01)


@pytest.mark.parametrize("kwargs,message", [
    (dict(tp=3), "does not divide the 64 attention heads"),
    (dict(tp=2, gpus=3), "not a multiple of --tp"),
    (dict(concurrency=1e6), "does not fit"),
    (dict(ep=2), "has none"),
])
def test_bad_layouts_say_what_would_work(kwargs, message):
    spec = get_preset("llama-3-70b")
    base = dict(input_tokens=1000, output_tokens=200, tp=4, concurrency=8)
    with pytest.raises(LlmplanError, match=message):
        serve_estimate(spec, H100, **{**base, **kwargs})


def test_tp_beyond_the_kv_heads_replicates_them():
    spec = get_preset("llama-3-8b")  # 8 KV heads
    e = serve_estimate(spec, H100, input_tokens=1000, output_tokens=200, tp=16, concurrency=8)
    assert any("replicated" in n for n in e.notes)
    assert e.memory.kv_bytes_per_request == serve_estimate(
        spec, H100, input_tokens=1000, output_tokens=200, tp=8, concurrency=8).memory.kv_bytes_per_request
    odd = spec.with_(kv_heads=6, heads=24, head_dim=128)
    with pytest.raises(LlmplanError, match="KV heads"):
        serve_estimate(odd, H100, input_tokens=100, output_tokens=10, tp=4, concurrency=1)


def test_context_and_a_model_that_does_not_fit():
    with pytest.raises(LlmplanError, match="context"):
        serve_estimate(get_preset("llama-2-7b"), H100, input_tokens=4000, output_tokens=200, concurrency=1)
    with pytest.raises(LlmplanError, match="--tp"):
        serve_estimate(get_preset("llama-3.1-405b"), H100, input_tokens=1000, output_tokens=200, concurrency=1)


def test_layouts_meet_their_targets_and_rank_by_throughput_per_gpu():
    spec = get_preset("llama-3-70b")
    found = layouts_at_slo(spec, H100, 8, 2000, 500, 2.0, 0.05, dtype="fp8")
    assert found
    for x in found:
        assert x.ttft_seconds <= 2.0 and x.tpot_seconds <= 0.05 and x.tp * x.replicas == 8
    per_gpu = [x.output_tokens_per_second_per_gpu for x in found]
    assert per_gpu == sorted(per_gpu, reverse=True)


def test_fewest_gpus_for_a_rate():
    spec = get_preset("llama-3-8b")
    found = fewest_gpus_for_rate(spec, H100, 40.0, 1000, 200, 1.0, 0.03, max_tp=8)
    best = found[0]
    assert best.gpus == min(x.gpus for x in found)
    # its replicas serve the rate within the targets: each replica's goodput times replicas >= rate
    assert best.ttft_seconds <= 1.0 and best.tpot_seconds <= 0.03
    one = layouts_at_slo(spec, H100, best.tp, 1000, 200, 1.0, 0.03)
    assert one[0].requests_per_second * best.replicas >= 40.0 - 1e-6


def test_fewest_gpus_for_a_rate_stay_within_max_gpus():
    spec = get_preset("llama-3-8b")
    free = fewest_gpus_for_rate(spec, H100, 40.0, 1000, 200, 1.0, 0.03)
    fewest = free[0].gpus
    bounded = fewest_gpus_for_rate(spec, H100, 40.0, 1000, 200, 1.0, 0.03, max_gpus=fewest + 1)
    assert bounded and all(x.gpus <= fewest + 1 for x in bounded) and bounded[0].gpus == fewest
    # a bound that is not a multiple of a TP still admits that TP's replicas within it
    wide = fewest_gpus_for_rate(spec, H100, 40.0, 1000, 200, 1.0, 0.03, max_gpus=3 * fewest + 1)
    assert {x.tp for x in wide} == {x.tp for x in free if x.gpus <= 3 * fewest + 1}
    with pytest.raises(LlmplanError, match=f"needs {fewest} x H100.*raise --gpus to {fewest}"):
        fewest_gpus_for_rate(spec, H100, 40.0, 1000, 200, 1.0, 0.03, max_gpus=fewest - 1)


def test_memory_fraction_is_checked():
    spec = get_preset("llama-3-8b")
    with pytest.raises(LlmplanError, match="fraction"):
        serve_memory(spec, H100, weight_plan(spec, "bf16"), "bf16", 1, get_engine("vllm"), 100,
                     memory_fraction=1.5)
    assert serve_memory(spec, H100, weight_plan(spec, "bf16"), "bf16", 1, get_engine("vllm"), 100).memory_bytes \
        == 80 * GiB


def test_vllm_limits_depend_on_the_gpu():
    # vllm/engine/arg_utils.py get_batch_defaults: >= 70 GiB and not an A100 -> 1024 sequences, 8192 tokens a step
    spec = get_preset("llama-3-8b")
    big = deployment(spec, H100, engine="vllm")
    small = deployment(spec, get_gpu("a100"), engine="vllm")
    assert (big.engine.max_batch, big.prefill_chunk) == (1024, 8192)
    assert (small.engine.max_batch, small.prefill_chunk) == (256, 2048)
    e = serve_estimate(spec, get_gpu("a100"), input_tokens=100, output_tokens=100, max_throughput=True,
                       engine="vllm")
    assert e.max_concurrency == 256


def test_queueing_delay_grows_as_the_rate_nears_capacity():
    spec = get_preset("llama-3.1-70b")
    kw = dict(input_tokens=2000, output_tokens=300, tp=4, dtype="fp8", engine="vllm")
    cap = serve_estimate(spec, H100, max_throughput=True, **kw).requests_per_second
    ttfts = [serve_estimate(spec, H100, rate=f * cap, **kw).ttft_seconds for f in (0.2, 0.5, 0.8, 0.95)]
    assert ttfts == sorted(ttfts) and ttfts[-1] > 2 * ttfts[0]


def test_attention_data_parallelism_stops_duplicating_the_mla_latent():
    spec = get_preset("deepseek-r1")
    h200 = get_gpu("h200")
    kw = dict(input_tokens=1024, output_tokens=2048, tp=8, ep=8, max_throughput=True, engine="trtllm")
    tp = serve_estimate(spec, h200, **kw)
    dp = serve_estimate(spec, h200, attention_dp=True, **kw)
    assert any("duplicated 8 times" in n for n in tp.notes) and dp.attention_dp
    # each rank holds its own requests' latents whole: one request costs the same bytes, but on one rank only
    assert dp.memory.kv_bytes_per_request == tp.memory.kv_bytes_per_request
    # the attention weights are replicated on every rank, the experts still split
    w = weight_bytes(spec, weight_plan(spec, None))
    assert dp.memory.weights_bytes - tp.memory.weights_bytes == pytest.approx(w.mixers * (1 - 1 / 8))
    assert dp.memory.max_concurrency > 5 * tp.memory.max_concurrency


def test_layout_search_can_include_attention_data_parallelism():
    spec = get_preset("mixtral-8x7b")
    plain = layouts_at_slo(spec, H100, 4, 1000, 200, None, 0.05)
    both = layouts_at_slo(spec, H100, 4, 1000, 200, None, 0.05, attention_dp=True)
    assert not any(x.attention_dp for x in plain) and any(x.attention_dp for x in both)
    assert {(x.tp, x.ep) for x in plain} == {(x.tp, x.ep) for x in both if not x.attention_dp}
    assert all(x.tpot_seconds <= 0.05 for x in both)
