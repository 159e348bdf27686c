"""Readers of dense decoders (one feed-forward network per layer): LLaMA-style models and their per-layer variants.

Each reader names the transformers modeling file whose module shapes it follows (transformers 5.24,
src/transformers/models/<type>/modeling_<type>.py); the counts are checked against that version on the meta device
(tests/test_models_hf_config.py, tests/data/hf_configs/COUNTS.json).
"""

from __future__ import annotations

from dataclasses import replace

from llmplan.errors import LlmplanError
from llmplan.models.hf_build import Layer, decoder_spec
from llmplan.models.hf_common import Cfg, layer_kinds, standard_attention, window
from llmplan.models.layers import Attention, Dense
from llmplan.models.spec import ModelSpec

HF_KINDS = {"full_attention": "full", "sliding_attention": "sliding"}


def sliding_pattern(c: Cfg, layers: int, sliding: list[bool] | None, context: int, base: Attention) -> list[Attention]:
    """Per-layer attention: `sliding[i]` layers get the config's sliding_window, the others full attention."""
    if sliding is None or not any(sliding):
        return [base] * layers
    local = replace(base, kind="sliding", window=window(c, context))
    return [local if s else base for s in sliding]


def from_layer_types(c: Cfg, layers: int, default: list[bool] | None) -> list[bool] | None:
    """Sliding layers from `layer_types` when the config lists them (checked), else the model's default pattern."""
    kinds = layer_kinds(c, layers, HF_KINDS)
    return default if kinds is None else [k == "sliding" for k in kinds]


def _llama_like(c: Cfg, name: str, *, sliding: str = "none", qk_norm: str = "", qkv_bias: bool | None = None,
                out_bias: bool | None = None, norms: int = 2, tied_default: bool | None = None, gated: bool = True,
                mlp_bias_key: str | None = "mlp_bias", norm: str = "rmsnorm", norm_bias: bool | None = None,
                activation_key: str = "hidden_act", top: Cfg | None = None, assumptions=()) -> ModelSpec:
    """LLaMA-style stack (transformers LlamaDecoderLayer shapes) with the per-family switches.

    sliding: "none" (llama), "all" (mistral, mixtral, phi3, starcoder2: every layer uses sliding_window when set),
    "layer_types" (qwen2/qwen3: layer_types, else use_sliding_window and max_window_layers), "alternate" (gemma2,
    gpt-oss: even layers slide), or an int n (gemma3: every n-th layer is global, sliding_window_pattern).
    """
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    context = c.int("max_position_embeddings")
    attn = standard_attention(c, h, qkv_bias=qkv_bias, out_bias=out_bias, qk_norm=qk_norm)
    if sliding == "none":
        pattern = None
    elif sliding == "all":
        pattern = [True] * n if c.has("sliding_window") else None
    elif sliding == "layer_types":  # Qwen2Config.__post_init__
        on = c.bool("use_sliding_window", default=False) and c.has("sliding_window")
        first = c.int("max_window_layers", default=0, minimum=0) if on else 0
        listed = from_layer_types(c, n, [i >= first for i in range(n)])  # checked even when not in effect
        pattern = listed if on else None  # use_sliding_window false: sliding_window is None on every layer
    elif sliding == "alternate":  # Gemma2Config.__post_init__
        pattern = from_layer_types(c, n, [(i + 1) % 2 == 1 for i in range(n)])
    else:  # every `sliding`-th layer global (Gemma3TextConfig.__post_init__: sliding_window_pattern, default 6)
        every = c.int("sliding_window_pattern", default=int(sliding))
        pattern = from_layer_types(c, n, [(i + 1) % every != 0 for i in range(n)])
    attns = sliding_pattern(c, n, pattern, context, attn)
    bias = c.bool(mlp_bias_key, default=False) if mlp_bias_key else False
    ffn = Dense(c.int("intermediate_size"), gated=gated, bias=bias)
    layers: list[Layer] = [(a, ffn, norms) for a in attns]
    return decoder_spec(c, name, layers, hidden=h, tied_default=tied_default, norm=norm, norm_bias=norm_bias,
                        activation_key=activation_key, top=top, assumptions=assumptions)


# model types --------------------------------------------------------------------------------------------------
def llama(c: Cfg, name: str, **kw) -> ModelSpec:  # modeling_llama.py
    return _llama_like(c, name, **kw)


