"""Readers of the model types llmplan read before per-layer descriptions: GPT-2, GPT-NeoX, OPT, BLOOM, Falcon, T5,
BERT and RoBERTa (one block repeated; the flat ModelSpec fields)."""

from __future__ import annotations

from llmplan.errors import LlmplanError
from llmplan.models.hf_common import SOURCE
from llmplan.models.spec import ModelSpec


def _get(c: dict, *keys: str, default=KeyError):
    """The first of `keys` present (configs name the same field differently: n_embd, hidden_size, ...)."""
    for key in keys:
        if key in c and c[key] is not None:
            return c[key]
    if default is KeyError:
        raise KeyError(" or ".join(keys))
    return default


def _gpt2(c: dict, name: str) -> ModelSpec:
    h = _get(c, "n_embd", "hidden_size")
    return ModelSpec(
        name=name, arch="decoder", layers=_get(c, "n_layer", "num_hidden_layers"), hidden=h,
        heads=_get(c, "n_head", "num_attention_heads"), ffn=c.get("n_inner") or 4 * h, vocab=c["vocab_size"],
        context=_get(c, "n_positions", "max_position_embeddings", default=1024), position="learned",
        activation=c.get("activation_function", "gelu_new"), tied_embeddings=bool(c.get("tie_word_embeddings", True)),
        qkv_bias=True, out_bias=True, mlp_bias=True, source=SOURCE,
    )


def _gpt_neox(c: dict, name: str) -> ModelSpec:
    attention_bias = bool(c.get("attention_bias", True))
    return ModelSpec(
        name=name, arch="decoder", layers=c["num_hidden_layers"], hidden=c["hidden_size"],
        heads=c["num_attention_heads"], ffn=c["intermediate_size"], vocab=c["vocab_size"],
        context=c.get("max_position_embeddings") or 2048, position="rotary", activation=c.get("hidden_act", "gelu"),
        tied_embeddings=bool(c.get("tie_word_embeddings", False)), qkv_bias=attention_bias,
        out_bias=attention_bias, mlp_bias=True, parallel_layers=bool(c.get("use_parallel_residual", True)),
        source=SOURCE,
    )


def _opt(c: dict, name: str) -> ModelSpec:
    if c.get("layer_norm_elementwise_affine") is False:
        raise LlmplanError(f"{name}: OPT without LayerNorm weights (layer_norm_elementwise_affine false) is not "
                           "supported")
    h = c["hidden_size"]
    proj = c.get("word_embed_proj_dim") or h
    bias = bool(c.get("enable_bias", True))
    pre_norm = bool(c.get("do_layer_norm_before", True))
    return ModelSpec(
        name=name, arch="decoder", layers=c["num_hidden_layers"], hidden=h, heads=c["num_attention_heads"],
        ffn=c["ffn_dim"], vocab=c["vocab_size"], context=c.get("max_position_embeddings") or 2048,
        position="learned", position_offset=2,  # OPTLearnedPositionalEmbedding keeps 2 extra rows
        embed_dim=proj if proj != h else 0, activation=c.get("activation_function", "relu"),
        tied_embeddings=bool(c.get("tie_word_embeddings", True)), qkv_bias=bias, out_bias=bias, mlp_bias=bias,
        # the post-norm OPT-350m has no final LayerNorm
        final_norm=pre_norm and not c.get("_remove_final_layer_norm", False), source=SOURCE,
    )


def _bloom(c: dict, name: str) -> ModelSpec:
    h = _get(c, "hidden_size", "n_embed")
    return ModelSpec(
        name=name, arch="decoder", layers=_get(c, "n_layer", "num_hidden_layers"), hidden=h,
        heads=_get(c, "n_head", "num_attention_heads"), ffn=4 * h,  # BloomMLP is always 4h, whatever n_inner says
        vocab=c["vocab_size"], context=c.get("seq_length") or 2048, position="alibi", activation="gelu",
        tied_embeddings=bool(c.get("tie_word_embeddings", True)), qkv_bias=True, out_bias=True, mlp_bias=True,
        embedding_norm=True, source=SOURCE,
    )


