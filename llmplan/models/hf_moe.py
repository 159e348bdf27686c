"""Readers of mixture-of-experts decoders, multi-head latent attention included (transformers 5.24 module shapes).

Routing fields that change no parameter count are read by transformers but not here, on purpose: n_group,
topk_group, topk_method, routed_scaling_factor, norm_topk_prob, scoring_func, router_jitter_noise, aux-loss
coefficients. DeepSeek-V3's and GLM-4.5's e_score_correction_bias is a buffer (nn.Buffer), not a parameter.
"""

from __future__ import annotations

from llmplan.errors import LlmplanError
from llmplan.models.hf_build import Layer, decoder_spec, experts_count
from llmplan.models.hf_common import Cfg, layer_kinds, rope_layers, standard_attention
from llmplan.models.hf_dense import from_layer_types, sliding_pattern
from llmplan.models.layers import Attention, Dense, MoE
from llmplan.models.spec import ModelSpec


def qwen_sparse_layers(c: Cfg, n: int) -> list[bool]:
    """Qwen2-MoE / Qwen3-MoE / Qwen3-Next: a layer is MoE unless listed in mlp_only_layers, and only every
    decoder_sparse_step-th layer (modeling_qwen3_moe.py Qwen3MoeDecoderLayer)."""
    only = set(c.int_list("mlp_only_layers", default=[]))
    bad = sorted(i for i in only if not 0 <= i < n)
    if bad:
        raise c.bad("mlp_only_layers", f"layer indices below {n}", bad)
    step = c.int("decoder_sparse_step", default=1)
    return [i not in only and (i + 1) % step == 0 for i in range(n)]


def qwen2_moe(c: Cfg, name: str) -> ModelSpec:
    # modeling_qwen2_moe.py: q/k/v bias; a shared expert of shared_expert_intermediate_size with a sigmoid gate
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    context = c.int("max_position_embeddings")
    attn = standard_attention(c, h, qkv_bias=c.bool("qkv_bias", default=True), out_bias=False)
    sliding = None
    if c.bool("use_sliding_window", default=False) and c.has("sliding_window"):  # Qwen2MoeConfig.__post_init__
        first = c.int("max_window_layers", default=0, minimum=0)
        sliding = from_layer_types(c, n, [(i + 1) % 2 == 1 and i < first for i in range(n)])
    moe = MoE(experts_count(c, "num_experts"), c.int("num_experts_per_tok"), c.int("moe_intermediate_size"),
              shared_ffn=c.int("shared_expert_intermediate_size", minimum=0), shared_gate=True)
    dense = Dense(c.int("intermediate_size"))
    sparse = qwen_sparse_layers(c, n)
    layers = [(a, moe if s else dense, 2) for a, s in zip(sliding_pattern(c, n, sliding, context, attn), sparse)]
    return decoder_spec(c, name, layers, hidden=h)


def qwen3_moe(c: Cfg, name: str, top: Cfg | None = None, assumptions=()) -> ModelSpec:
    # modeling_qwen3_moe.py (and qwen3_vl_moe's text model): q/k head norms, no shared expert
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    context = c.int("max_position_embeddings")
    attn = standard_attention(c, h, qk_norm="head")
    on = c.bool("use_sliding_window", default=False) and c.has("sliding_window")
    sliding = [True] * n if on else None  # Qwen3MoeAttention: config.sliding_window on every layer when in use
    moe = MoE(experts_count(c, "num_experts"), c.int("num_experts_per_tok"), c.int("moe_intermediate_size"))
    dense = Dense(c.int("intermediate_size"))
    sparse = qwen_sparse_layers(c, n)
    layers = [(a, moe if s else dense, 2) for a, s in zip(sliding_pattern(c, n, sliding, context, attn), sparse)]
    return decoder_spec(c, name, layers, hidden=h, top=top, assumptions=assumptions)


def _all_moe(c: Cfg, name: str, attn: Attention, moe: MoE, *, norms: int = 2, sliding: bool = False, **kw):
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    pattern = [True] * n if sliding and c.has("sliding_window") else None
    attns = sliding_pattern(c, n, pattern, c.int("max_position_embeddings"), attn)
    return decoder_spec(c, name, [(a, moe, norms) for a in attns], hidden=h, **kw)


def olmoe(c: Cfg, name: str) -> ModelSpec:  # modeling_olmoe.py: q/k norms over the whole projections
    h = c.int("hidden_size")
    moe = MoE(experts_count(c, "num_experts"), c.int("num_experts_per_tok"), c.int("intermediate_size"))
    return _all_moe(c, name, standard_attention(c, h, qk_norm="proj"), moe, sliding=False)