def mistral(c: Cfg, name: str, **kw) -> ModelSpec:  # modeling_mistral.py: sliding_window on every layer when set
    return _llama_like(c, name, sliding="all", **kw)


def phi3(c: Cfg, name: str) -> ModelSpec:  # modeling_phi3.py: fused qkv_proj and gate_up_proj, same counts
    return _llama_like(c, name, sliding="all")


def qwen2(c: Cfg, name: str, **kw) -> ModelSpec:  # modeling_qwen2.py (and the Qwen2-VL text models): bias on q, k, v
    return _llama_like(c, name, sliding="layer_types", qkv_bias=True, out_bias=False, mlp_bias_key=None, **kw)


def qwen3(c: Cfg, name: str, **kw) -> ModelSpec:  # modeling_qwen3.py: RMSNorm over each q and k head
    return _llama_like(c, name, sliding="layer_types", qk_norm="head", mlp_bias_key=None, **kw)


def gemma(c: Cfg, name: str) -> ModelSpec:  # modeling_gemma.py
    return _llama_like(c, name, tied_default=True, activation_key="hidden_activation", mlp_bias_key=None)


def gemma2(c: Cfg, name: str) -> ModelSpec:  # modeling_gemma2.py: pre- and post-norms around attention and MLP
    return _llama_like(c, name, sliding="alternate", norms=4, tied_default=True, activation_key="hidden_activation",
                       mlp_bias_key=None)


def gemma3_text(c: Cfg, name: str, **kw) -> ModelSpec:  # modeling_gemma3.py: Gemma 2's four norms, q/k head norms
    return _llama_like(c, name, sliding="6", norms=4, qk_norm="head", tied_default=True,
                       activation_key="hidden_activation", mlp_bias_key=None, **kw)


def olmo2(c: Cfg, name: str) -> ModelSpec:
    # modeling_olmo2.py: post-norms only (post_attention_layernorm, post_feedforward_layernorm); q_norm and k_norm
    # over the whole q and k projections
    return _llama_like(c, name, qk_norm="proj", mlp_bias_key=None)


def olmo3(c: Cfg, name: str) -> ModelSpec:  # modeling_olmo3.py: OLMo 2 with layer_types (3 sliding : 1 full)
    return _llama_like(c, name, sliding="4", qk_norm="proj", mlp_bias_key=None)


def exaone4(c: Cfg, name: str) -> ModelSpec:
    # modeling_exaone4.py: post-norms (2), q/k head norms; sliding_window_pattern an int (every n-th layer global)
    # or a string such as "LLLG" (L local, G global, repeated); no attention or MLP biases
    pattern = c.value("sliding_window_pattern", 4)
    if isinstance(pattern, str):
        if not pattern or set(pattern) - {"L", "G"}:
            raise c.bad("sliding_window_pattern", "a string of L and G", pattern)
        every = None
    elif not c.has("sliding_window"):
        every, pattern = None, ""
    else:
        every = c.int("sliding_window_pattern")
    n = c.int("num_hidden_layers")
    default = ([(i + 1) % every != 0 for i in range(n)] if every
               else [pattern[i % len(pattern)] == "L" for i in range(n)] if pattern else None)
    h, context = c.int("hidden_size"), c.int("max_position_embeddings")
    attn = standard_attention(c, h, qkv_bias=False, out_bias=False, qk_norm="head")
    sliding = from_layer_types(c, n, default) if c.has("sliding_window") else None
    layers = [(a, Dense(c.int("intermediate_size")), 2) for a in sliding_pattern(c, n, sliding, context, attn)]
    return decoder_spec(c, name, layers, hidden=h)


def starcoder2(c: Cfg, name: str) -> ModelSpec:
    # modeling_starcoder2.py: every linear biased by use_bias; c_fc/c_proj MLP (not gated); LayerNorm with bias
    bias = c.bool("use_bias", default=True)
    h, n, context = c.int("hidden_size"), c.int("num_hidden_layers"), c.int("max_position_embeddings")
    attn = standard_attention(c, h, qkv_bias=bias, out_bias=bias)
    pattern = [True] * n if c.has("sliding_window") else None
    ffn = Dense(c.int("intermediate_size"), gated=False, bias=bias)
    layers = [(a, ffn, 2) for a in sliding_pattern(c, n, pattern, context, attn)]
    return decoder_spec(c, name, layers, hidden=h, norm="layernorm", norm_bias=True)


