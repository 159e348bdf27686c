"""More dense decoders: the LLaMA-style families users still meet (Granite, Command R7B / A, OLMo 1, GLM-4-0414,
SmolLM3, Phi-2, GPT-J, StableLM, ERNIE 4.5, Hunyuan dense, Seed-OSS, Arcee, Apertus, EXAONE 3).

Each reader names the transformers 5.24 modeling file whose module shapes it follows; the counts are checked against
that version on the meta device (tests/test_models_hf_config.py, tests/data/hf_configs/COUNTS.json). Fields that only
scale activations (Granite's embedding/residual/attention multipliers and logits_scaling, Cohere's logit_scale,
OLMo's clip_qkv, partial_rotary_factor / rotary_dim) change no parameter count: read by transformers, ignored here
on purpose.
"""

from __future__ import annotations

from dataclasses import replace

from llmplan.errors import LlmplanError
from llmplan.models.hf_build import Layer, decoder_spec
from llmplan.models.hf_common import Cfg, layer_kinds, rope_layers, standard_attention, window
from llmplan.models.hf_dense import HF_KINDS, _llama_like
from llmplan.models.layers import Dense
from llmplan.models.spec import ModelSpec


def granite(c: Cfg, name: str) -> ModelSpec:
    # modeling_granite.py: LLaMA's modules; embedding_multiplier, residual_multiplier, attention_multiplier and
    # logits_scaling scale activations only (no parameters)
    return _llama_like(c, name)


def exaone(c: Cfg, name: str) -> ModelSpec:
    # EXAONE 3.x: transformers builds it as LlamaForCausalLM (modeling_auto.py "exaone"); ExaoneConfig's
    # attribute_map reads num_layers, activation_function and layer_norm_epsilon
    return _llama_like(c, name)


def olmo(c: Cfg, name: str) -> ModelSpec:
    # modeling_olmo.py: OlmoLayerNorm has no weight and no bias (OLMo 1's non-parametric LayerNorm), also the
    # final one; clip_qkv clamps activations only
    spec = _llama_like(c, name, norms=0, mlp_bias_key=None, norm="layernorm", norm_bias=False)
    return spec.with_(final_norm=False)


def glm4(c: Cfg, name: str) -> ModelSpec:
    # modeling_glm4.py (GLM-4-0414): bias on q/k/v only (attention_bias), none on o_proj; fused gate_up_proj (the
    # same count as gate and up); four norms (input, post_self_attn, post_attention, post_mlp)
    return _llama_like(c, name, out_bias=False, norms=4, mlp_bias_key=None)


def seed_oss(c: Cfg, name: str) -> ModelSpec:
    # modeling_seed_oss.py: q/k/v biased by attention_bias, o_proj by attention_out_bias, the MLP by mlp_bias
    return _llama_like(c, name, out_bias=c.bool("attention_out_bias", default=False))


def ernie4_5(c: Cfg, name: str) -> ModelSpec:
    # modeling_ernie4_5.py: use_bias on q, k, v, o and the three MLP projections
    bias = c.bool("use_bias", default=False)
    return _llama_like(c, name, qkv_bias=bias, out_bias=bias, mlp_bias_key="use_bias")


def hunyuan_v1_dense(c: Cfg, name: str) -> ModelSpec:
    # modeling_hunyuan_v1_dense.py: query_layernorm / key_layernorm (RMSNorm over head_dim); attention_bias on all four
    # projections; a bias-free MLP
    return _llama_like(c, name, qk_norm="head", mlp_bias_key=None)


def arcee(c: Cfg, name: str) -> ModelSpec:
    # modeling_arcee.py: a two-matrix MLP (up_proj, down_proj; ReLU^2), biased by mlp_bias
    return _llama_like(c, name, gated=False)


def apertus(c: Cfg, name: str) -> ModelSpec:
    # modeling_apertus.py: q_norm / k_norm over head_dim; a two-matrix MLP without bias whose xIELU activation
    # (hidden_act "xielu", activations.py XIELUActivation) holds two learned scalars, alpha_p and alpha_n
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    attn = standard_attention(c, h, qk_norm="head")
    xielu = c.str("hidden_act") == "xielu"
    ffn = Dense(c.int("intermediate_size"), gated=False, act_params=2 if xielu else 0)
    return decoder_spec(c, name, [(attn, ffn, 2)] * n, hidden=h)


