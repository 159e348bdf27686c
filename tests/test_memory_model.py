"""The memory model's parts behave as their sources say: precision conventions, optimizers, sharding, LoRA,
offload, parallelism, grouped-query attention, fitting on a GPU."""

from dataclasses import replace

import pytest

from llmplan.errors import LlmplanError
from llmplan.estimate.activations import ActivationConfig, layer_terms
from llmplan.estimate.gpu_fit import fit_on_gpu, usable_bytes
from llmplan.estimate.memory import MemoryConfig, adapter_params, estimate_memory, max_inference_batch
from llmplan.models import count_params, resolve_model, spec_from_params
from llmplan.units import GiB

LLAMA2 = resolve_model("llama-2-7b")
N = count_params(LLAMA2).total


def est(**kw):
    return estimate_memory(MemoryConfig(spec=kw.pop("spec", LLAMA2), seq=kw.pop("seq", 1024), **kw))


def per_param(e, key):
    return e.breakdown[key] / e.params


def test_precision_conventions():
    mixed = est(dtype="bf16")
    assert (per_param(mixed, "weights"), per_param(mixed, "gradients"), per_param(mixed, "optimizer")) == \
        pytest.approx((2, 2, 12))  # ZeRO paper: 2 + 2 + K, K = 12
    fp32 = est(dtype="fp32")
    assert (per_param(fp32, "weights"), per_param(fp32, "gradients"), per_param(fp32, "optimizer")) == \
        pytest.approx((4, 4, 8))  # no master copy in pure fp32
    megatron = est(dtype="bf16", grad_dtype="fp32")
    assert megatron.model_states_bytes / N == pytest.approx(18)  # Megatron: fp32 main_grad
    amp = est(dtype="bf16", amp=True)  # autocast: 4 + 4 + 8, plus a bf16 copy of the matmul weights
    assert per_param(amp, "gradients") == pytest.approx(4) and per_param(amp, "optimizer") == pytest.approx(8)
    matmul = N - 65 * 4096 - 32000 * 4096  # all but the norms and the input embedding (the head is a matmul)
    assert amp.breakdown["weights"] == pytest.approx(4 * N + 2 * matmul)
    assert amp.breakdown["activations"] > est(dtype="bf16").breakdown["activations"]  # fp32 residual stream


@pytest.mark.parametrize("opt, states", [("adamw", 8), ("sgd", 0), ("sgd-momentum", 4), ("lion", 4),
                                         ("adam8bit", 2 + 8 / 2048)])
def test_optimizer_states(opt, states):
    e = est(dtype="fp32", optimizer=opt)
    assert per_param(e, "optimizer") == pytest.approx(states)


def test_adafactor_factors_matrices():
    e = est(dtype="fp32", optimizer="adafactor")
    assert 0 < per_param(e, "optimizer") < 0.01  # (r + c) per r x c matrix: a tiny fraction of Adam's 8 bytes


def test_lora_adapters_exact_and_only_they_train():
    # Hu et al. 2021: r (d_in + d_out) per adapted matrix. Llama-2-7B, q and v, r = 16: 32 x 2 x 16 x 8192.
    assert adapter_params(LLAMA2, 16, ("q", "v")) == 32 * 2 * 16 * (4096 + 4096)
    e = est(mode="lora", dtype="bf16", lora_rank=16, lora_targets=("q", "v"))
    n_ad = 32 * 2 * 16 * 8192
    assert e.trainable_params == n_ad
    assert e.breakdown["gradients"] == 4 * n_ad and e.breakdown["optimizer"] == 8 * n_ad
    assert e.breakdown["weights"] == 2 * N + 4 * n_ad  # frozen bf16 base + fp32 adapters
    half = est(mode="lora", dtype="bf16", lora_rank=16, lora_targets=("q", "v"), adapter_dtype="bf16")
    assert half.breakdown["weights"] == 2 * N + 2 * n_ad and half.breakdown["gradients"] == 2 * n_ad
    q = est(mode="qlora", dtype="bf16", lora_rank=16, lora_targets=("q", "v"))
    assert q.breakdown["weights"] < 0.3 * e.breakdown["weights"]  # NF4 base


def test_lora_drops_inputs_of_frozen_linears_but_keeps_activations_of_every_layer():
    full = est(mode="finetune", dtype="bf16", dropout=False)
    some = est(mode="lora", dtype="bf16", lora_targets=("q", "v"), dropout=False)
    every = est(mode="lora", dtype="bf16", dropout=False)
    assert some.breakdown["activations"] < every.breakdown["activations"] <= 1.05 * full.breakdown["activations"]
    assert some.breakdown["activations"] > 0.5 * full.breakdown["activations"]


