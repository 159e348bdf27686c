"""Readers of hybrid decoders: Mamba-2 with attention (Nemotron-H) and Gated DeltaNet with attention (Qwen3-Next,
Qwen3.5), whose recurrent layers keep a fixed state per sequence instead of a growing KV cache."""

from __future__ import annotations

from llmplan.errors import LlmplanError
from llmplan.models.hf_build import Layer, decoder_spec, experts_count
from llmplan.models.hf_common import Cfg, layer_kinds, standard_attention
from llmplan.models.hf_moe import qwen_sparse_layers
from llmplan.models.layers import Dense, GatedDeltaNet, Mamba2, MoE
from llmplan.models.spec import ModelSpec

NEMOTRON_PATTERN = {"M": "linear_attention", "E": "moe", "*": "full_attention", "-": "mlp"}


def nemotron_h(c: Cfg, name: str) -> ModelSpec:
    """modeling_nemotron_h.py: each layer is one RMSNorm and one mixer: Mamba-2 (M), attention without biases or
    positional encoding (*), a squared-ReLU MLP (-), or a MoE of squared-ReLU experts with shared experts (E).
    The make-up is hybrid_override_pattern (older configs) or layers_block_type / layer_types."""
    h = c.int("hidden_size")
    pattern = c.value("hybrid_override_pattern", None)
    if pattern is not None:
        if not isinstance(pattern, str) or not pattern or set(pattern) - set(NEMOTRON_PATTERN):
            raise c.bad("hybrid_override_pattern", "a string of M, E, * and -", pattern)
        types = [NEMOTRON_PATTERN[ch] for ch in pattern]
        key = "hybrid_override_pattern"
    else:
        key = "layers_block_type"
        types = c.str_list(key)
        if types is None:
            raise LlmplanError(f"{c.name}: a nemotron_h config needs hybrid_override_pattern or layers_block_type")
        legacy = {"mamba": "linear_attention", "attention": "full_attention"}  # remap_legacy_layer_types
        types = [legacy.get(t, t) for t in types]
        unknown = sorted(set(types) - set(NEMOTRON_PATTERN.values()))
        if unknown:
            raise c.bad(key, "a list of linear_attention, full_attention, mlp and moe", unknown)
    if c.has("num_hidden_layers") and c.int("num_hidden_layers") != len(types):
        raise LlmplanError(f"{c.name}: {c.key(key)} describes {len(types)} layers, but num_hidden_layers is "
                           f"{c.int('num_hidden_layers')}")
    mamba = Mamba2(heads=c.int("mamba_num_heads"), head_dim=c.int("mamba_head_dim"), state=c.int("ssm_state_size"),
                   groups=c.int("n_groups"), conv_kernel=c.int("conv_kernel"), bias=c.bool("use_bias"),
                   conv_bias=c.bool("use_conv_bias"))
    attn = standard_attention(c, h, qkv_bias=False, out_bias=False, rope=False)
    mlp_bias = c.bool("mlp_bias", default=False)
    parts = {"linear_attention": (mamba, None), "full_attention": (attn, None)}
    if "mlp" in types:
        parts["mlp"] = (None, Dense(c.int("intermediate_size"), gated=False, bias=mlp_bias))
    if "moe" in types:
        # NemotronHMoE: one shared NemotronHMLP of moe_shared_expert_intermediate_size (n_shared_experts is not
        # read by transformers); routed experts in moe_latent_size when set
        moe = MoE(experts_count(c, "n_routed_experts"), c.int("num_experts_per_tok"), c.int("moe_intermediate_size"),
                  gated=False, bias=mlp_bias, shared_ffn=c.int("moe_shared_expert_intermediate_size", minimum=0),
                  latent=c.int("moe_latent_size", null=0))
        parts["moe"] = (None, moe)
    layers: list[Layer] = [(*parts[t], 1) for t in types]
    return decoder_spec(c, name, layers, hidden=h, activation_key="mlp_hidden_act")


