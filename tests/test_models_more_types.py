"""The model types added after the first per-layer readers (granite ... bamba): their layer make-up, the KV cache
per layer kind by the window arithmetic, and bad keys ending in one LlmplanError naming the key. Their parameter
counts are checked against transformers 5.24 by tests/test_models_hf_config.py over COUNTS.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmplan.errors import LlmplanError
from llmplan.estimate.kvcache import cache_bytes
from llmplan.models.hf_config import READERS, read_hf_config, spec_from_hf_config
from llmplan.models.layers import Dense, Mamba2, MoE
from llmplan.models.params import count_params

CONFIGS = Path(__file__).resolve().parent / "data" / "hf_configs"
ADDED = ("granite", "cohere2", "olmo", "glm4", "smollm3", "phi", "gptj", "stablelm", "ernie4_5", "hunyuan_v1_dense",
         "seed_oss", "arcee", "apertus", "exaone", "dbrx", "ernie4_5_moe", "hunyuan_v1_moe", "dots1", "bamba",
         "falcon_h1", "llava", "qwen2_vl", "qwen2_5_vl")


def spec(name: str):
    return read_hf_config(CONFIGS / name / "config.json")


def per_layer(s):
    return [g for g in s.layer_groups for _ in range(g.count)]


def test_added_types_are_offered():
    assert set(ADDED) <= set(READERS)


# KV cache per layer kind ----------------------------------------------------------------------------------------
def test_cohere2_sliding_rope_layers_and_full_nope_layers():
    s = spec("cohere2-class-defaults")  # 40 layers, sliding_window_pattern 4, window 4096, 64 KV heads of 128
    layers = per_layer(s)
    assert [(g.mixer.kind, g.mixer.rope) for g in layers[:4]] == [("sliding", True)] * 3 + [("full", False)]
    assert sum(g.mixer.kind == "full" for g in layers) == 10 and s.parallel_layers
    per_token = 64 * 128 * 2 * 2  # kv heads x head_dim x (K, V) x bf16
    c = cache_bytes(s, 8192)
    assert c.kv_cache_bytes == 30 * per_token * 4096 + 10 * per_token * 8192
    assert c.layers == {"sliding": 30, "full": 10}


def test_command_r7b_cache_holds_the_window_on_three_layers_of_four():
    s = spec("c4ai-command-r7b-12-2024-shape-keys")  # 32 layers, 8 KV heads of 128, window 4096, pattern 4
    assert count_params(s).total - count_params(s).embeddings == 6_979_457_024  # the card's "7B" without embeddings
    per_token = 8 * 128 * 2 * 2
    c = cache_bytes(s, 32768)
    assert c.layers == {"sliding": 24, "full": 8}
    assert c.kv_cache_bytes == 24 * per_token * 4096 + 8 * per_token * 32768  # 1.375 GiB, not 4 GiB if all full


def test_smollm3_nope_every_fourth_layer_and_sliding_nope_layers():
    plain, sliding = spec("SmolLM3-3B-class-defaults"), spec("SmolLM3-3B-class-defaults-sliding")
    assert [g.mixer.rope for g in per_layer(plain)[:4]] == [True, True, True, False]
    assert all(g.mixer.kind == "full" for g in per_layer(plain))
    assert [(g.mixer.kind, g.mixer.rope) for g in per_layer(sliding)[:4]] == [("full", True)] * 3 + [("sliding", False)]
    per_token = 4 * 128 * 2 * 2
    assert cache_bytes(plain, 32768).kv_cache_bytes == 36 * per_token * 32768
    assert cache_bytes(sliding, 32768).kv_cache_bytes == 27 * per_token * 32768 + 9 * per_token * 4096


def test_bamba_state_is_constant_and_attention_layers_grow():
    s = spec("Bamba-9B-class-defaults-attention-layers")
    mixers = [type(g.mixer).__name__ for g in per_layer(s)]
    assert [i for i, m in enumerate(mixers) if m == "Attention"] == [9, 18, 27]
    mamba = next(g.mixer for g in s.layer_groups if isinstance(g.mixer, Mamba2))
    assert (mamba.heads, mamba.head_dim, mamba.state, mamba.groups) == (128, 64, 256, 1)  # 2 x 4096 / 128 heads
    state_values = (8192 + 2 * 256) * 3 + 128 * 64 * 256  # conv window (d_conv - 1) + SSM state per layer
    for seq in (1024, 32768):
        c = cache_bytes(s, seq)
        assert c.state_bytes == 29 * state_values * 2
        assert c.kv_cache_bytes == 3 * 8 * 128 * 2 * 2 * seq
        assert c.layers == {"mamba2": 29, "full": 3}


# Layer make-up --------------------------------------------------------------------------------------------------
def test_olmo_layer_norms_hold_no_parameters():
    s = spec("OLMo-7B-hf-class-defaults")
    assert count_params(s).norms == 0 and not s.final_norm


def test_apertus_xielu_holds_two_scalars_per_layer():
    s = spec("Apertus-8B-class-defaults")
    assert all(g.ffn.act_params == 2 and not g.ffn.gated for g in s.layer_groups)
    without = spec_from_hf_config({"model_type": "apertus", "hidden_act": "relu2"})
    assert count_params(s).total - count_params(without).total == 2 * 32


def test_moe_layouts():
    ernie = per_layer(spec("ERNIE-4.5-21B-A3B-PT-class-defaults"))
    assert isinstance(ernie[0].ffn, Dense) and all(isinstance(g.ffn, MoE) for g in ernie[1:])
    assert ernie[1].ffn.shared_ffn == 2 * 1536 and ernie[1].ffn.router_bias  # e_score_correction_bias
    interval = per_layer(spec("ernie4_5_moe-class-defaults-bias-interval"))
    assert [i for i, g in enumerate(interval) if isinstance(g.ffn, MoE)] == list(range(1, 21, 2))
    dots = per_layer(spec("dots1-class-defaults-128-experts"))
    assert isinstance(dots[0].ffn, Dense) and dots[1].ffn.shared_ffn == 2 * 1408 and dots[1].ffn.experts == 128
    hunyuan = spec("hunyuan_v1_moe-class-defaults-64-experts").layer_groups[0].ffn
    assert (hunyuan.experts, hunyuan.top_k, hunyuan.shared_ffn) == (64, 8, 11008)
    dbrx = spec("dbrx-class-defaults").layer_groups[0]
    assert (dbrx.mixer.kv_heads, dbrx.ffn.experts, dbrx.ffn.top_k, dbrx.ffn.expert_ffn) == (1, 4, 1, 3584)


# Bad input: one LlmplanError naming the key -----------------------------------------------------------------------
@pytest.mark.parametrize("config, key", [
    ({"model_type": "granite", "attention_bias": "yes"}, "attention_bias"),
    ({"model_type": "cohere2", "sliding_window_pattern": 0}, "sliding_window_pattern"),
    ({"model_type": "cohere2", "layer_types": ["sliding_attention"]}, "layer_types"),
    ({"model_type": "cohere2", "sliding_window": 100000}, "sliding_window"),
    ({"model_type": "smollm3", "no_rope_layers": [1, 2]}, "no_rope_layers"),
    ({"model_type": "stablelm", "qk_layernorm": 1}, "qk_layernorm"),
    ({"model_type": "phi", "qk_layernorm": True}, "qk_layernorm"),
    ({"model_type": "gptj", "n_inner": "4h"}, "n_inner"),
    ({"model_type": "seed_oss", "attention_out_bias": "no"}, "attention_out_bias"),
    ({"model_type": "dbrx", "attn_config": [8]}, "attn_config"),
    ({"model_type": "dbrx", "ffn_config": {"moe_num_experts": 1}}, "ffn_config.moe_num_experts"),
    ({"model_type": "ernie4_5_moe", "moe_layer_interval": 0}, "moe_layer_interval"),
    ({"model_type": "hunyuan_v1_moe", "num_experts": 8, "moe_topk": [2, 2]}, "moe_topk"),
    ({"model_type": "hunyuan_v1_moe", "num_experts": [8] * 32}, "num_experts"),
    ({"model_type": "dots1", "n_routed_experts": 8, "num_experts_per_tok": 2, "first_k_dense_replace": 99},
     "first_k_dense_replace"),
    ({"model_type": "dots1", "n_routed_experts": 8, "num_experts_per_tok": 2, "sliding_window": "4k"},
     "sliding_window"),
    ({"model_type": "smollm3", "use_sliding_window": True, "sliding_window": 0}, "sliding_window"),
    ({"model_type": "falcon_h1", "mamba_rms_norm": "yes"}, "mamba_rms_norm"),
    ({"model_type": "apertus", "num_key_value_heads": 5}, "num_key_value_heads"),
    ({"model_type": "bamba", "mamba_d_head": 48}, "mamba_d_head"),
    ({"model_type": "bamba", "attn_layer_indices": [40]}, "attn_layer_indices"),
])
def test_bad_keys_name_the_key(config, key):
    with pytest.raises(LlmplanError) as err:
        spec_from_hf_config(config, "bad.json")
    message = str(err.value)
    assert key in message and "\n" not in message


def test_missing_top_level_keys_take_class_defaults():
    """A config of only its model_type is the class defaults: the spec says which keys were defaulted."""
    s = spec_from_hf_config({"model_type": "glm4"})
    assert any("Glm4Config" in a and "hidden_size" in a for a in s.assumptions)
    assert json.loads((CONFIGS / "glm4-class-defaults" / "config.json").read_text()) == {"model_type": "glm4"}


# Multimodal wrappers: the text model is planned, and the spec says so ------------------------------------------
def test_qwen2_5_vl_flat_and_nested_text_configs():
    flat = spec("Qwen2.5-VL-7B-Instruct")  # text keys at the top level, beside vision_config
    assert any("Qwen2.5-VL" in a and "top-level keys" in a and "vision tower" in a for a in flat.assumptions)
    attn = flat.layer_groups[0].mixer
    assert attn.qkv_bias and not attn.out_bias and not flat.tied_embeddings and flat.layers == 28
    nested = spec("qwen2_5_vl-class-defaults-sliding")  # use_sliding_window from max_window_layers 40 of 80
    kinds = [g.mixer.kind for g in per_layer(nested)]
    assert kinds[:40] == ["full"] * 40 and kinds[40:] == ["sliding"] * 40
    per_token = 8 * 128 * 2 * 2
    assert cache_bytes(nested, 32768).kv_cache_bytes == 40 * per_token * 32768 + 40 * per_token * 4096


def test_llava_plans_whichever_decoder_it_wraps_and_ties_as_either_config_says():
    llama, qwen = spec("llava-class-defaults-llama"), spec("llava-class-defaults-qwen2-tied")
    assert llama.layers == 32 and not llama.tied_embeddings and any("LLaVA" in a for a in llama.assumptions)
    assert qwen.tied_embeddings and qwen.layer_groups[0].mixer.qkv_bias  # text_config's tie_word_embeddings
    untied = json.loads((CONFIGS / "llava-class-defaults-qwen2-tied" / "config.json").read_text())
    untied["text_config"]["tie_word_embeddings"] = False
    assert count_params(spec_from_hf_config(untied)).total - count_params(qwen).total == 151936 * 896
    with pytest.raises(LlmplanError, match="text_config"):
        spec_from_hf_config({"model_type": "llava", "text_config": {"model_type": "gpt_bigcode"}})


def test_falcon_h1_attention_and_mamba_in_every_layer():
    s = spec("Falcon-H1-class-defaults")  # 32 layers: attention (8 KV heads of 128) beside Mamba-2 (128 heads of 8)
    mixers = [type(g.mixer).__name__ for g in per_layer(s)]
    assert mixers == ["Attention", "Mamba2"] * 32 and any("parallel" in a for a in s.assumptions)
    mamba = s.layer_groups[1].mixer
    assert (mamba.heads, mamba.head_dim, mamba.state, mamba.gated_norm) == (128, 8, 256, False)
    state_values = (1024 + 2 * 256) * 3 + 128 * 8 * 256
    for seq in (1024, 8192):
        c = cache_bytes(s, seq)
        assert c.state_bytes == 32 * state_values * 2 and c.kv_cache_bytes == 32 * 8 * 128 * 2 * 2 * seq
    normed = spec("falcon_h1-class-defaults-norm-bias-tied")
    assert normed.layer_groups[1].mixer.gated_norm and normed.tied_embeddings
    with pytest.raises(LlmplanError, match="projectors_bias"):
        spec_from_hf_config({"model_type": "falcon_h1", "projectors_bias": True})


def test_hunyuan_per_layer_lists_that_transformers_does_not_read():
    """Hunyuan-A13B's config lists moe_intermediate_size and num_shared_expert per layer; transformers 5.24 builds
    every expert and the shared MLP of intermediate_size whatever they say (checked there on a reduced config)."""
    name = "hunyuan_v1_moe-class-defaults-64-experts"
    c = json.loads((CONFIGS / name / "config.json").read_text())
    listed = {**c, "moe_intermediate_size": [3072] * 32, "num_shared_expert": [1] * 32, "use_mixed_mlp_moe": True}
    assert count_params(spec_from_hf_config(listed)).total == count_params(spec(name)).total
    with pytest.raises(LlmplanError, match="moe_intermediate_size"):
        spec_from_hf_config({**listed, "moe_intermediate_size": [3072, 0]})