def phimoe(c: Cfg, name: str) -> ModelSpec:  # modeling_phimoe.py: LayerNorms with bias, lm_head_bias
    h = c.int("hidden_size")
    moe = MoE(experts_count(c, "num_local_experts"), c.int("num_experts_per_tok"), c.int("intermediate_size"))
    return _all_moe(c, name, standard_attention(c, h), moe, sliding=True, norm="layernorm", norm_bias=True,
                    lm_head_bias=c.bool("lm_head_bias", default=False))


def granitemoe(c: Cfg, name: str) -> ModelSpec:  # modeling_granitemoe.py: bias-free router, no shared expert
    h = c.int("hidden_size")
    moe = MoE(experts_count(c, "num_local_experts"), c.int("num_experts_per_tok"), c.int("intermediate_size"))
    return _all_moe(c, name, standard_attention(c, h), moe)


def minimax_m2(c: Cfg, name: str) -> ModelSpec:
    # modeling_minimax_m2.py: q_norm / k_norm over the whole q and k projections, no attention biases, routed
    # experts only (the e_score_correction_bias is a buffer)
    h = c.int("hidden_size")
    qk = "proj" if c.bool("use_qk_norm", default=True) else ""
    attn = standard_attention(c, h, qkv_bias=False, out_bias=False, qk_norm=qk)
    moe = MoE(experts_count(c, "num_local_experts"), c.int("num_experts_per_tok"), c.int("intermediate_size"))
    return _all_moe(c, name, attn, moe)


def gpt_oss(c: Cfg, name: str) -> ModelSpec:
    # modeling_gpt_oss.py: biased q/k/v/o, a learned sink logit per head, alternating sliding (even layers) and
    # full layers; experts with biases (gate_up_proj_bias, down_proj_bias) and a biased router
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    attn = standard_attention(c, h, sinks=True)
    sliding = from_layer_types(c, n, [(i + 1) % 2 == 1 for i in range(n)])
    moe = MoE(experts_count(c, "num_local_experts"), c.int("num_experts_per_tok"), c.int("intermediate_size"),
              bias=True, router_bias=True)
    attns = sliding_pattern(c, n, sliding, c.int("max_position_embeddings"), attn)
    return decoder_spec(c, name, [(a, moe, 2) for a in attns], hidden=h)


def llama4_text(c: Cfg, name: str, top: Cfg | None = None, assumptions=()) -> ModelSpec:
    # modeling_llama4.py: MoE layers (moe_layers, else every interleave_moe_layer_step-th) with one shared expert of
    # intermediate_size; dense layers of intermediate_size_mlp; NoPE layers (no_rope_layers[i] == 0, else every
    # no_rope_layer_interval-th); RoPE layers attend in chunks of attention_chunk_size; qk_norm is a
    # parameter-free L2 norm
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    context = c.int("max_position_embeddings")
    rope = rope_layers(c, n)
    step = c.int("interleave_moe_layer_step", default=1)
    moe_layers = c.int_list("moe_layers", default=[]) if c.has("moe_layers") else list(range(step - 1, n, step))
    if any(not 0 <= i < n for i in moe_layers):
        raise c.bad("moe_layers", f"layer indices below {n}", moe_layers)
    chunk = c.int("attention_chunk_size", null=0)
    if chunk and chunk > context:
        raise LlmplanError(f"{c.name}: {c.key('attention_chunk_size')} ({chunk:,}) exceeds the context "
                           f"(max_position_embeddings {context:,})")
    kinds = layer_kinds(c, n, {"full_attention": "full", "chunked_attention": "chunked"})
    if kinds is None:
        kinds = ["chunked" if r and chunk else "full" for r in rope]
    base = standard_attention(c, h)
    moe = MoE(experts_count(c, "num_local_experts"), c.int("num_experts_per_tok"), c.int("intermediate_size"),
              shared_ffn=c.int("intermediate_size"))
    dense = Dense(c.int("intermediate_size_mlp"))
    layers: list[Layer] = []
    for i in range(n):
        if kinds[i] == "chunked" and not chunk:
            raise LlmplanError(f"{c.name}: layer_types has chunked_attention layers but attention_chunk_size is null")
        attn = Attention(**{**base.__dict__, "rope": bool(rope[i]),
                            **({"kind": "chunked", "window": chunk} if kinds[i] == "chunked" else {})})
        layers.append((attn, moe if i in moe_layers else dense, 2))
    return decoder_spec(c, name, layers, hidden=h, top=top, assumptions=assumptions)