def _falcon(c: dict, name: str) -> ModelSpec:
    """Falcon, both layouts: the 7B one (multi-query, one LayerNorm per parallel layer) and the
    new_decoder_architecture of 40B/180B (grouped KV, ln_attn and ln_mlp). Old RefinedWeb keys are accepted."""
    h = c["hidden_size"]
    heads = _get(c, "num_attention_heads", "n_head")
    new = bool(c.get("new_decoder_architecture", c.get("model_type") == "RefinedWeb"))
    multi_query = bool(c.get("multi_query", True))
    parallel = bool(c.get("parallel_attn", True))
    kv = _get(c, "num_kv_heads", "n_head_kv", default=heads)
    if not new and multi_query:
        kv = 1
    n_ln = c.get("num_ln_in_parallel_attn") or 2
    norms = 2 if new and n_ln == 2 else 1 + (0 if parallel else 1)
    bias = bool(c.get("bias", False))
    return ModelSpec(
        name=name, arch="decoder", layers=_get(c, "num_hidden_layers", "n_layer"), hidden=h, heads=heads,
        kv_heads=kv, ffn=c.get("ffn_hidden_size") or 4 * h, vocab=c["vocab_size"],
        context=c.get("max_position_embeddings") or 2048, position="alibi" if c.get("alibi") else "rotary",
        activation=c.get("activation", "gelu"), tied_embeddings=bool(c.get("tie_word_embeddings", True)),
        qkv_bias=bias, out_bias=bias, mlp_bias=bias, norms_per_layer=norms, parallel_layers=parallel or new,
        source=SOURCE,
    )


def _t5(c: dict, name: str) -> ModelSpec:
    """T5 (ReLU, tied) and T5 v1.1 / FLAN-T5 (feed_forward_proj "gated-gelu", untied head). RMSNorm without bias;
    no biases anywhere; attention width is num_heads x d_kv, which need not equal d_model."""
    proj = c.get("feed_forward_proj", "relu")
    gated = proj.startswith("gated-")
    layers = c["num_layers"]
    return ModelSpec(
        name=name, arch="encoder-decoder", layers=c.get("num_decoder_layers") or layers, encoder_layers=layers,
        hidden=c["d_model"], heads=c["num_heads"], head_dim=c["d_kv"], ffn=c["d_ff"], vocab=c["vocab_size"],
        context=c.get("n_positions") or 512, mlp="gated" if gated else "standard",
        activation=proj.removeprefix("gated-"), position="relative",
        relative_buckets=c.get("relative_attention_num_buckets") or 32,
        tied_embeddings=bool(c.get("tie_word_embeddings", True)), norm="rmsnorm", source=SOURCE,
    )


def _bert_like(c: dict, name: str, position_offset: int) -> ModelSpec:
    kind = c.get("position_embedding_type", "absolute")
    if kind != "absolute":
        raise LlmplanError(f"{name}: position_embedding_type {kind!r} is not supported; accepted: absolute")
    rows = c["max_position_embeddings"]
    return ModelSpec(
        name=name, arch="encoder", layers=c["num_hidden_layers"], hidden=c["hidden_size"],
        heads=c["num_attention_heads"], ffn=c["intermediate_size"], vocab=c["vocab_size"],
        context=rows - position_offset, position_offset=position_offset, position="learned",
        type_vocab=c.get("type_vocab_size", 2), activation=c.get("hidden_act", "gelu"), qkv_bias=True,
        out_bias=True, mlp_bias=True, embedding_norm=True, final_norm=False, pooler=True, source=SOURCE,
    )


def _bert(c: dict, name: str) -> ModelSpec:
    return _bert_like(c, name, position_offset=0)


def _roberta(c: dict, name: str) -> ModelSpec:
    # RoBERTa numbers positions from padding_idx + 1: max_position_embeddings (514) already holds those rows
    return _bert_like(c, name, position_offset=(c.get("pad_token_id", 1) or 0) + 1)