def stablelm(c: Cfg, name: str) -> ModelSpec:
    # modeling_stablelm.py: LayerNorms with bias; q/k/v biased by use_qkv_bias, o_proj never; qk_layernorm: one
    # bias-free LayerNorm per head (StableLmLayerNormPerHead), heads x head_dim on q and kv_heads x head_dim on k;
    # use_parallel_residual: attention and MLP read the input norm, no post_attention_layernorm
    parallel = c.bool("use_parallel_residual", default=False)
    spec = _llama_like(c, name, qkv_bias=c.bool("use_qkv_bias", default=False), out_bias=False,
                       qk_norm="proj" if c.bool("qk_layernorm", default=False) else "", norms=1 if parallel else 2,
                       mlp_bias_key=None, norm="layernorm", norm_bias=True)
    return spec.with_(parallel_layers=parallel)


def phi(c: Cfg, name: str) -> ModelSpec:
    # modeling_phi.py (phi-1, phi-1.5, phi-2): attention and MLP in parallel after one LayerNorm (with bias); biased
    # q/k/v and dense; fc1/fc2 MLP (not gated) with bias; a biased lm_head
    if c.bool("qk_layernorm", default=False):  # LayerNorms (weight and bias) over head_dim: not described here
        raise LlmplanError(f"{c.name}: phi with qk_layernorm true is not supported (no released phi model has it)")
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    attn = standard_attention(c, h, qkv_bias=True, out_bias=True)
    ffn = Dense(c.int("intermediate_size"), gated=False, bias=True)
    spec = decoder_spec(c, name, [(attn, ffn, 1)] * n, hidden=h, norm="layernorm", norm_bias=True,
                        lm_head_bias=True)
    return spec.with_(parallel_layers=True)


def gptj(c: Cfg, name: str) -> ModelSpec:
    # modeling_gptj.py: q/k/v/out_proj without bias, fc_in/fc_out with bias (n_inner, null: 4 x n_embd); one
    # LayerNorm (ln_1) before the parallel attention and MLP; a biased lm_head; rotary_dim changes no count
    h, n = c.int("n_embd"), c.int("n_layer")
    attn = standard_attention(c, h, qkv_bias=False, out_bias=False)
    ffn = Dense(c.int("n_inner", null=4 * h), gated=False, bias=True)
    spec = decoder_spec(c, name, [(attn, ffn, 1)] * n, hidden=h, norm="layernorm", norm_bias=True,
                        activation_key="activation_function", lm_head_bias=True, context_key="n_positions")
    return spec.with_(parallel_layers=True)


def cohere2(c: Cfg, name: str) -> ModelSpec:
    # modeling_cohere2.py (Command R7B, Command A): Cohere's parallel layer after one weight-only LayerNorm; sliding
    # layers (layer_types, else every sliding_window_pattern-th layer full, default 4: Cohere2Config.__post_init__)
    # use RoPE within sliding_window, the full layers have no positional encoding (Cohere2Attention applies the
    # rotary embedding only where sliding_window is set)
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    context = c.int("max_position_embeddings")
    kinds = layer_kinds(c, n, HF_KINDS)
    if kinds is None:
        every = c.int("sliding_window_pattern", default=4)
        kinds = ["sliding" if (i + 1) % every else "full" for i in range(n)]
    w = window(c, context) if c.value("sliding_window", None) is not None else 0
    base = standard_attention(c, h)
    local = replace(base, kind="sliding", window=w) if w else base
    glob = replace(base, rope=False)
    ffn = Dense(c.int("intermediate_size"))
    layers: list[Layer] = [(local if k == "sliding" and w else glob, ffn, 1) for k in kinds]
    spec = decoder_spec(c, name, layers, hidden=h, norm="layernorm", norm_bias=False)
    return spec.with_(parallel_layers=True)


def smollm3(c: Cfg, name: str) -> ModelSpec:
    # modeling_smollm3.py: LLaMA's modules; no_rope_layers[i] == 0 marks a layer without RoPE (NoPE), else every
    # no_rope_layer_interval-th layer is NoPE (default 4); layer_types as listed, else as
    # SmolLM3Config.__post_init__ derives them: sliding where use_sliding_window, sliding_window set and the layer
    # has no RoPE; SmolLM3Attention applies the window only where use_sliding_window holds
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    context = c.int("max_position_embeddings")
    rope = rope_layers(c, n)
    on = c.bool("use_sliding_window", default=False) and c.value("sliding_window", None) is not None
    kinds = layer_kinds(c, n, HF_KINDS) or ["sliding" if on and not r else "full" for r in rope]
    base = standard_attention(c, h)
    w = window(c, context) if on else 0
    bias = c.bool("mlp_bias", default=False)
    ffn = Dense(c.int("intermediate_size"), bias=bias)
    layers: list[Layer] = []
    for r, k in zip(rope, kinds):
        attn = replace(base, rope=bool(r))
        if on and k == "sliding":
            attn = replace(attn, kind="sliding", window=w)
        layers.append((attn, ffn, 2))
    return decoder_spec(c, name, layers, hidden=h)