# Multi-head latent attention (DeepSeek-V2 section 2.1) -----------------------------------------------------------
def mla(c: Cfg, hidden: int, indexer: bool = False) -> Attention:
    """DeepseekV3Attention: q_lora_rank null (V2-Lite) means a plain q_proj; kv_lora_rank must be positive."""
    heads = c.int("num_attention_heads")
    rope, nope = c.int("qk_rope_head_dim"), c.int("qk_nope_head_dim")
    index = {}
    if indexer:  # DeepSeek-V3.2 / GLM-5 lightning indexer (DeepseekV32Indexer)
        index = dict(index_heads=c.int("index_n_heads"), index_head_dim=c.int("index_head_dim"),
                     index_topk=c.int("index_topk"))
    bias = c.bool("attention_bias", default=False)
    return Attention(heads=heads, kv_heads=heads, head_dim=nope + rope, v_head_dim=c.int("v_head_dim"),
                     q_lora_rank=c.int("q_lora_rank", null=0), kv_lora_rank=c.int("kv_lora_rank"),
                     qk_rope_head_dim=rope, qkv_bias=bias, out_bias=bias, **index)


def first_dense_moe(c: Cfg, n: int) -> tuple[int, MoE]:
    """first_k_dense_replace (dense layers before the MoE ones) and the MoE of n_routed_experts with
    n_shared_experts shared experts of moe_intermediate_size (DeepSeek-V2/V3, dots.llm1)."""
    first = c.int("first_k_dense_replace", default=0, minimum=0)
    if first > n:
        raise c.bad("first_k_dense_replace", f"at most num_hidden_layers ({n})", first)
    expert = c.int("moe_intermediate_size")
    return first, MoE(experts_count(c, "n_routed_experts"), c.int("num_experts_per_tok"), expert,
                      shared_ffn=c.int("n_shared_experts", null=0, minimum=0) * expert)


def deepseek_moe(c: Cfg, name: str, attn: Attention, *, mtp: bool = True, gated_ffn_key: str = "intermediate_size",
                 assumptions=(), top: Cfg | None = None) -> ModelSpec:
    """DeepSeek-V2/V3 stacks: dense layers before first_k_dense_replace, MoE after, with n_shared_experts shared
    experts of moe_intermediate_size (DeepseekV3DecoderLayer). moe_layer_freq: the DeepSeek reference code makes
    only every moe_layer_freq-th layer MoE, transformers ignores it; every released config has 1, and any other
    value is refused rather than guessed."""
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    if c.int("moe_layer_freq", default=1) != 1:
        raise LlmplanError(f"{c.name}: moe_layer_freq {c.raw['moe_layer_freq']} is not supported: transformers "
                           "ignores it while DeepSeek's own code does not, so the layer make-up is ambiguous")
    first, moe = first_dense_moe(c, n)
    dense = Dense(c.int(gated_ffn_key), bias=c.bool("mlp_bias", default=False))
    layers = [(attn, dense if i < first else moe, 2) for i in range(n)]
    mtp_layers = c.int("num_nextn_predict_layers", default=0, minimum=0) if mtp else 0
    return decoder_spec(c, name, layers, hidden=h, mtp_layers=mtp_layers, assumptions=assumptions, top=top)


def deepseek_v2(c: Cfg, name: str) -> ModelSpec:  # modeling_deepseek_v2.py
    return deepseek_moe(c, name, mla(c, c.int("hidden_size")), mtp=False)


def deepseek_v3(c: Cfg, name: str, top: Cfg | None = None, assumptions=()) -> ModelSpec:
    # modeling_deepseek_v3.py; Kimi K2 ships this architecture as kimi_k2, Kimi K2.5 inside a kimi_k25 wrapper
    return deepseek_moe(c, name, mla(c, c.int("hidden_size")), top=top, assumptions=assumptions)


def deepseek_v32(c: Cfg, name: str) -> ModelSpec:  # modeling_deepseek_v32.py: V3 plus the sparse-attention indexer
    return deepseek_moe(c, name, mla(c, c.int("hidden_size"), indexer=True))


def glm4_moe_lite(c: Cfg, name: str) -> ModelSpec:  # modeling_glm4_moe_lite.py: DeepSeek-V3 layout (GLM-4.7-Flash)
    return deepseek_moe(c, name, mla(c, c.int("hidden_size")))


def glm_moe_dsa(c: Cfg, name: str) -> ModelSpec:  # modeling_glm_moe_dsa.py: MLA with the V3.2 indexer (GLM-5)
    return deepseek_moe(c, name, mla(c, c.int("hidden_size"), indexer=True))


def glm4_moe(c: Cfg, name: str) -> ModelSpec:
    # modeling_glm4_moe.py (GLM-4.5, 4.6, 4.7): GQA with bias on q/k/v only, optional q/k head norms (use_qk_norm),
    # DeepSeek-V3's dense-then-MoE layout with shared experts
    h = c.int("hidden_size")
    attn = standard_attention(c, h, out_bias=False, qk_norm="head" if c.bool("use_qk_norm", default=False) else "")
    return deepseek_moe(c, name, attn)
