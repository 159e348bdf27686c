"""Assembling a decoder spec from per-layer parts, and the weight format a config's quantization_config states."""

from __future__ import annotations

from llmplan.errors import LlmplanError
from llmplan.models.hf_common import SOURCE, Cfg
from llmplan.models.layers import FFN, Attention, Dense, Mixer, MoE, merge_runs
from llmplan.models.spec import ModelSpec
from llmplan.models.weight_format import WeightFormat

Layer = tuple[Mixer | None, FFN | None, int]


def decoder_spec(c: Cfg, name: str, layers: list[Layer], *, hidden: int, tied_default: bool | None = None,
                 norm: str = "rmsnorm", norm_bias: bool | None = None, activation_key: str = "hidden_act",
                 mtp_layers: int = 0, lm_head_bias: bool = False, assumptions: tuple[str, ...] = (),
                 top: Cfg | None = None, context_key: str = "max_position_embeddings") -> ModelSpec:
    """A decoder-only ModelSpec whose stack is `layers` (mixer, ffn, norms) in order, merged into groups."""
    groups = merge_runs(layers)
    key = "tie_word_embeddings"  # the wrapper's when it says, or when the text config class has no default for it
    tied_cfg = top if top is not None and (top.has(key) or not (c.has(key) or key in c.defaults)) else c
    tied = (tied_cfg.bool("tie_word_embeddings") if tied_default is None
            else tied_cfg.bool("tie_word_embeddings", default=tied_default))
    first_attn = next((g.attention for g in groups if g.attention), None)
    first_ffn = next((g.ffn for g in groups if g.ffn is not None), None)
    notes = list(assumptions)
    defaulted = sorted(set(c.defaulted) & _SHAPE_KEYS)
    if defaulted and c.defaults_source:
        notes.append(f"keys absent from {c.prefix.rstrip('.') or 'config.json'} take the defaults of transformers "
                     f"{c.defaults_source}: {', '.join(defaulted)}")
    holder = top if top is not None and top.raw.get("quantization_config") is not None else c
    source = holder.raw.get("quantization_config")
    fmt = weight_format(holder, source) if source is not None else None
    if source is not None and fmt is None:
        method = source.get("quant_method") if isinstance(source, dict) else source
        notes.append(f"quantization_config method {method!r} is not read: weights are taken at the --dtype given")
    spec = ModelSpec.from_groups(
        groups=groups, name=name, arch="decoder", hidden=hidden, vocab=c.int("vocab_size"),
        context=c.int(context_key), position="rotary" if first_attn is None or first_attn.rope else "none",
        norm=norm, norm_bias=norm_bias, tied_embeddings=tied, lm_head_bias=lm_head_bias,
        activation=_activation(c, activation_key), norms_per_layer=groups[0].norms,
        mlp_bias=bool(getattr(first_ffn, "bias", False)), mtp_layers=mtp_layers, weight_format=fmt, source=SOURCE,
        assumptions=tuple(notes))
    flat = spec.with_(groups=())
    # one block repeated, which the flat fields describe exactly: kept flat, as before per-layer descriptions
    return flat if flat.layer_groups == spec.groups else spec


_SHAPE_KEYS = {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "head_dim", "tie_word_embeddings", "moe_intermediate_size", "num_experts",
               "num_local_experts", "n_routed_experts", "num_experts_per_tok", "sliding_window", "attention_bias",
               "intermediate_size_mlp", "attention_chunk_size", "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim",
               "qk_nope_head_dim", "v_head_dim", "n_shared_experts", "shared_expert_intermediate_size",
               "max_position_embeddings", "linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim",
               "linear_value_head_dim", "first_k_dense_replace"}


def _activation(c: Cfg, key: str) -> str:
    for k in (key, "hidden_activation", "hidden_act", "mlp_hidden_act"):
        v = c.value(k, None)
        if isinstance(v, str):
            return v
    return "silu"


def dense_or_moe(c: Cfg, *, moe: bool, hidden: int, dense_ffn_key: str = "intermediate_size", **moe_fields) -> FFN:
    if moe:
        return MoE(**moe_fields)
    return Dense(c.int(dense_ffn_key))


