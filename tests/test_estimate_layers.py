"""Estimators over layer groups: KV cache per layer kind, per-GPU weights under TP/PP/EP, stored weight formats and
FLOPs of sliding, MLA, MoE and recurrent layers, on current architectures built by hand from their configs."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from layer_specs import deepseek_v3, gemma2_9b, gemma3_4b, gpt_oss_20b, llama4_scout, nemotron_h_56b
from llmplan.errors import LlmplanError
from llmplan.estimate.flops import causal_pairs, forward_parts, keys_per_query
from llmplan.estimate.kvcache import cache_bytes
from llmplan.estimate.memory import MemoryConfig, estimate_memory
from llmplan.estimate.shapes import block_linears, matrix_params, stage_params
from llmplan.models import get_preset
from llmplan.models.layers import Attention, Dense, LayerGroup, MoE
from llmplan.models.params import count_params
from llmplan.models.spec import ModelSpec

# shared/ beside the checkout (or inside it on a device machine; two levels up from a worktree under wt/)
_ROOT = Path(__file__).resolve().parents[1]
REF = next((p / "shared" / "reference" / "hf-configs" for p in (_ROOT, _ROOT.parent, _ROOT.parent.parent)
            if (p / "shared" / "reference" / "hf-configs").is_dir()), _ROOT / "shared" / "reference" / "hf-configs")
BUILT = {"deepseek-v3": deepseek_v3, "gemma-2-9b-it": gemma2_9b, "gemma-3-4b-it": gemma3_4b,
         "gpt-oss-20b": gpt_oss_20b, "llama-4-scout-17b-16e-instruct": llama4_scout,
         "nemotron-h-56b-base-8k": nemotron_h_56b}
needs_ref = pytest.mark.skipif(not REF.is_dir(), reason="shared/reference/hf-configs not present")


def _json(name):
    return json.loads((REF / name).read_text())


@needs_ref
@pytest.mark.parametrize("name", sorted(BUILT))
def test_hand_built_specs_count_like_transformers(name):
    expected = _json("expected_params.json")[name]
    b = count_params(BUILT[name]())
    assert b.total == expected["params"]
    if expected.get("params_active"):
        assert b.active == expected["params_active"]


@needs_ref
@pytest.mark.parametrize("name", sorted(BUILT))
def test_kv_cache_and_state_match_what_a_server_holds(name):
    """shared/reference/hf-configs/kv_expected.json: bf16 cache of one 32k-token sequence, per layer kind."""
    ref = _json("kv_expected.json")[name]
    spec = BUILT[name]()
    est = estimate_memory(MemoryConfig(spec=spec, mode="infer", seq=ref["seq"], kv_dtype="bf16"))
    assert est.breakdown["kv_cache"] == ref["attention_kv_bytes"]
    assert est.breakdown["state"] == ref["state_bytes"]
    assert sum(est.layer_kinds.values()) == spec.layers - sum(g.count for g in spec.layer_groups if g.mixer is None)


def test_gemma_caches_by_the_window_arithmetic():
    # Gemma 2 9B: 21 sliding layers hold min(tokens, 4096), 21 full layers all tokens; 8 kv heads x 256 x K and V
    per_token = 2 * 8 * 256 * 2
    est = estimate_memory(MemoryConfig(spec=gemma2_9b(), mode="infer", seq=32768))
    assert est.breakdown["kv_cache"] == 21 * per_token * 4096 + 21 * per_token * 32768
    assert est.layer_kinds == {"sliding": 21, "full": 21}
    short = estimate_memory(MemoryConfig(spec=gemma2_9b(), mode="infer", seq=2000))
    assert short.breakdown["kv_cache"] == 42 * per_token * 2000
    # Gemma 3 4B: 29 sliding (1024) and 5 full layers, 4 kv heads; gpt-oss-20b: 12 sliding (128) and 12 full
    g3 = estimate_memory(MemoryConfig(spec=gemma3_4b(), mode="infer", seq=32768, batch=3)).breakdown["kv_cache"]
    assert g3 == 3 * 2 * 4 * 256 * 2 * (29 * 1024 + 5 * 32768)
    oss = estimate_memory(MemoryConfig(spec=gpt_oss_20b(), mode="infer", seq=32768, dtype="bf16"))
    assert oss.breakdown["kv_cache"] == 2 * 8 * 64 * 2 * (12 * 128 + 12 * 32768)


def test_deepseek_v3_mla_cache_is_the_latent():
    # 61 layers x (kv_lora_rank 512 + qk_rope_head_dim 64) values x 2 bytes per token; no head axis for --tp
    for tp in (1, 8):
        est = estimate_memory(MemoryConfig(spec=deepseek_v3(), mode="infer", seq=4096, tp=tp))
        assert est.breakdown["kv_cache"] == 61 * 576 * 2 * 4096
        assert est.layer_kinds == {"mla": 61}
    assert any("MLA layers cache the latent" in a for a in est.assumptions)


def test_nemotron_h_state_does_not_depend_on_the_sequence():
    spec = nemotron_h_56b()
    a, b = (estimate_memory(MemoryConfig(spec=spec, mode="infer", seq=s)) for s in (512, 8192))
    assert a.breakdown["state"] == b.breakdown["state"] == 54 * spec.layer_groups[0].state_values() * 2
    assert b.breakdown["kv_cache"] == 16 * a.breakdown["kv_cache"]  # the 10 attention layers grow
    assert a.layer_kinds == {"mamba2": 54, "full": 10}
    assert a.total_bytes == sum(a.breakdown.values())


@pytest.mark.parametrize("make", [deepseek_v3, gemma2_9b, gpt_oss_20b, llama4_scout, nemotron_h_56b])
def test_one_gpu_holds_every_parameter_once(make):
    spec = make()
    assert stage_params(spec).stages == (pytest.approx(count_params(spec).total, rel=1e-12),)


def test_pipeline_stages_take_the_layers_in_order():
    """Nemotron-H over 2 stages: each stage holds exactly the Mamba, attention and MLP layers of its half."""
    spec = nemotron_h_56b()
    layers = [g for g in spec.layer_groups for _ in range(g.count)]
    h, norm = spec.hidden, spec.hidden
    def layer(g):
        return (g.mixer.params(h) if g.mixer else 0) + (g.ffn.params(h) if g.ffn else 0) + g.norms * norm
    st = stage_params(spec, pp=2)
    assert st.first == pytest.approx(spec.vocab * h + sum(layer(g) for g in layers[:59]), rel=1e-12)
    assert st.last == pytest.approx(sum(layer(g) for g in layers[59:]) + norm + spec.vocab * h, rel=1e-12)


def test_tensor_parallel_replicates_mla_down_projections_and_routers():
    spec = deepseek_v3()
    one, eight = stage_params(spec), stage_params(spec, tp=8)
    # replicated per layer: q_a (7168 x 1536) + its norm, kv_a (7168 x 576) + its norm, 2 norms; MoE routers
    replicated = 61 * (7168 * 1536 + 1536 + 7168 * 576 + 512 + 2 * 7168) + 58 * 7168 * 256 + 7168
    assert eight.first == pytest.approx(replicated + (one.first - replicated) / 8, rel=1e-12)


def _expert_params(spec):
    return sum(g.count * g.ffn.experts * g.ffn.expert_params(spec.hidden) for g in spec.layer_groups
               if isinstance(g.ffn, MoE))


def test_expert_parallelism_shards_routed_experts_in_memory():
    spec = deepseek_v3()
    n, experts = count_params(spec).total, _expert_params(spec)
    assert stage_params(spec, ep=8).first == pytest.approx(n - experts * 7 / 8, rel=1e-12)
    base = dict(spec=spec, mode="train", dtype="bf16", dp=8, zero=1, seq=1024)
    plain = estimate_memory(MemoryConfig(**base)).breakdown
    ep = estimate_memory(MemoryConfig(**base, ep=8)).breakdown
    dense = n - experts
    assert plain["weights"] == round(2 * n) and plain["optimizer"] == round(12 * n / 8)
    assert ep["weights"] == round(2 * (dense + experts / 8))
    assert ep["gradients"] == round(2 * (dense + experts / 8))
    # ZeRO-1 shards the dense states over dp = 8, the experts' over the expert-data-parallel dp / ep = 1
    assert ep["optimizer"] == round(12 * dense / 8 + 12 * experts / 8)
    ep2 = estimate_memory(MemoryConfig(**{**base, "dp": 16}, ep=8)).breakdown
    assert ep2["optimizer"] == round(12 * dense / 16 + 12 * experts / 8 / 2)


@pytest.mark.parametrize("changes, match", [
    ({"ep": 3}, "does not divide the 256 routed experts"),
    ({"ep": 16, "dp": 8}, "--dp a multiple"),
    ({"ep": 2, "spec": None}, "has none"),
    ({"tp": 3}, "does not divide"),
])
def test_bad_expert_parallelism_is_refused(changes, match):
    spec = deepseek_v3() if changes.get("spec", 1) is not None else get_preset("llama-2-7b")
    kw = {"spec": spec, "dp": 16, **{k: v for k, v in changes.items() if k != "spec"}}
    with pytest.raises(LlmplanError, match=match):
        estimate_memory(MemoryConfig(**kw))


def test_inference_expert_parallelism_needs_no_data_parallelism():
    spec = deepseek_v3()
    est = estimate_memory(MemoryConfig(spec=spec, mode="infer", ep=8, seq=1024))
    n, experts = count_params(spec).total, _expert_params(spec)
    assert est.breakdown["weights"] == round(2 * (n - experts * 7 / 8))


def test_inference_uses_the_stored_weight_format_unless_told():
    spec = deepseek_v3()
    n = count_params(spec).total
    mla = 7168 * 1536 + 1536 * 128 * 192 + 7168 * 576 + 512 * 128 * 256 + 128 * 128 * 7168
    fp8 = 61 * mla + 3 * 3 * 7168 * 18432 + 58 * 257 * 3 * 7168 * 2048  # every linear but routers, embed, head
    stored = estimate_memory(MemoryConfig(spec=spec, mode="infer", seq=1024, stored_weights=True))
    assert stored.breakdown["weights"] == round(fp8 * (1 + 4 / 16384) + (n - fp8) * 2)
    assert any("stored format fp8" in a for a in stored.assumptions)
    told = estimate_memory(MemoryConfig(spec=spec, mode="infer", seq=1024, stored_weights=False, dtype="bf16"))
    assert told.breakdown["weights"] == 2 * n
    oss = gpt_oss_20b()
    experts = _expert_params(oss)
    w = estimate_memory(MemoryConfig(spec=oss, mode="infer", seq=1024, stored_weights=True)).breakdown["weights"]
    assert w == round(experts * (0.5 + 1 / 32) + (count_params(oss).total - experts) * 2)


def test_lora_targets_reach_mla_and_expert_matrices():
    spec = deepseek_v3()
    names = {m.name for m in block_linears(spec)}
    assert {"q_a", "q_b", "kv_a", "kv_b", "o", "gate", "up", "down", "router"} <= names
    total = sum(matrix_params(m) for m in block_linears(spec))
    b = count_params(spec)
    assert total < b.attention + b.mlp  # norms inside MLA and biases are not matrices
    from llmplan.estimate.memory import adapter_params
    q = adapter_params(spec, 8, ("q",))
    assert q == 61 * 8 * ((7168 + 1536) + (1536 + 128 * 192))


# FLOPs ---------------------------------------------------------------------------------------------------------

def _all_full(spec: ModelSpec) -> ModelSpec:
    groups = tuple(LayerGroup(g.count, replace(g.mixer, kind="full", window=0), g.ffn, g.norms)
                   for g in spec.layer_groups)
    return spec.with_(groups=groups)


def test_causal_pairs_are_the_sum_of_keys_attended():
    for kind, w in (("sliding", 7), ("chunked", 5), ("full", 0)):
        m = Attention(heads=1, kv_heads=1, head_dim=2, kind=kind, window=w)
        for s in (1, 4, 5, 7, 23):
            assert causal_pairs(m, s) == sum(m.keys_attended(i) for i in range(s))
    assert keys_per_query(Attention(1, 1, 2, kind="sliding", window=4096), 4096) == 4096  # window covers it


def test_sliding_window_flops_fall_below_full_attention_by_the_window_arithmetic():
    spec, s, w = gemma2_9b(), 32768, 4096
    sliding, full = forward_parts(spec, s), forward_parts(_all_full(spec), s)
    assert sliding.matmul == full.matmul and sliding.logits == full.logits
    pairs = w * (w + 1) // 2 + (s - w) * w  # sum over positions of min(i + 1, w)
    per_key = 2 * 16 * (256 + 256)           # QK^T and AV, 2 FLOPs per multiply-add
    assert full.attention - sliding.attention == pytest.approx(21 * per_key * (s - 2 * pairs / (s + 1)), rel=1e-12)
    assert forward_parts(spec, 4096).attention == forward_parts(_all_full(spec), 4096).attention


def test_chunked_attention_flops():
    spec, s = llama4_scout(), 32768
    chunked = forward_parts(spec, s).attention
    pairs = 4 * 8192 * 8193 // 2
    per_key = 2 * 40 * 256
    assert chunked == pytest.approx(12 * per_key * s + 36 * per_key * 2 * pairs / (s + 1), rel=1e-12)


def test_mla_flops_at_the_qk_and_v_head_dims():
    spec, s = deepseek_v3(), 4096
    parts = forward_parts(spec, s)
    assert parts.attention == 61 * 2 * s * 128 * (192 + 128)
    b = count_params(spec)
    assert parts.matmul == 2 * (b.active - b.embeddings - b.output_head)
    # active: the 3 dense layers, 58 x (8 routed + 1 shared expert + router), MLA projections and norms
    mla = deepseek_v3().layer_groups[0].mixer.params(7168)
    moe = MoE(256, 8, 2048, shared_ffn=2048)
    layers = 61 * mla + 3 * Dense(18432).params(7168) + 58 * moe.active_params(7168) + 61 * 2 * 7168 + 7168
    assert parts.matmul == 2 * layers


def test_recurrent_flops_are_the_state_updates():
    spec, s = nemotron_h_56b(), 8192
    parts = forward_parts(spec, s)
    assert parts.recurrent == 54 * 4 * 256 * 64 * 256
    assert parts.attention == 10 * 4 * s * 64 * 128


def test_memory_command_ep_and_cache_kinds(cli):
    r = cli("memory", "--model", "mixtral-8x7b", "--dp", "8", "--ep", "8", "--zero", "1", "--seq", "1024", "--json")
    data = r.json()
    assert data["config"]["ep"] == 8 and data["breakdown"]["state"] == 0
    plain = cli("memory", "--model", "mixtral-8x7b", "--dp", "8", "--zero", "1", "--seq", "1024", "--json").json()
    assert data["breakdown"]["weights"] < plain["breakdown"]["weights"]
    for bad in (["--ep", "3", "--dp", "3"], ["--ep", "8", "--dp", "4"], ["--ep", "0"]):
        r = cli("memory", "--model", "mixtral-8x7b", *bad)
        assert r.code == 2 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1, bad
    r = cli("memory", "--model", "llama-2-7b", "--ep", "2", "--dp", "2")
    assert r.code == 2 and "has none" in r.stderr
    infer = cli("memory", "--model", "llama-2-7b", "--mode", "infer", "--seq", "4096", "--json").json()
    assert infer["layer_kinds"] == {"full": 32} and infer["breakdown"]["state"] == 0
    assert "KV cache (32 full layers)" in cli("memory", "--model", "llama-2-7b", "--mode", "infer").stdout


# Activations -----------------------------------------------------------------------------------------------------

def _terms(spec, group=None, **kw):
    from llmplan.estimate.activations import ActivationConfig, layer_terms

    c = ActivationConfig(**{"seq": 1024, "batch": 2, "bytes_per_value": 2, "dropout": False, **kw})
    return {t.name: t.bytes for t in layer_terms(spec, c, group=group)}


def test_moe_activations_route_top_k_tokens_and_the_shared_expert():
    spec = deepseek_v3()
    t = _terms(spec, group=spec.layer_groups[1])
    n, h = 2048, 7168
    assert t["mlp_expert_inputs"] == 8 * 2 * n * h
    assert t["mlp_gate_up"] == 8 * 2 * 2 * n * 2048 and t["mlp_product"] == 8 * 2 * n * 2048
    assert t["mlp_shared_gate_up"] == 2 * 2 * n * 2048 and t["mlp_shared_product"] == 2 * n * 2048
    dense = _terms(spec, group=spec.layer_groups[0])
    assert "mlp_expert_inputs" not in dense and dense["mlp_gate_up"] == 2 * 2 * n * 18432


def test_mla_activations_keep_the_latents():
    spec = deepseek_v3()
    t = _terms(spec, group=spec.layer_groups[0])
    n = 2048
    assert t["mla_q_latent"] == t["mla_q_latent_normed"] == 2 * n * 1536
    assert t["mla_kv_latent"] == 2 * n * 576 and t["mla_kv_latent_normed"] == 2 * n * 512
    assert t["mla_q"] == t["mla_k"] == 2 * n * 128 * 192  # the core at qk head dim
    assert t["mla_kv_up"] == 2 * n * 128 * 256 and t["attn_out_proj_input"] == 2 * n * 128 * 128
    tp = _terms(spec, group=spec.layer_groups[0], tp=8)
    assert tp["mla_kv_latent"] == t["mla_kv_latent"] and tp["mla_q"] == t["mla_q"] / 8  # latents replicated


def test_recurrent_activations_and_pipeline_stages_follow_the_layers():
    from llmplan.estimate.activations import ActivationConfig, activation_memory, layer_bytes

    spec = nemotron_h_56b()
    mamba = _terms(spec, group=spec.layer_groups[0])
    n = 2048
    assert mamba["mixer_in_proj_out"] == 2 * n * (2 * 16384 + 2 * 8 * 256 + 256)
    assert mamba["mixer_conv_out"] == mamba["mixer_conv_act"] == 2 * n * (16384 + 2 * 8 * 256)
    c = ActivationConfig(seq=1024, batch=2, bytes_per_value=2, dropout=False)
    layers = [g for g in spec.layer_groups for _ in range(g.count)]
    a = activation_memory(spec, c, pp=2)
    first_layers = sum(layer_bytes(spec, c, group=g) for g in layers[:59])
    assert a.first_stage_bytes == pytest.approx(2 * (a.embedding_bytes + first_layers))
    assert {label for label, _, _ in a.layer_kinds} == {"Mamba-2", "MLP-only", "full attention"}


@needs_ref
@pytest.mark.parametrize("name", sorted(_json("kv_expected.json")) if REF.is_dir() else [])
def test_memory_of_the_twelve_real_configs_holds_the_servers_cache(name):
    """Each real config.json read by llmplan.models.hf_config: `memory --mode infer` at 32k tokens holds the KV
    cache and recurrent state that kv_expected.json states (bf16, one sequence)."""
    from llmplan.models.hf_config import spec_from_hf_config

    ref = _json("kv_expected.json")[name]
    spec = spec_from_hf_config(_json(f"{name}.json"), name=name)
    est = estimate_memory(MemoryConfig(spec=spec, mode="infer", seq=ref["seq"], kv_dtype="bf16"))
    assert est.breakdown["kv_cache"] == ref["attention_kv_bytes"]
    assert est.breakdown["state"] == ref["state_bytes"]
    assert est.breakdown["kv_cache"] + est.breakdown["state"] == ref["kv_bytes_bf16_efficient"]
    if "naive_expanded_mha_bytes" in ref:
        assert cache_bytes(spec, ref["seq"], expanded_mla=True).kv_cache_bytes == ref["naive_expanded_mha_bytes"]


def test_memory_reads_a_config_file(cli):
    if not REF.is_dir():
        pytest.skip("no reference configs")
    r = cli("memory", "--model", str(REF / "gemma-2-9b-it.json"), "--mode", "infer", "--seq", "32768", "--json")
    data = r.json()
    assert data["breakdown"]["kv_cache"] == _json("kv_expected.json")["gemma-2-9b-it"]["attention_kv_bytes"]
    assert data["layer_kinds"] == {"sliding": 21, "full": 21}
    oss = cli("memory", "--model", str(REF / "gpt-oss-20b.json"), "--mode", "infer", "--seq", "4096", "--json").json()
    told = cli("memory", "--model", str(REF / "gpt-oss-20b.json"), "--mode", "infer", "--seq", "4096", "--dtype",
               "bf16", "--json").json()
    assert oss["breakdown"]["weights"] < 0.7 * told["breakdown"]["weights"]  # MXFP4 experts unless --dtype
    assert "mxfp4" in oss["weight_format"] and told["weight_format"] == "bf16"


@pytest.mark.parametrize("name", sorted(n for n, s in __import__("llmplan.models", fromlist=["load_presets"])
                                        .load_presets().items() if s.arch == "decoder"))
def test_every_decoder_preset_is_held_once_on_one_gpu(name):
    """stage_params walks the same components as count_params (K-as-V and KV-shared layers, routers with scales,
    latent experts ...): on one GPU every parameter is held exactly once; tp 2 holds no more than that."""
    from llmplan.models import load_presets

    spec = load_presets()[name]
    total = count_params(spec).total
    assert stage_params(spec).first == pytest.approx(total, rel=1e-12)
    assert stage_params(spec, tp=2).first <= total


def test_pipeline_stages_cache_for_their_own_layers():
    """Gemma 3 4B over 2 stages: layers 0-16 hold 2 full layers (5, 11), layers 17-33 hold 3 (17, 23, 29); the
    second stage's cache is the larger and is the one reported."""
    spec, s = gemma3_4b(), 32768
    per_token = 2 * 4 * 256 * 2
    est = estimate_memory(MemoryConfig(spec=spec, mode="infer", seq=s, pp=2))
    assert est.breakdown["kv_cache"] == per_token * (3 * s + 14 * 1024)
    assert est.layer_kinds == {"sliding": 29, "full": 5}
