"""Reader of DeepSeek-V4 (model_type deepseek_v4; transformers 5.24 configuration_ and modeling_deepseek_v4.py).

Every layer: compressed attention (llmplan.models.layers_v4.CompressedAttention: sliding-window shared-KV MQA with
sinks, a low-rank query, a grouped output projection, and for CSA / HCA layers a compressor), a MoE block with
n_routed_experts routed experts and one shared expert of moe_intermediate_size, two RMSNorms, and two hyper-
connections (hc_mult streams); the model ends with the streams' collapse (hc_head) and a norm.

The layer kinds come as transformers' DeepseekV4Config.__post_init__ derives them: `layer_types`, else the released
configs' `compress_ratios` (0 sliding, 4 CSA, 128 HCA; the entries past num_hidden_layers are the MTP layers'),
else two HCA layers then HCA and CSA alternating. Compression rates: `compress_rates`, overridden by the legacy
`compress_rate_csa` / `compress_rate_hca`, default 4 and 128. Hash-routed layers (`mlp_layer_types` hash_moe, else the
first `num_hash_layers`, default 3) pick experts by token id from a buffer (tid2eid): their parameters and active
count equal a learned router's, so both are the same MoE here.

Read for the bench only: partial_rotary_factor / qk_rope_head_dim (the rotary slice of each head). Read and ignored
on purpose (they change no count): rope_theta, compress_rope_theta, rope_scaling, hc_sinkhorn_iters, hc_eps,
swiglu_limit, scoring_func, routed_scaling_factor, norm_topk_prob, topk_method, and attention_bias
(DeepseekV4Attention builds no biases).
"""

from __future__ import annotations

from dataclasses import replace

from llmplan.errors import LlmplanError
from llmplan.models.hf_build import decoder_spec, experts_count
from llmplan.models.hf_common import Cfg, window
from llmplan.models.layers import LayerGroup, MoE
from llmplan.models.layers_v4 import CompressedAttention
from llmplan.models.spec import ModelSpec
from llmplan.models.weight_format import WeightFormat

KINDS = {"sliding_attention": "sliding", "compressed_sparse_attention": "csa", "heavily_compressed_attention": "hca"}
LEGACY_RATIOS = {0: "sliding", 4: "csa", 128: "hca"}  # configuration_deepseek_v4.py _COMPRESS_RATIO_TO_LAYER_TYPE
MLP_KINDS = ("hash_moe", "moe")


def _kinds(c: Cfg, n: int) -> tuple[list[str], str | None, list[str]]:
    """(kind of each layer, kind of the MTP layer if the config says, notes)."""
    notes: list[str] = []
    if c.has("layer_types"):
        types = c.str_list("layer_types")
        key, values = "layer_types", types
        unknown = sorted(set(types) - set(KINDS))
        if unknown:
            raise LlmplanError(f"{c.name}: layer_types holds {', '.join(map(repr, unknown))}; accepted: "
                               f"{', '.join(KINDS)}")
        kinds = [KINDS[t] for t in types]
    elif c.has("compress_ratios"):
        ratios = c.int_list("compress_ratios")
        key, values = "compress_ratios", ratios
        bad = sorted(set(ratios) - set(LEGACY_RATIOS))
        if bad:
            raise c.bad("compress_ratios", "a list of 0 (sliding), 4 (CSA) and 128 (HCA) per layer", bad)
        kinds = [LEGACY_RATIOS[r] for r in ratios]
    else:  # DeepseekV4Config.__post_init__: 2 x HCA, then HCA and CSA alternating
        return ["hca"] * min(n, 2) + ["csa" if i % 2 else "hca" for i in range(max(n - 2, 0))], None, notes
    if len(kinds) < n:
        raise LlmplanError(f"{c.name}: {c.key(key)} lists {len(values)} layers, but the model has {n} "
                           "(num_hidden_layers)")
    if len(kinds) > n:
        notes.append(f"{key} lists {len(kinds)} entries for {n} layers: the first {n} are the model's (as "
                     "transformers reads them), the next the multi-token-prediction layer's")
    return kinds[:n], kinds[n] if len(kinds) > n else None, notes


def _rates(c: Cfg) -> dict[str, int]:
    rates = {"csa": 4, "hca": 128}  # DeepseekV4Config.default_compress_rates
    raw = c.value("compress_rates", None)
    if raw is not None:
        if not isinstance(raw, dict) or set(raw) - {"compressed_sparse_attention", "heavily_compressed_attention"}:
            raise c.bad("compress_rates", "an object with compressed_sparse_attention and/or "
                        "heavily_compressed_attention rates", raw)
        sub = Cfg(raw, "", c.name, prefix=c.key("compress_rates."))
        for hf, ours in (("compressed_sparse_attention", "csa"), ("heavily_compressed_attention", "hca")):
            if hf in raw:
                rates[ours] = sub.int(hf)
    for key, ours in (("compress_rate_csa", "csa"), ("compress_rate_hca", "hca")):  # legacy top-level overrides
        if c.has(key):
            rates[ours] = c.int(key)
    return rates