def test_offload_moves_states_to_cpu():
    base = est(dtype="bf16", zero=3, dp=8)
    opt = est(dtype="bf16", zero=3, dp=8, offload="optimizer")
    assert opt.breakdown["optimizer"] == 0 and opt.cpu_bytes == base.breakdown["optimizer"]
    par = est(dtype="bf16", zero=3, dp=8, offload="params")
    assert par.breakdown["weights"] == par.breakdown["gradients"] == 0
    assert par.cpu_bytes == base.model_states_bytes
    served = est(mode="infer", dtype="bf16")
    streamed = est(mode="infer", dtype="bf16", offload="params")
    assert streamed.cpu_bytes == served.breakdown["weights"] and streamed.breakdown["weights"] == 0
    assert 0 < streamed.breakdown["overhead"] - served.breakdown["overhead"] < served.breakdown["weights"] / 8


def test_tensor_and_pipeline_parallel_split_states():
    one, tp = est(dtype="bf16"), est(dtype="bf16", tp=4)
    assert tp.breakdown["weights"] < one.breakdown["weights"] / 3.9  # norms replicated, the rest split
    pp = est(dtype="bf16", pp=4)
    assert pp.stage in ("first", "last")
    assert pp.breakdown["weights"] < one.breakdown["weights"] / 3.5


def test_sequence_parallel_and_selective_recompute_shrink_activations():
    spec = LLAMA2
    kw = dict(seq=2048, batch=1, bytes_per_value=2, attention="eager", dropout=True, tp=8)
    plain = sum(t.bytes for t in layer_terms(spec, ActivationConfig(**kw)))
    sp = sum(t.bytes for t in layer_terms(spec, ActivationConfig(**kw, sp=True)))
    sel = sum(t.bytes for t in layer_terms(spec, ActivationConfig(**kw, sp=True, recompute="selective")))
    full = sum(t.bytes for t in layer_terms(spec, ActivationConfig(**kw, sp=True, recompute="full")))
    assert plain > sp > sel > full == 2 * 2048 * 4096 / 8


def test_gqa_and_flash_terms():
    mha = ActivationConfig(seq=512, batch=1, attention="flash", dropout=False)
    llama3 = resolve_model("llama-3-8b")  # 8 kv heads of 32: K and V are a quarter of Q
    terms = {t.name: t.bytes for t in layer_terms(llama3, mha)}
    assert terms["attn_qkv"] == 2 * 512 * (4096 + 2 * 1024)
    assert terms["attn_softmax_lse"] == 4 * 512 * 32  # flash keeps the fp32 logsumexp, no s x s scores
    assert "attn_softmax" not in terms
    eager = {t.name: t.bytes for t in layer_terms(llama3, replace(mha, attention="eager"))}
    assert eager["attn_softmax"] == 2 * 512 * 512 * 32
    assert eager["attn_k"] == 2 * 512 * 4096  # repeated to every query head before the score matmul
    gated = {t.name: t.bytes for t in layer_terms(llama3, mha)}
    assert gated["mlp_gate_up"] == 2 * 2 * 512 * 14336 and gated["mlp_product"] == 2 * 512 * 14336


def test_logits_grow_with_vocabulary():
    llama3 = resolve_model("llama-3-8b")  # 128,256-token vocabulary
    e = est(spec=llama3, seq=8192, dropout=False)
    assert e.activation_detail["output_and_loss"] >= 4 * 8192 * 128256  # fp32 log-probabilities


def test_encoder_decoder_and_moe_estimate():
    t5 = resolve_model("flan-t5-xl")
    e = est(spec=t5, seq=512)
    assert e.activation_detail["per_layer"] > 0 and e.total_bytes > e.model_states_bytes
    assert est(spec=t5, seq=512, mode="infer").breakdown["kv_cache"] > 0  # self + cross cache
    assert est(spec=resolve_model("bert-base"), seq=512, mode="infer").breakdown["kv_cache"] == 0
    assert est(spec=resolve_model("mixtral-8x7b"), seq=512).breakdown["activations"] > 0


def test_profile_overhead_replaces_default():
    a = est()
    b = estimate_memory(MemoryConfig(spec=LLAMA2, seq=1024, measured_overhead_bytes=123_456_789,
                                     overhead_source="test"))
    assert b.breakdown["overhead"] == 123_456_789 and a.breakdown["overhead"] != 123_456_789
    assert b.allocated_bytes == a.allocated_bytes