def cohere(c: Cfg, name: str) -> ModelSpec:
    # modeling_cohere.py: attention and MLP in parallel after one CohereLayerNorm (weight only); use_qk_norm adds a
    # CohereLayerNorm of shape (heads, head_dim) on q and (kv_heads, head_dim) on k: the whole projections
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    attn = standard_attention(c, h, qk_norm="proj" if c.bool("use_qk_norm", default=False) else "")
    layers = [(attn, Dense(c.int("intermediate_size")), 1)] * n
    spec = decoder_spec(c, name, layers, hidden=h, norm="layernorm", norm_bias=False)
    return spec.with_(parallel_layers=True)


def require_text(c: Cfg, wrapper: str) -> None:
    if not c.raw:
        raise LlmplanError(f"{c.name}: a {wrapper} config needs its text_config")


def gemma4_text(c: Cfg, name: str, top: Cfg | None = None, assumptions=()) -> ModelSpec:
    """modeling_gemma4.py (Gemma4TextModel): Gemma 3's four norms and q/k head norms (v_norm has no weight); global
    layers of global_head_dim with num_global_key_value_heads and, with attention_k_eq_v, no v_proj; the last
    num_kv_shared_layers reuse earlier K/V (no k/v projections or norms; with use_double_wide_mlp a 2x MLP); with
    enable_moe_block a MoE beside the dense MLP (Gemma4TextRouter: a projection, a scale per hidden unit and per
    expert; three more norms); per-layer input embeddings of hidden_size_per_layer_input (a gate, a projection and a
    norm per layer, one table and one projection for the model). Layers follow layer_types, else 5 sliding : 1
    global, the last layer always global (Gemma4TextConfig.__post_init__)."""
    from llmplan.models.layers import MoE

    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    context = c.int("max_position_embeddings")
    kinds = layer_kinds(c, n, HF_KINDS) or ["sliding" if (i + 1) % 6 else "full" for i in range(n)]
    kinds[-1] = "full"
    if not isinstance(c.value("per_layer_config", None), (dict, type(None))):
        raise c.bad("per_layer_config", "an object of layer index -> overrides", c.value("per_layer_config"))
    overrides = {int(k): v for k, v in (c.value("per_layer_config", None) or {}).items()}
    k_eq_v = c.bool("attention_k_eq_v", default=False)
    global_kv = c.int("num_global_key_value_heads", null=0) if k_eq_v else 0
    shared_from = n - c.int("num_kv_shared_layers", default=0, minimum=0)
    double = c.bool("use_double_wide_mlp", default=False)
    ffn = c.int("intermediate_size")
    heads, kv = c.int("num_attention_heads"), c.int("num_key_value_heads", null=c.int("num_attention_heads"))
    moe = None
    if c.bool("enable_moe_block", default=False):
        moe = dict(experts=c.int("num_experts", minimum=2), top_k=c.int("top_k_experts"),
                   expert_ffn=c.int("moe_intermediate_size"), router_scales=True)
    ple = c.int("hidden_size_per_layer_input", default=0, minimum=0)
    bias = c.bool("attention_bias", default=False)
    window = window_of = c.int("sliding_window")
    if window > context:
        raise LlmplanError(f"{c.name}: sliding_window ({window:,}) exceeds the context ({context:,})")
    layers: list[Layer] = []
    for i, kind in enumerate(kinds):
        o = overrides.get(i, {"head_dim": c.int("global_head_dim", default=512),
                              **({"num_key_value_heads": global_kv} if global_kv else {})} if kind == "full" else {})
        attn = Attention(heads=heads, kv_heads=int(o.get("num_key_value_heads", kv)),
                         head_dim=int(o.get("head_dim", c.int("head_dim"))), qkv_bias=bias, out_bias=bias,
                         qk_norm="head", kind=kind, window=window_of if kind == "sliding" else 0,
                         k_eq_v=k_eq_v and kind == "full", kv_shared=i >= shared_from)
        width = ffn * (2 if double and i >= shared_from else 1)
        f = MoE(**moe, shared_ffn=width) if moe else Dense(width)
        layers.append((attn, f, 4 + (3 if moe else 0) + (1 if ple else 0)))
    spec = decoder_spec(c, name, layers, hidden=h, tied_default=True, activation_key="hidden_activation", top=top,
                        assumptions=assumptions)
    if ple:
        spec = spec.with_(per_layer_input=ple, per_layer_vocab=c.int("vocab_size_per_layer_input"))
    return spec