def experts_count(c: Cfg, key: str) -> int:
    """Routed experts: a MoE reader needs at least 2 (0 or 1 is not 'dense' in these model types)."""
    return c.int(key, minimum=2)


# quantization_config -> WeightFormat ----------------------------------------------------------------------------
def weight_format(c: Cfg, q) -> WeightFormat | None:
    """The stored format of a released checkpoint (quantization_config); None for a method not described here.

    fp8 with weight_block_size [128, 128] (DeepSeek-V3): one float32 scale (weight_scale_inv) per 128 x 128 block.
    mxfp4 (gpt-oss): 4-bit E2M1 values with one 8-bit E8M0 scale per 32 (OCP MX v1.0 section 5), on the MoE experts
    only (modules_to_not_convert keeps attention, router, embeddings and head in bf16).
    awq / gptq int4: per group of `group_size` values an fp16 scale and a packed 4-bit zero point (2.5 bytes).
    """
    if not isinstance(q, dict):
        raise LlmplanError(f"{c.name}: quantization_config must be a JSON object")
    method = q.get("quant_method")
    if method == "fp8":
        block = q.get("weight_block_size")
        if block is None:
            return WeightFormat("fp8", 8, 1 << 40, 4.0)  # one scale per tensor: negligible
        if (not isinstance(block, list) or len(block) != 2
                or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in block)):
            raise LlmplanError(f"{c.name}: quantization_config.weight_block_size must be two positive integers, "
                               f"got {block!r}")
        return WeightFormat("fp8", 8, block[0] * block[1], 4.0)
    if method == "mxfp4":
        return WeightFormat("mxfp4", 4, 32, 1.0, applies_to="experts")
    if method == "compressed-tensors":
        return _compressed_tensors(c, q)
    if method in ("awq", "gptq"):
        qc = Cfg(q, "", c.name, prefix="quantization_config.")
        bits = qc.int("bits", default=4)
        group = qc.int("group_size", default=128, minimum=-1)
        if bits not in (2, 3, 4, 8) or group == 0:
            raise LlmplanError(f"{c.name}: quantization_config bits must be 2, 3, 4 or 8 and group_size positive "
                               f"or -1, got bits {bits}, group_size {group}")
        if group == -1:  # one scale per output row: per hidden-size group of inputs
            group = c.int("hidden_size")
        return WeightFormat(method, bits, group, 2.0 + bits / 8)
    return None


def _compressed_tensors(c: Cfg, q: dict) -> WeightFormat | None:
    """compressed-tensors "pack-quantized" integer weights (Kimi K2 Thinking / K2.5): num_bits per weight and one
    bf16 scale per group_size (symmetric: no zero point). Applies to the routed experts when the ignore list keeps
    attention and the shared experts out, else to every linear layer. Other schemes are not read."""
    groups = q.get("config_groups")
    if not isinstance(groups, dict) or len(groups) != 1:
        return None
    weights = next(iter(groups.values())).get("weights") if isinstance(next(iter(groups.values())), dict) else None
    if not isinstance(weights, dict) or weights.get("type") != "int" or weights.get("strategy") != "group":
        return None
    wc = Cfg(weights, "", c.name, prefix="quantization_config.config_groups.weights.")
    bits, group = wc.int("num_bits"), wc.int("group_size")
    if bits not in (2, 3, 4, 8):
        raise LlmplanError(f"{c.name}: quantization_config num_bits must be 2, 3, 4 or 8, got {bits}")
    ignore = " ".join(str(x) for x in q.get("ignore") or [])
    experts_only = "self_attn" in ignore and "shared_experts" in ignore
    zero = 0 if weights.get("symmetric", True) else bits / 8
    return WeightFormat(f"int{bits} (compressed-tensors)", bits, group, 2.0 + zero,
                        applies_to="experts" if experts_only else "linear")


def rope_layers(attention: Attention, rope: bool) -> Attention:
    from dataclasses import replace

    return attention if attention.rope == rope else replace(attention, rope=rope)