def _gated_deltanet(c: Cfg) -> GatedDeltaNet:
    return GatedDeltaNet(k_heads=c.int("linear_num_key_heads"), v_heads=c.int("linear_num_value_heads"),
                         k_head_dim=c.int("linear_key_head_dim"), v_head_dim=c.int("linear_value_head_dim"),
                         conv_kernel=c.int("linear_conv_kernel_dim"))


def _linear_pattern(c: Cfg, n: int) -> list[str]:
    """layer_types (full_attention / linear_attention), else every full_attention_interval-th layer full
    (Qwen3NextConfig.__post_init__, default 4)."""
    kinds = layer_kinds(c, n, {"full_attention": "full", "linear_attention": "linear"})
    if kinds is None:
        every = c.int("full_attention_interval", default=4)
        kinds = ["linear" if (i + 1) % every else "full" for i in range(n)]
    return kinds


def _qwen_hybrid(c: Cfg, name: str, ffns: list, top: Cfg | None, assumptions) -> ModelSpec:
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    attn = standard_attention(c, h, qk_norm="head", output_gate=True)  # Qwen3NextAttention: gated q_proj
    delta = _gated_deltanet(c)
    kinds = _linear_pattern(c, n)
    layers: list[Layer] = [(attn if k == "full" else delta, f, 2) for k, f in zip(kinds, ffns)]
    notes = list(assumptions)
    if c.int("mtp_num_hidden_layers", default=0, minimum=0):
        notes.append("its multi-token-prediction layers (mtp_num_hidden_layers) are not built by transformers and "
                     "not counted")
    return decoder_spec(c, name, layers, hidden=h, top=top, assumptions=tuple(notes))


def _qwen_moe(c: Cfg) -> MoE:
    return MoE(experts_count(c, "num_experts"), c.int("num_experts_per_tok"), c.int("moe_intermediate_size"),
               shared_ffn=c.int("shared_expert_intermediate_size", minimum=0), shared_gate=True)


def qwen3_next(c: Cfg, name: str) -> ModelSpec:
    # modeling_qwen3_next.py: Gated DeltaNet and gated full attention; MoE with a gated shared expert on every
    # decoder_sparse_step-th layer not in mlp_only_layers, else a dense MLP of intermediate_size
    n = c.int("num_hidden_layers")
    moe, sparse = _qwen_moe(c), qwen_sparse_layers(c, n)
    ffns = [moe if s else Dense(c.int("intermediate_size")) for s in sparse]
    return _qwen_hybrid(c, name, ffns, None, ())


def qwen3_5_text(c: Cfg, name: str, top: Cfg | None = None, assumptions=()) -> ModelSpec:
    # modeling_qwen3_5.py: Qwen3-Next's mixers with a dense MLP on every layer
    return _qwen_hybrid(c, name, [Dense(c.int("intermediate_size"))] * c.int("num_hidden_layers"), top, assumptions)


def qwen3_5_moe_text(c: Cfg, name: str, top: Cfg | None = None, assumptions=()) -> ModelSpec:
    # modeling_qwen3_5_moe.py: Qwen3-Next's mixers with the gated-shared-expert MoE on every layer
    return _qwen_hybrid(c, name, [_qwen_moe(c)] * c.int("num_hidden_layers"), top, assumptions)


