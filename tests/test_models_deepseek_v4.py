"""DeepSeek-V4 (model_type deepseek_v4) read from its released config.json: layer make-up, exact counts, the
multi-token-prediction module, the KV cache of compressed attention, FLOPs, and the bad configs that must be refused.

Configs: tests/data/hf_configs/DeepSeek-V4-{Flash,Pro} (the released config.json files, sources in SOURCES.json),
DeepSeek-V4-class-defaults and DeepSeek-V4-reduced; their transformers 5.24 counts are in COUNTS.json (checked for
every config by tests/test_models_hf_config.py::test_count_equals_transformers).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmplan.errors import LlmplanError
from llmplan.estimate.flops import attention_core_flops, causal_pairs
from llmplan.estimate.kvcache import cache_bytes
from llmplan.estimate.shapes import stage_params
from llmplan.models.hf_config import read_hf_config, spec_from_hf_config
from llmplan.models.layers import group_dict, group_from_dict
from llmplan.models.layers_v4 import CompressedAttention
from llmplan.models.params import count_params

CONFIGS = Path(__file__).resolve().parent / "data" / "hf_configs"
COUNTS = json.loads((CONFIGS / "COUNTS.json").read_text())["counts"]


def config(name: str) -> dict:
    return json.loads((CONFIGS / name / "config.json").read_text())


def spec(name: str):
    return read_hf_config(CONFIGS / name / "config.json")


def kinds(s) -> dict[str, int]:
    out: dict[str, int] = {}
    for g in s.layer_groups:
        out[g.mixer.kind_name] = out.get(g.mixer.kind_name, 0) + g.count
    return out


def test_flash_and_pro_make_up():
    """compress_ratios of the released configs: Flash 0, 0, then 4 / 128 alternating, then 4 (the 44th entry, 0, is
    the MTP layer's); Pro 128, 128, then 4 / 128, then 4 (its 62nd entry, 0, the MTP layer's)."""
    flash, pro = spec("DeepSeek-V4-Flash"), spec("DeepSeek-V4-Pro")
    assert kinds(flash) == {"sliding": 2, "csa": 21, "hca": 20}
    assert kinds(pro) == {"hca": 31, "csa": 30}
    for s in (flash, pro):
        assert all(g.hyper == 4 for g in s.layer_groups)
        csa = next(g.mixer for g in s.layer_groups if g.mixer.kind_name == "csa")
        hca = next(g.mixer for g in s.layer_groups if g.mixer.kind_name == "hca")
        assert (csa.compress_ratio, csa.index_heads, csa.index_head_dim) == (4, 64, 128)
        assert (hca.compress_ratio, hca.index_heads) == (128, 0)
        assert s.mtp_layers == 1 and s.mtp_layer.mixer.kind_name == "sliding" and s.mtp_layer.hyper == 4
    assert (pro.layer_groups[0].mixer.o_groups, pro.layer_groups[0].mixer.q_lora_rank) == (16, 1536)
    # the class defaults: two HCA layers, then HCA and CSA alternating (DeepseekV4Config.__post_init__)
    defaults = spec("DeepSeek-V4-class-defaults")
    order = [g.mixer.kind_name for g in defaults.layer_groups for _ in range(g.count)]
    assert order[:5] == ["hca", "hca", "hca", "csa", "hca"] and len(order) == 43


def test_compressed_attention_params_by_module():
    """The reduced config's CSA layer, module by module as transformers 5.24 allocates it (hidden 256, 8 heads x 64,
    q_lora_rank 96, o_groups 4 x o_lora_rank 32, compress rate 8, indexer 4 heads x 32)."""
    s = spec("DeepSeek-V4-reduced")
    csa = next(g.mixer for g in s.layer_groups if g.mixer.kind_name == "csa")
    h = 256
    main = (256 * 96 + 96 + 96 * 512      # q_a_proj, q_a_norm, q_b_proj
            + 256 * 64 + 64               # kv_proj, kv_norm
            + 512 * 32 + 4 * 32 * 256     # o_a_proj (4 groups of 128 -> 32), o_b_proj
            + 8)                          # sinks
    compressor = 2 * 256 * 128 + 8 * 128 + 64  # kv_proj, gate_proj (2 x head_dim), position_bias, kv_norm
    indexer = 2 * 256 * 64 + 8 * 64 + 32 + 96 * 4 * 32 + 256 * 4  # its compressor, q_b_proj, weights_proj
    assert csa.params(h) == main + compressor + indexer
    hca = next(g.mixer for g in s.layer_groups if g.mixer.kind_name == "hca")
    assert hca.params(h) == main + 2 * 256 * 64 + 32 * 64 + 64  # rate 32, one series
    # hyper-connections: fn (2 + n) n x n h, base, 3 scales, one per sub-block; hc_head n x n h + n + 1 (n = 3)
    assert s.layer_groups[0].hyper_params(h) == 2 * (15 * 3 * 256 + 15 + 3)
    assert count_params(s).hyper == 6 * 2 * (15 * 768 + 18) + 3 * 768 + 3 + 1


def test_counts_equal_transformers_and_mtp():
    """Totals and active counts as transformers 5.24 builds DeepseekV4ForCausalLM (COUNTS.json); the MTP module
    apart (transformers skips the checkpoint's mtp.* tensors)."""
    for name in ("DeepSeek-V4-Flash", "DeepSeek-V4-Pro", "DeepSeek-V4-class-defaults", "DeepSeek-V4-reduced"):
        b = count_params(spec(name))
        assert (b.total, b.active) == (COUNTS[name]["params"], COUNTS[name]["params_active"]), name
    flash, pro = count_params(spec("DeepSeek-V4-Flash")), count_params(spec("DeepSeek-V4-Pro"))
    assert round(flash.total / 1e9) == 284 and round(flash.active / 1e9) == 14  # the model card: 284B, 13B active
    assert round(pro.total / 1e12, 1) == 1.6 and round(pro.active / 1e9) == 50    # 1.6T, 49B active
    assert (flash.mtp, pro.mtp) == (6_610_048_635, 25_840_145_595)


def _stored_elements(s) -> int:
    """Elements of the released safetensors: e4m3 linears with one ue8m0 scale per 128 x 128 block, fp4 experts
    packed two per int8 with a ue8m0 scale per 32, bf16 compressors, the routers' gate.bias and the hash layers'
    tid2eid buffers (3 layers x vocab x top-k), and the MTP module (mtp.0) with its own hc_head."""
    h, vocab = s.hidden, s.vocab

    def fp8(o, i):
        return o * i + -(-o // 128) * -(-i // 128)

    def layer(g):
        a, f = g.mixer, g.ffn
        q, d, wide = a.q_lora_rank, a.head_dim, a.o_groups * a.o_lora_rank
        t = fp8(q, h) + q + fp8(a.q_dim, q) + fp8(d, h) + d + fp8(wide, a.q_dim // a.o_groups) + fp8(h, wide)
        t += a.heads + a.compressor_params(h) + 2 * h + g.hyper_params(h)
        if a.sparse:  # the indexer's wq_b is fp8
            t += -(-a.index_heads * a.index_head_dim // 128) * -(-q // 128)
        t += f.experts * 3 * (f.expert_ffn * h // 2 + f.expert_ffn * h // 32)
        return t + f.experts * h + 2 * fp8(f.expert_ffn, h) + fp8(h, f.expert_ffn)

    moe, head = s.layer_groups[0].ffn, 4 * 4 * h + 4 + 1
    body = sum(g.count * layer(g) for g in s.layer_groups) + (s.layers - 3) * moe.experts + 3 * vocab * moe.top_k
    mtp = layer(s.mtp_layer) + moe.experts + 2 * fp8(h, h) + 3 * h + head
    return body + 2 * vocab * h + h + head + mtp


def test_released_checkpoints_tensor_elements():
    """The Hugging Face hub's safetensors parameter count of deepseek-ai/DeepSeek-V4-Pro (861,608,274,846) and
    deepseek-ai/DeepSeek-V4-Flash (158,069,433,298): every stored tensor's elements, reproduced from the layers
    llmplan reads (compressors, indexers, hyper-connections and the MTP module included)."""
    assert _stored_elements(spec("DeepSeek-V4-Pro")) == 861_608_274_846
    assert _stored_elements(spec("DeepSeek-V4-Flash")) == 158_069_433_298


def test_kv_cache_per_layer_kind():
    """Per layer and sequence of n tokens: the window's K=V entries, min(n, 128) x 512 values; CSA adds n // 4
    entries of 512 + 128 (the indexer's key), HCA n // 128 entries of 512 (transformers DeepseekV4CSACache /
    DeepseekV4HCACache, vLLM DeepseekV4SWACache + MLAAttentionSpec(compress_ratio) + DeepseekV4IndexerCache)."""
    s = spec("DeepSeek-V4-Flash")
    n = 32768
    values = 2 * 128 * 512 + 21 * (128 * 512 + n // 4 * 640) + 20 * (128 * 512 + n // 128 * 512)
    c = cache_bytes(s, n)
    assert c.kv_cache_bytes == values * 2 and c.state_bytes == 0
    assert c.layers == {"sliding": 2, "csa": 21, "hca": 20}
    assert cache_bytes(s, n, tp=8).kv_cache_bytes == c.kv_cache_bytes  # one KV head: every rank holds it
    assert cache_bytes(s, 100).kv_cache_bytes == 2 * (43 * 100 * 512 + 21 * 25 * 640)  # short: no HCA entry yet
    v3 = 61 * 576 * 2 * n  # DeepSeek-V3's MLA latent at the same length
    assert c.kv_cache_bytes < v3 / 9


def test_pro_kv_cache_at_one_million_tokens():
    """DeepSeek-V4-Pro's KV cache of one 1M-token sequence in bf16, 9.62 GiB, as the V4 release summaries print it
    (AINews, 2026-04-25: "reduced to 9.62 GiB/sequence (in bf16), an 8.7x reduction compared to DeepSeek V3.2"):
    30 CSA layers x (128 x 512 + 262,144 x 640) + 31 HCA layers x (128 x 512 + 8,192 x 512) values x 2 bytes."""
    n = 1 << 20
    c = cache_bytes(spec("DeepSeek-V4-Pro"), n)
    assert c.kv_cache_bytes == 2 * (30 * (128 * 512 + n // 4 * 640) + 31 * (128 * 512 + n // 128 * 512))
    assert round(c.kv_cache_bytes / 2**30, 2) == 9.62
    v32 = cache_bytes(spec("DeepSeek-V3.2"), n).kv_cache_bytes  # MLA latent 576 + indexer key 128, 61 layers
    assert round(v32 / c.kv_cache_bytes, 1) == 8.7


def test_attention_pairs_and_flops():
    """Keys per query: the window plus the compressed entries visible ((i + 1) // m), CSA capped at index_topk;
    the indexer scores every visible entry."""
    m = CompressedAttention(8, 1, 64, kind="sliding", window=16, k_eq_v=True, sinks=True, q_lora_rank=32,
                            o_groups=2, o_lora_rank=16, compress_ratio=4, index_heads=2, index_head_dim=8,
                            index_topk=5)
    for seq in (1, 7, 20, 21, 24, 300):
        assert causal_pairs(m, seq) == sum(min(i + 1, 16) + min((i + 1) // 4, 5) for i in range(seq))
        assert m.compressed_pairs(seq, capped=False) == sum((i + 1) // 4 for i in range(seq))
    seq = 300
    keys = 2 * causal_pairs(m, seq) / (seq + 1)
    scored = 2 * sum((i + 1) // 4 for i in range(seq)) / (seq + 1)
    assert attention_core_flops(m, seq) == pytest.approx(2 * keys * 8 * 128 + 2 * scored * 2 * 8)


def test_per_gpu_weights_and_round_trip():
    s = spec("DeepSeek-V4-Flash")
    assert stage_params(s).first == count_params(s).total  # one GPU holds every parameter
    assert stage_params(s, tp=8, ep=8).first < count_params(s).total / 8
    for g in (*s.layer_groups, s.mtp_layer):
        assert group_from_dict(json.loads(json.dumps(group_dict(g)))) == g


@pytest.mark.parametrize("change, message", [
    ({"compress_ratios": [0, 4, 64]}, r"compress_ratios must be a list of 0 \(sliding\), 4 \(CSA\) and 128"),
    ({"compress_ratios": [0, 4]}, r"compress_ratios lists 2 layers, but the model has 3"),
    ({"layer_types": ["sliding_attention", "full_attention", "sliding_attention"]}, r"layer_types holds 'full"),
    ({"hc_mult": "4"}, r"hc_mult must be an integer"),
    ({"hc_mult": 0}, r"hc_mult must be an integer of at least 1"),
    ({"o_groups": 3}, r"8 heads cannot be split into 3 output groups"),
    ({"sliding_window": 10**6}, r"sliding_window .* exceeds the context"),
    ({"n_shared_experts": 2}, r"n_shared_experts 2 is not supported"),
    ({"num_key_value_heads": 8}, r"num_key_value_heads must be 1"),
    ({"compress_rates": {"compressed_sparse_attention": "4"}}, r"compress_rates.compressed_sparse_attention must be"),
    ({"compress_rates": [4, 128]}, r"compress_rates must be an object"),
    ({"mlp_layer_types": ["moe", "dense", "moe"]}, r"mlp_layer_types must be a list of 3 entries"),
    ({"expert_dtype": "int4"}, r"expert_dtype must be fp4 or fp8"),
    ({"q_lora_rank": None}, r"lacks the key 'q_lora_rank'"),
])
def test_bad_configs_are_refused_in_one_line(change, message):
    base = {"model_type": "deepseek_v4", "num_hidden_layers": 3, "hidden_size": 64, "num_attention_heads": 8,
            "head_dim": 16, "q_lora_rank": 32, "o_groups": 2, "o_lora_rank": 16, "n_routed_experts": 4,
            "num_experts_per_tok": 2, "moe_intermediate_size": 32, "vocab_size": 100, "sliding_window": 8,
            "max_position_embeddings": 4096, "index_n_heads": 2, "index_head_dim": 8, "quantization_config":
            {"quant_method": "fp8", "weight_block_size": [128, 128]}}
    assert count_params(spec_from_hf_config(base)).total > 0
    with pytest.raises(LlmplanError, match=message) as err:
        spec_from_hf_config({**base, **change})
    assert "\n" not in str(err.value)


def test_cli_models_and_memory(cli):
    path = str(CONFIGS / "DeepSeek-V4-Flash" / "config.json")
    data = json.loads(cli("models", path, "--json").stdout)
    assert data["params"] == COUNTS["DeepSeek-V4-Flash"]["params"]
    assert data["breakdown"]["hyper_connections"] == count_params(spec("DeepSeek-V4-Flash")).hyper
    mem = json.loads(cli("memory", "--model", path, "--mode", "infer", "--seq", "32k", "--json").stdout)
    assert mem["breakdown"]["kv_cache"] == cache_bytes(spec("DeepSeek-V4-Flash"), 32768).kv_cache_bytes
    assert mem["layer_kinds"] == {"sliding": 2, "csa": 21, "hca": 20}


def _terms(s, group, **kw):
    from llmplan.estimate.activations import ActivationConfig, layer_terms

    c = ActivationConfig(**{"seq": 1024, "batch": 2, "bytes_per_value": 2, "dropout": False, **kw})
    return {t.name: t.bytes for t in layer_terms(s, c, group=group)}


def test_activations_keep_the_streams_latents_and_compressor_inputs():
    """Training activations of a V4 layer (flash core, no recompute): each hyper-connection keeps its input streams
    (4 x hidden) and their fp32 normed copy; the attention its query latent (normed and not), q_b's output, the
    one K=V head, the rotated Q and K, the o_a group outputs, and for CSA the compressor's and indexer's inputs."""
    s = spec("DeepSeek-V4-Flash")
    n, h = 2048, 4096
    csa = next(g for g in s.layer_groups if g.mixer.kind_name == "csa")
    t = _terms(s, csa)
    assert t["hc_attn_streams"] == t["hc_ffn_streams"] == 2 * n * 4 * h
    assert t["hc_attn_normed"] == 4 * n * 4 * h and t["hc_attn_weights"] == 4 * n * 6 * 4
    assert t["v4_q_latent"] == t["v4_q_latent_normed"] == 2 * n * 1024
    assert t["v4_q_heads"] == 2 * n * 64 * 512 and t["v4_kv"] == 2 * n * 512
    assert t["attn_rotary_qk"] == 2 * n * (64 * 512 + 512) and t["v4_o_groups"] == 2 * n * 8 * 1024
    assert t["v4_compressor_kv_gate"] == 2 * n * 2 * 1024 and t["v4_indexer_q"] == 2 * n * 64 * 128
    sliding = _terms(s, s.layer_groups[0])
    assert "v4_compressor_kv_gate" not in sliding and "v4_indexer_q" not in sliding
    tp = _terms(s, csa, tp=8)
    assert tp["v4_q_heads"] == t["v4_q_heads"] / 8 and tp["v4_kv"] == t["v4_kv"]  # one KV head, replicated
    full = _terms(s, csa, recompute="full")
    assert full == {"layer_input": 2 * n * 4 * h}  # a recomputed layer keeps its input: all 4 streams


def test_compressed_projections_hold_the_attention_weights():
    """The GEMMs of V4 attention (LoRA targets, step time): their weights are the layer's parameters less its norms,
    sinks and position biases."""
    from llmplan.estimate.shapes import compressed_mats

    s = spec("DeepSeek-V4-Flash")
    h = 4096
    for g in s.layer_groups[:3]:
        m = g.mixer
        weights = sum(i * o for _, i, o in compressed_mats(m, h))
        small = m.q_lora_rank + m.head_dim + m.heads
        if m.compress_ratio:
            width = m.head_dim * (2 if m.sparse else 1)
            small += m.compress_ratio * width + m.head_dim
        if m.sparse:
            small += m.compress_ratio * 2 * m.index_head_dim + m.index_head_dim
        assert weights == m.params(h) - small


def test_planner_commands_run_on_v4(cli):
    for args in (("compute", "--model", "deepseek-v4-flash", "--tokens", "33T", "--gpu", "h100", "--gpus", "2048",
                  "--mfu", "0.4", "--json"),
                 ("serve", "-m", "deepseek-v4-pro", "-g", "b200", "--gpus", "8", "--tp", "8", "-i", "8000", "-o",
                  "1000", "--max-throughput", "--json"),
                 ("memory", "--model", "deepseek-v4-flash", "--gpu", "h100", "--dp", "64", "--ep", "8", "--zero",
                  "1", "--seq", "4096", "--json")):
        r = cli(*args)
        assert r.code == 0, (args, r.stderr)
        assert json.loads(r.stdout)["schema_version"]