def test_zero3_gpus_needed_is_the_smallest_dp_that_fits():
    spec = resolve_model("llama-2-70b")
    cfg = MemoryConfig(spec=spec, seq=4096, zero=3, dp=8, recompute="full")
    fit = fit_on_gpu(cfg, 80 * GiB)
    usable = usable_bytes(80 * GiB)
    dp = fit.gpus_needed
    assert estimate_memory(replace(cfg, dp=dp)).total_bytes <= usable
    assert estimate_memory(replace(cfg, dp=dp - 1)).total_bytes > usable
    no_shard = fit_on_gpu(replace(cfg, zero=0, dp=1), 80 * GiB)
    assert not no_shard.fits and "--zero 3" in no_shard.suggestion
    assert no_shard.gpus_needed == min(r.gpus for r in no_shard.remedies)


def test_max_inference_batch():
    b = max_inference_batch(LLAMA2, "h100", 4096)
    usable = usable_bytes(80 * GiB)
    at = estimate_memory(MemoryConfig(spec=LLAMA2, mode="infer", seq=4096, batch=b)).total_bytes
    over = estimate_memory(MemoryConfig(spec=LLAMA2, mode="infer", seq=4096, batch=b + 1)).total_bytes
    assert at <= usable < over
    assert max_inference_batch(LLAMA2, "h100", 4096, kv_dtype="fp8") > b
    assert max_inference_batch(resolve_model("llama-2-70b"), "h100", 4096) == 0


@pytest.mark.parametrize("kw, words", [
    (dict(tp=3), "divide the 32 attention heads"), (dict(zero=4), "--zero"), (dict(batch=0), "--batch"),
    (dict(dtype="int3"), "dtype"), (dict(pp=3), "--pp 3"), (dict(mode="train", dtype="int4"), "int4"),
    (dict(mode="infer", zero=2), "inference"), (dict(offload="params"), "--zero 3"),
    (dict(optimizer="adam"), "optimizer"), (dict(mode="qlora", dtype="int8"), "qlora"),
    (dict(amp=True, dtype="fp32"), "autocast"),
])
def test_bad_configs(kw, words):
    with pytest.raises(LlmplanError, match=words):
        est(**kw)


def test_bare_count_keeps_the_count():
    e = estimate_memory(MemoryConfig(spec=spec_from_params(1e9), dtype="fp32", seq=512))
    assert e.params == 1_000_000_000 and e.breakdown["weights"] == 4_000_000_000


def test_implementation_accountings_differ_where_the_kernels_do():
    spec = resolve_model("llama-2-7b")
    c = ActivationConfig(seq=256, batch=1, bytes_per_value=2, attention="flash", dropout=True)
    terms = {impl: {t.name: t.bytes for t in layer_terms(spec, replace(c, impl=impl))}
             for impl in ("fused", "pytorch", "pytorch-cuda")}
    n, h = 256, 4096
    assert terms["fused"]["norm_attn"] == terms["pytorch-cuda"]["norm_attn"] == 2 * n * h  # fused kernel: input
    assert terms["pytorch"]["norm_attn"] == 8 * n * h  # CPU composite: fp32 input copy + fp32 normalised
    assert terms["fused"]["attn_residual_dropout_mask"] == terms["pytorch-cuda"]["attn_residual_dropout_mask"] == n * h
    assert terms["pytorch"]["attn_residual_dropout_mask"] == 2 * n * h  # CPU dropout keeps bf16 noise
    assert "attn_out_proj_copy" in terms["pytorch"] and "attn_out_proj_copy" not in terms["pytorch-cuda"]


def test_cross_attention_terms():
    """A decoder layer of an encoder-decoder model adds its cross-attention block: a norm, the query input, Q, K and V
    of the encoder output (at the encoder length), the scores over s x s_enc, the output projection's input, a mask."""
    t5 = resolve_model("flan-t5-base")  # 12 heads of 64, hidden 768, gated-GELU ffn 2048, dropout
    c = ActivationConfig(seq=128, batch=2, bytes_per_value=2, attention="eager", dropout=True, encoder_seq=512)
    self_only = sum(t.bytes for t in layer_terms(t5, c))
    cross = {t.name: t.bytes for t in layer_terms(t5, c, cross=True)}
    n, ne, h, q, a = 256, 1024, 768, 768, 12
    added = (2 * n * h + 4 * n) + 2 * n * h + 2 * n * q + 2 * 2 * ne * q + (2 + 1 + 2) * n * 512 * a \
        + 2 * n * q + n * h
    assert sum(cross.values()) - self_only == added
    assert cross["cross_softmax"] == 2 * n * 512 * a