def bamba(c: Cfg, name: str) -> ModelSpec:
    """modeling_bamba.py: each layer is a Mamba-2 mixer or a LLaMA attention, then a gated MLP, with two RMSNorms
    (input_layernorm, pre_ff_layernorm). Attention layers are those in attn_layer_indices (BambaConfig
    layers_block_type). The mixer's width is mamba_expand x hidden_size over mamba_n_heads heads of mamba_d_head
    ("auto": that width / heads, BambaConfig.__post_init__); partial rotary changes no count."""
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    indices = set(c.int_list("attn_layer_indices", default=[]))
    if any(not 0 <= i < n for i in indices):
        raise c.bad("attn_layer_indices", f"layer indices below {n}", sorted(indices))
    heads = c.int("mamba_n_heads")
    expand = c.int("mamba_expand")
    inner = expand * h
    d_head = c.value("mamba_d_head")
    if d_head == "auto":
        d_head = inner // heads
    elif not isinstance(d_head, int) or isinstance(d_head, bool) or d_head < 1:
        raise c.bad("mamba_d_head", "a positive integer or \"auto\"", d_head)
    if heads * d_head != inner:  # the mixer's width is mamba_expand x hidden_size, whatever mamba_d_head says
        raise LlmplanError(f"{c.name}: mamba_n_heads x mamba_d_head ({heads} x {d_head}) must equal mamba_expand x "
                           f"hidden_size ({inner})")
    mamba = Mamba2(heads=heads, head_dim=d_head, state=c.int("mamba_d_state"), groups=c.int("mamba_n_groups"),
                   conv_kernel=c.int("mamba_d_conv"), bias=c.bool("mamba_proj_bias"),
                   conv_bias=c.bool("mamba_conv_bias"))
    attn = standard_attention(c, h)
    ffn = Dense(c.int("intermediate_size"), bias=c.bool("mlp_bias", default=False))
    layers: list[Layer] = [(attn if i in indices else mamba, ffn, 2) for i in range(n)]
    return decoder_spec(c, name, layers, hidden=h)


def falcon_h1(c: Cfg, name: str) -> ModelSpec:
    """modeling_falcon_h1.py: every layer runs a LLaMA attention and a Mamba-2 mixer in parallel on the same
    input_layernorm output, then a gated MLP after pre_ff_layernorm. The mixer's width is mamba_d_ssm (null:
    mamba_expand x hidden_size) over mamba_n_heads heads of mamba_d_head ("auto": width / heads); its gated RMSNorm
    exists only with mamba_rms_norm; in_proj is biased by mamba_proj_bias, out_proj by projectors_bias. The muP
    multipliers (mlp_, ssm_, attention_in/out_, key_, embedding_, lm_head_multiplier) scale activations only and
    mup_vector is a buffer: read by transformers, ignored here on purpose.

    A layer group holds one mixer, so each Falcon-H1 layer is described as two: its attention (with the input norm)
    and its Mamba-2 mixer with the MLP (and pre_ff_layernorm). Parameters, KV cache and state are exact; the layer
    count shown is twice num_hidden_layers, as the spec's assumptions say."""
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    heads = c.int("mamba_n_heads")
    inner = c.int("mamba_d_ssm", null=c.int("mamba_expand") * h)
    d_head = c.value("mamba_d_head")
    if d_head == "auto":
        d_head = inner // heads
    elif not isinstance(d_head, int) or isinstance(d_head, bool) or d_head < 1:
        raise c.bad("mamba_d_head", "a positive integer or \"auto\"", d_head)
    if heads * d_head != inner:
        raise LlmplanError(f"{c.name}: mamba_n_heads x mamba_d_head ({heads} x {d_head}) must equal the mixer's "
                           f"width mamba_d_ssm ({inner})")
    bias = c.bool("mamba_proj_bias")
    if c.bool("projectors_bias") != bias:  # one bias switch per mixer here
        raise LlmplanError(f"{c.name}: mamba_proj_bias and projectors_bias differ ({bias}, "
                           f"{c.bool('projectors_bias')}): not supported")
    mamba = Mamba2(heads=heads, head_dim=d_head, state=c.int("mamba_d_state"), groups=c.int("mamba_n_groups"),
                   conv_kernel=c.int("mamba_d_conv"), bias=bias, conv_bias=c.bool("mamba_conv_bias"),
                   gated_norm=c.bool("mamba_rms_norm"))
    attn = standard_attention(c, h)
    ffn = Dense(c.int("intermediate_size"), bias=c.bool("mlp_bias", default=False))
    layers: list[Layer] = [part for _ in range(n) for part in ((attn, None, 1), (mamba, ffn, 1))]
    note = (f"each of the {n} Falcon-H1 layers runs attention and Mamba-2 in parallel; described as two layers "
            f"(attention; Mamba-2 with the MLP), so {2 * n} layers are shown")
    return decoder_spec(c, name, layers, hidden=h, assumptions=(note,))
