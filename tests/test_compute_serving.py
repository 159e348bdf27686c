"""Serving estimate: FLOPs per generated token and the roofline bounds of prefill and decode."""

import pytest

from llmplan.errors import LlmplanError
from llmplan.estimate.serving import (_sum_max_linear, kv_bytes_per_token, serving_estimate,
                                      weight_bytes_read)
from llmplan.models import count_params, get_preset
from llmplan.units import GiB


def test_kv_cache_per_token_llama2_7b():
    # Reference: Llama-2-7B at 4096 tokens, batch 1, bf16 holds exactly 2 GiB of K and V.
    assert kv_bytes_per_token(get_preset("llama-2-7b"), "bf16") * 4096 == 2 * GiB


def test_single_sequence_decode_is_memory_bound():
    spec = get_preset("llama-2-7b")
    e = serving_estimate(spec, "h100", prompt_tokens=512, new_tokens=128, batch=1)
    assert e.first_step_bound == e.last_step_bound == "memory"
    weights = count_params(spec).total * 2
    kv = kv_bytes_per_token(spec, "bf16")
    expected = sum((weights + kv * t) / 3.35e12 for t in range(513, 641))
    assert e.decode_seconds == pytest.approx(expected, rel=1e-9)
    assert e.tokens_per_s_per_sequence == pytest.approx(128 / expected)
    assert e.tokens_per_s_batch == e.tokens_per_s_per_sequence
    # 2 N per generated token plus attention over the context (Kaplan et al. 2020 Table 1)
    assert e.flops_per_new_token > 2 * (count_params(spec).total - count_params(spec).embeddings)


def test_prefill_is_compute_bound_and_large_batch_decode_turns_compute_bound():
    spec = get_preset("llama-2-70b")  # grouped-query attention: a small KV cache per token
    e = serving_estimate(spec, "h100", prompt_tokens=2000, new_tokens=8, batch=512, n_gpus=8, mfu=0.5)
    assert e.prefill_bound == "compute"
    assert e.prefill_seconds == pytest.approx(e.prefill_flops / (8 * 989.4e12 * 0.5))
    assert e.first_step_bound == "compute"


def test_decode_sum_matches_step_by_step():
    spec = get_preset("mistral-7b")
    e = serving_estimate(spec, "a100", prompt_tokens=100, new_tokens=300, batch=96, mfu=0.3)
    peak, bw = 312e12 * 0.3, 2039e9
    w, kv = weight_bytes_read(spec, 96, "bf16"), kv_bytes_per_token(spec, "bf16")
    e0 = serving_estimate(spec, "a100", prompt_tokens=100, new_tokens=1, batch=1, mfu=0.3)
    per_token = e0.flops_per_new_token - 4 * spec.layers * spec.q_dim * 101
    steps = [max(96 * (per_token + 4 * spec.layers * spec.q_dim * t) / peak, (w + 96 * kv * t) / bw)
             for t in range(101, 401)]
    assert e.decode_seconds == pytest.approx(sum(steps), rel=1e-9)


def test_sum_of_max_of_two_lines():
    for args in [(1, 2, 5, 1, 0, 10), (5, 1, 1, 2, 3, 9), (2, 1, 2, 1, 0, 4), (0, 1, 10, 0, 0, 0), (3, -1, 0, 1, 0, 7)]:
        a1, b1, a2, b2, t0, t1 = args
        brute = sum(max(a1 + b1 * t, a2 + b2 * t) for t in range(t0, t1 + 1))
        assert _sum_max_linear(*args) == pytest.approx(brute)


def test_moe_reads_more_experts_as_the_batch_grows():
    spec = get_preset("mixtral-8x7b")
    total = count_params(spec).total * 2
    one, many = weight_bytes_read(spec, 1, "bf16"), weight_bytes_read(spec, 64, "bf16")
    assert one < 0.4 * total
    assert one < many <= total


def test_encoder_models_and_bad_inputs_are_refused():
    with pytest.raises(LlmplanError, match="decoder"):
        serving_estimate(get_preset("bert-base"), "h100", 10, 10)
    with pytest.raises(LlmplanError, match="new-tokens"):
        serving_estimate(get_preset("llama-7b"), "h100", 10, 0)
    with pytest.raises(LlmplanError, match="batch"):
        serving_estimate(get_preset("llama-7b"), "h100", 10, 10, batch=0)


def test_largest_batch_comes_from_the_memory_model():
    max_inference_batch = pytest.importorskip("llmplan.estimate.memory").max_inference_batch

    spec = get_preset("llama-2-70b")
    one = serving_estimate(spec, "h100", 2000, 500)
    eight = serving_estimate(spec, "h100", 2000, 500, n_gpus=8)
    assert one.max_batch == 0  # 70B parameters in bf16 (140 GB) do not fit one 80 GB GPU
    assert eight.max_batch == max_inference_batch(spec, "h100", 2500, tp=8) > 0


def test_weight_only_quantisation_keeps_16_bit_matmuls_and_kv_cache():
    spec = get_preset("llama-2-7b")
    bf16 = serving_estimate(spec, "h100", 512, 64)
    int4 = serving_estimate(spec, "h100", 512, 64, dtype="int4")
    assert int4.kv_dtype == "bf16" and int4.kv_bytes_per_token == bf16.kv_bytes_per_token
    assert int4.weights_bytes_per_step == pytest.approx(bf16.weights_bytes_per_step / 4)
    assert int4.prefill_seconds == pytest.approx(bf16.prefill_seconds)  # compute-bound at the 16-bit peak
    assert int4.tokens_per_s_per_sequence > 3 * bf16.tokens_per_s_per_sequence  # decode reads a quarter
    fp8 = serving_estimate(spec, "h100", 512, 64, dtype="fp8")
    assert fp8.kv_dtype == "fp8" and fp8.prefill_seconds < bf16.prefill_seconds  # fp8 tensor cores


def test_batch_one_decode_bound_of_a_7b_model_on_an_h100():
    # Bandwidth bound: 3.35 TB/s (H100 SXM datasheet) / 13.5 GB of bf16 weights = about 249 tokens/s.
    e = serving_estimate(get_preset("llama-2-7b"), "h100", prompt_tokens=1, new_tokens=1)
    assert e.tokens_per_s_per_sequence == pytest.approx(249, rel=0.01)
    a100 = serving_estimate(get_preset("llama-2-7b"), "a100", prompt_tokens=1, new_tokens=1)
    assert a100.tokens_per_s_per_sequence == pytest.approx(2.039e12 / 13.48e9, rel=0.01)  # A100-80GB: 151/s
