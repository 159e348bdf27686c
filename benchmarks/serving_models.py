"""The models of the published serving rows, from their released config.json files.

The configs in benchmarks/data/serving_models/ are copied verbatim from ai-dynamo/aiconfigurator
(aic-core/src/aiconfigurator_core/model_configs/*_config.json @ 095f58a5), which stores the Hugging Face configs of
the models its measured rows use. llmplan reads the model types it supports; for the others (qwen3, qwen3_moe,
deepseek_v3, llama4, gpt_oss) this module maps the config onto layer groups the same way, until the models reader
covers them.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmplan.errors import LlmplanError
from llmplan.models import ModelSpec, get_preset
from llmplan.models.layers import Attention, Dense, LayerGroup, MoE, merge_runs
from llmplan.models.weight_format import WeightFormat

CONFIGS = Path(__file__).resolve().parent / "data" / "serving_models"


def _spec(c: dict, name: str, groups, context: int, weight_format=None) -> ModelSpec:
    return ModelSpec.from_groups(groups=tuple(groups), name=name, arch="decoder", hidden=c["hidden_size"],
                                 vocab=c["vocab_size"], context=context, position="rotary", norm="rmsnorm",
                                 activation="silu", tied_embeddings=bool(c.get("tie_word_embeddings", False)),
                                 weight_format=weight_format, source=f"{name} config.json (aiconfigurator)")


def _qwen3(c: dict, name: str) -> ModelSpec:
    att = Attention(c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], qk_norm="head",
                    qkv_bias=bool(c.get("attention_bias", False)))
    n = c["num_hidden_layers"]
    if "num_experts" in c:
        moe = MoE(c["num_experts"], c["num_experts_per_tok"], c["moe_intermediate_size"])
        dense_layers = set(c.get("mlp_only_layers") or [])
        step = c.get("decoder_sparse_step", 1)
        layers = [(att, Dense(c["intermediate_size"]) if i in dense_layers or (i + 1) % step else moe, 2)
                  for i in range(n)]
        return _spec(c, name, merge_runs(layers), c["max_position_embeddings"])
    return _spec(c, name, [LayerGroup(n, att, Dense(c["intermediate_size"]))], c["max_position_embeddings"])


def _deepseek_v3(c: dict, name: str) -> ModelSpec:
    att = Attention(c["num_attention_heads"], c["num_attention_heads"],
                    c["qk_nope_head_dim"] + c["qk_rope_head_dim"], v_head_dim=c["v_head_dim"],
                    q_lora_rank=c["q_lora_rank"] or 0, kv_lora_rank=c["kv_lora_rank"],
                    qk_rope_head_dim=c["qk_rope_head_dim"])
    k = c["first_k_dense_replace"]
    moe = MoE(c["n_routed_experts"], c["num_experts_per_tok"], c["moe_intermediate_size"],
              shared_ffn=c["n_shared_experts"] * c["moe_intermediate_size"])
    groups = [LayerGroup(k, att, Dense(c["intermediate_size"])), LayerGroup(c["num_hidden_layers"] - k, att, moe)]
    q = c.get("quantization_config") or {}
    wf = WeightFormat("fp8", 8, 128 * 128, 4.0) if q.get("quant_method") == "fp8" else None
    return _spec(c, name, groups, c["max_position_embeddings"], wf)


def _llama4(c: dict, name: str) -> ModelSpec:
    t = c["text_config"]
    step = t.get("interleave_moe_layer_step", 1)
    moe = MoE(t["num_local_experts"], t["num_experts_per_tok"], t["intermediate_size"],
              shared_ffn=t["intermediate_size"])
    dense = Dense(t["intermediate_size_mlp"])
    layers = []
    for i in range(t["num_hidden_layers"]):
        nope = (i + 1) % 4 == 0  # every fourth layer: global attention without rotary (no_rope_layers)
        att = Attention(t["num_attention_heads"], t["num_key_value_heads"], t["head_dim"],
                        kind="full" if nope else "chunked", window=0 if nope else t["attention_chunk_size"],
                        rope=not nope)
        layers.append((att, moe if (i + 1) % step == 0 else dense, 2))
    return _spec(t, name, merge_runs(layers), t["max_position_embeddings"])


def _gpt_oss(c: dict, name: str) -> ModelSpec:
    moe = MoE(c["num_local_experts"], c["num_experts_per_tok"], c["intermediate_size"], bias=True,
              router_bias=True)
    layers = []
    for kind in c["layer_types"]:
        sliding = kind == "sliding_attention"
        att = Attention(c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"],
                        kind="sliding" if sliding else "full", window=c["sliding_window"] if sliding else 0,
                        qkv_bias=True, out_bias=True, sinks=True)
        layers.append((att, moe, 2))
    wf = WeightFormat("mxfp4", 4, 32, 1.0, applies_to="experts")
    return _spec(c, name, merge_runs(layers), c["max_position_embeddings"], wf)


READERS = {"qwen3": _qwen3, "qwen3_moe": _qwen3, "deepseek_v3": _deepseek_v3, "llama4": _llama4,
           "gpt_oss": _gpt_oss}


def load_config(stem: str) -> ModelSpec:
    path = CONFIGS / f"{stem}.json"
    config = json.loads(path.read_text())
    try:
        from llmplan.models.hf_config import spec_from_hf_config

        return spec_from_hf_config(config, stem).with_(name=stem)
    except LlmplanError:
        reader = READERS.get(config.get("model_type"))
        if reader is None:
            raise
        return reader(config, stem)


# The published rows' model names -> a config here or a preset.
MODELS = {
    "llama v3.1 8b": "Meta-Llama-3.1-8B", "llama 3.1 8b": "Meta-Llama-3.1-8B",
    "llama v3.1 70b": "Meta-Llama-3.1-70B", "llama 3.1 70b": "Meta-Llama-3.1-70B",
    "meta-llama/llama-3.1-70b": "Meta-Llama-3.1-70B", "llama 3.3 70b": "Meta-Llama-3.1-70B",
    "llama v3.1 405b": "Meta-Llama-3.1-405B", "llama 3.1 405b": "Meta-Llama-3.1-405B",
    "mixtral 8x7b": "Mixtral-8x7B-v0.1", "mixtral 8x22b": "Mixtral-8x22B-v0.1",
    "qwen3-235b-a22b": "Qwen3-235B-A22B", "qwen3-30b-a3b": "Qwen3-30B-A3B", "qwen3-32b": "Qwen3-32B",
    "deepseek-r1": "DeepSeek-R1", "deepseek-ai/deepseek-r1": "DeepSeek-R1", "deepseek-v3": "DeepSeek-R1",
    "llama 4 scout": "Llama-4-Scout-17B-16E-Instruct", "llama 4 maverick": "Llama-4-Maverick-17B-128E-Instruct",
    "openai/gpt-oss-120b": "gpt-oss-120b",
    "mistral 7b": "preset:mistral-7b", "llama 2 7b": "preset:llama-2-7b", "llama 2 13b": "preset:llama-2-13b",
    "llama 2 70b": "preset:llama-2-70b", "llama 7b": "preset:llama-7b", "llama 70b": "preset:llama-2-70b",
}


def model_for(name: str) -> ModelSpec | None:
    key = name.lower().split(" (")[0].strip()
    stem = MODELS.get(key)
    if stem is None:
        return None
    if stem.startswith("preset:"):
        return get_preset(stem[len("preset:"):])
    return load_config(stem)