def _mlp_hash(c: Cfg, n: int) -> int:
    """Hash-routed layers (counted like learned-routed ones): checked, returned for the note."""
    if c.has("mlp_layer_types"):
        types = c.str_list("mlp_layer_types")
        unknown = sorted(set(types) - set(MLP_KINDS))
        if unknown or len(types) < n:
            raise c.bad("mlp_layer_types", f"a list of {n} entries, each hash_moe or moe", types)
        return sum(t == "hash_moe" for t in types[:n])
    return min(n, c.int("num_hash_layers", default=3, minimum=0))


def _weight_format(c: Cfg) -> tuple[WeightFormat | None, str | None]:
    """expert_dtype fp4 (DeepSeek-V4-Flash / Pro): the routed experts are MXFP4 (4-bit values, one 8-bit scale per
    32, as the checkpoints' w1/w2/w3 .scale tensors hold); the fp8 block-scaled rest is taken at --dtype."""
    dtype = c.value("expert_dtype", None)
    if dtype is None or c.raw.get("quantization_config") is None:
        return None, None
    if dtype == "fp4":
        return (WeightFormat("mxfp4", 4, 32, 1.0, applies_to="experts"),
                "expert_dtype fp4: the routed experts are stored MXFP4; the checkpoint's fp8 block-scaled attention "
                "and shared-expert weights are taken at --dtype")
    if dtype == "fp8":
        return None, None  # every linear fp8 block-scaled: quantization_config as for DeepSeek-V3
    raise c.bad("expert_dtype", "fp4 or fp8", dtype)


def _rope_dim(c: Cfg, head_dim: int) -> int:
    """The rotary channels of each head: head_dim x partial_rotary_factor, else the legacy qk_rope_head_dim, else
    64 / 512 of head_dim (DeepseekV4Config.__post_init__)."""
    factor = c.value("partial_rotary_factor", None)
    if factor is None:
        return c.int("qk_rope_head_dim") if c.has("qk_rope_head_dim") else int(head_dim * 64 / 512)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 <= factor <= 1:
        raise c.bad("partial_rotary_factor", "a number from 0 to 1", factor)
    return int(head_dim * factor)


def deepseek_v4(c: Cfg, name: str) -> ModelSpec:
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    context = c.int("max_position_embeddings")
    if c.int("num_key_value_heads", default=1) != 1:
        raise c.bad("num_key_value_heads", "1 (DeepSeek-V4 attention has one shared key/value head)",
                    c.raw["num_key_value_heads"])
    if c.int("n_shared_experts", default=1) != 1:  # DeepseekV4SparseMoeBlock: exactly one DeepseekV4MLP
        raise LlmplanError(f"{c.name}: n_shared_experts {c.raw['n_shared_experts']} is not supported: transformers "
                           "builds one shared expert of moe_intermediate_size whatever it says, so the make-up is "
                           "ambiguous")
    kinds, mtp_kind, notes = _kinds(c, n)
    rates = _rates(c)
    heads = c.int("num_attention_heads")
    head_dim = c.int("head_dim")
    base = dict(heads=heads, kv_heads=1, head_dim=head_dim, qk_rope_head_dim=_rope_dim(c, head_dim), kind="sliding",
                window=window(c, context),
                k_eq_v=True, sinks=True, q_lora_rank=c.int("q_lora_rank"), o_groups=c.int("o_groups"),
                o_lora_rank=c.int("o_lora_rank"))
    index = dict(index_heads=c.int("index_n_heads"), index_head_dim=c.int("index_head_dim"),
                 index_topk=c.int("index_topk"))

    def attention(kind: str) -> CompressedAttention:
        if kind == "sliding":
            return CompressedAttention(**base)
        return CompressedAttention(**base, compress_ratio=rates[kind], **(index if kind == "csa" else {}))

    moe = MoE(experts_count(c, "n_routed_experts"), c.int("num_experts_per_tok"), c.int("moe_intermediate_size"),
              shared_ffn=c.int("moe_intermediate_size"), shared_bias=c.bool("mlp_bias", default=False))
    hashed = _mlp_hash(c, n)
    if hashed:
        notes.append(f"{hashed} hash-routed MoE layers (experts chosen by token id) count as learned-routed ones")
    hc = c.int("hc_mult")
    fmt, fmt_note = _weight_format(c)
    if fmt_note:
        notes.append(fmt_note)
    mtp = c.int("num_nextn_predict_layers", default=0, minimum=0)
    if mtp and mtp_kind is None:
        mtp_kind = "sliding"
        notes.append("the MTP layer's attention kind is not given (compress_ratios past num_hidden_layers): taken "
                     "as sliding, as both released checkpoints have it")
    spec = decoder_spec(c, name, [(attention(k), moe, 2) for k in kinds], hidden=h, tied_default=False,
                        mtp_layers=mtp, assumptions=tuple(notes))
    mtp_layer = LayerGroup(1, attention(mtp_kind), moe, 2, hyper=hc) if mtp else None
    out = spec.with_(groups=tuple(replace(g, hyper=hc) for g in spec.layer_groups), mtp_layer=mtp_layer)
    return out.with_(weight_format=fmt) if fmt else out
