"""More mixture-of-experts decoders: DBRX, ERNIE 4.5 MoE, Hunyuan MoE (Hunyuan-A13B) and dots.llm1.

Each reader names the transformers 5.24 modeling file whose module shapes it follows. Routing fields that change no
parameter count are read by transformers but not here, on purpose: DBRX's moe_jitter_eps, moe_loss_weight and
moe_normalize_expert_weights and clip_qkv; ERNIE's moe_norm_min; dots1's n_group, topk_group, norm_topk_prob and
routed_scaling_factor (its e_score_correction_bias is a buffer, ERNIE's is a parameter and counted).
"""

from __future__ import annotations

from llmplan.errors import LlmplanError
from llmplan.models.hf_build import Layer, decoder_spec, experts_count
from llmplan.models.hf_common import Cfg, standard_attention
from llmplan.models.hf_dense import from_layer_types, sliding_pattern
from llmplan.models.hf_moe import first_dense_moe
from llmplan.models.layers import Attention, Dense, MoE
from llmplan.models.spec import ModelSpec


def dbrx(c: Cfg, name: str) -> ModelSpec:
    # modeling_dbrx.py: fused Wqkv and out_proj without bias (attn_config.kv_n_heads KV heads); bias-free
    # LayerNorms norm_1 / norm_2 and norm_f; ffn_config: moe_num_experts gated experts (w1, v1, w2) of
    # ffn_hidden_size, top moe_top_k, a bias-free router. The nested configs' missing keys take DbrxAttentionConfig's
    # and DbrxFFNConfig's defaults.
    h, n, heads = c.int("d_model"), c.int("n_layers"), c.int("n_heads")
    attn_cfg, ffn_cfg = c.nested("attn_config", "dbrx.attn_config"), c.nested("ffn_config", "dbrx.ffn_config")
    if h % heads:
        raise LlmplanError(f"{c.name}: d_model {h} is not divisible by {heads} heads (n_heads)")
    attn = Attention(heads=heads, kv_heads=attn_cfg.int("kv_n_heads"), head_dim=h // heads)
    moe = MoE(experts_count(ffn_cfg, "moe_num_experts"), ffn_cfg.int("moe_top_k"), ffn_cfg.int("ffn_hidden_size"))
    return decoder_spec(c, name, [(attn, moe, 2)] * n, hidden=h, norm="layernorm", norm_bias=False,
                        context_key="max_seq_len")


def ernie4_5_moe(c: Cfg, name: str) -> ModelSpec:
    # modeling_ernie4_5_moe.py: use_bias on q/k/v/o, the dense and shared MLPs and lm_head (not the experts); MoE on
    # layers i with (i + 1) % moe_layer_interval == 0 and moe_layer_start_index <= i <= moe_layer_end_index (-1: the
    # last layer, Ernie4_5_MoeConfig.__post_init__), else a dense MLP of intermediate_size; moe_num_shared_experts
    # shared experts of moe_intermediate_size each; the router's e_score_correction_bias is a parameter
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    bias = c.bool("use_bias", default=False)
    attn = standard_attention(c, h, qkv_bias=bias, out_bias=bias)
    start = c.int("moe_layer_start_index", default=0, minimum=0)
    end = c.int("moe_layer_end_index", default=-1, minimum=-1)
    end = n - 1 if end == -1 else end
    every = c.int("moe_layer_interval", default=1)
    expert = c.int("moe_intermediate_size")
    moe = MoE(experts_count(c, "moe_num_experts"), c.int("moe_k"), expert, router_bias=True,
              shared_ffn=c.int("moe_num_shared_experts", default=0, minimum=0) * expert, shared_bias=bias)
    dense = Dense(c.int("intermediate_size"), bias=bias)
    layers: list[Layer] = [(attn, moe if (i + 1) % every == 0 and start <= i <= end else dense, 2) for i in range(n)]
    return decoder_spec(c, name, layers, hidden=h, lm_head_bias=bias)  # lm_head: bias=config.use_bias


def _per_layer(c: Cfg, key: str, n: int, minimum: int = 1) -> list[int]:
    """An integer, or a list of one integer per layer (Hunyuan's moe_topk)."""
    v = c.value(key)
    if isinstance(v, list):
        if len(v) != n or not all(isinstance(x, int) and not isinstance(x, bool) and x >= minimum for x in v):
            raise c.bad(key, f"an integer or a list of {n} integers of at least {minimum}", v)
        return v
    return [c.int(key, minimum=minimum)] * n


def hunyuan_v1_moe(c: Cfg, name: str) -> ModelSpec:
    # modeling_hunyuan_v1_moe.py: the dense model's attention (q/k head norms, attention_bias on all four
    # projections); every layer a MoE of num_experts experts of intermediate_size (moe_topk: one value or one per
    # layer), a bias-free router wg, and one shared_mlp of intermediate_size. The Hub configs' moe_intermediate_size,
    # num_shared_expert and use_mixed_mlp_moe are not read by transformers (its module shapes use intermediate_size)
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    if isinstance(c.value("num_experts"), list):
        raise c.bad("num_experts", "one integer (transformers 5.24 builds every layer with it)", c.value("num_experts"))
    attn = standard_attention(c, h, qk_norm="head")
    ffn, experts = c.int("intermediate_size"), experts_count(c, "num_experts")
    layers: list[Layer] = [(attn, MoE(experts, k, ffn, shared_ffn=ffn), 2) for k in _per_layer(c, "moe_topk", n)]
    return decoder_spec(c, name, layers, hidden=h)


def dots1(c: Cfg, name: str) -> ModelSpec:
    # modeling_dots1.py (dots.llm1): q/k head norms, attention_bias on all four projections; dense layers before
    # first_k_dense_replace, then a MoE of n_routed_experts with n_shared_experts shared experts of
    # moe_intermediate_size; sliding layers from layer_types, else those at or after max_window_layers when
    # sliding_window is set (Dots1Config.__post_init__)
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    context = c.int("max_position_embeddings")
    attn = standard_attention(c, h, qk_norm="head")
    first, moe = first_dense_moe(c, n)
    dense = Dense(c.int("intermediate_size"))
    on = c.value("sliding_window", None) is not None
    if on:
        c.int("sliding_window")  # checked even where no layer slides
    start = c.int("max_window_layers", default=n, minimum=0)
    sliding = from_layer_types(c, n, [on and i >= start for i in range(n)])
    if not on:
        sliding = None  # Dots1Attention: sliding_window None on every layer
    attns = sliding_pattern(c, n, sliding, context, attn)
    return decoder_spec(c, name, [(a, dense if i < first else moe, 2) for i, a in enumerate(attns)], hidden=h)
