"""Readers of the encoder and encoder-decoder families users still fine-tune: ModernBERT, DeBERTa-v2/v3, BART, mT5 and
UMT5 (module shapes of transformers 5.24: ModernBertModel, DebertaV2Model, BartForConditionalGeneration; mT5 and
UMT5 as T5 v1.1, with the separate output head their checkpoints hold, as transformers 4.x builds it)."""

from __future__ import annotations

from llmplan.errors import LlmplanError
from llmplan.models.hf_common import SOURCE, Cfg, layer_kinds
from llmplan.models.layers import Attention, Dense, LayerGroup
from llmplan.models.spec import ModelSpec


def modernbert(c: Cfg, name: str) -> ModelSpec:
    """modeling_modernbert.py: fused Wqkv and Wo, GeGLU Wi (h -> 2 x intermediate) and Wo, LayerNorms with
    `norm_bias`; the first layer has no attention norm (nn.Identity); an embedding norm and a final norm; rotary
    positions; every global_attn_every_n_layers-th layer global, the others attend within local_attention tokens."""
    h, n = c.int("hidden_size"), c.int("num_hidden_layers")
    heads, context = c.int("num_attention_heads"), c.int("max_position_embeddings")
    if h % heads:
        raise LlmplanError(f"{name}: hidden_size {h} is not divisible by {heads} heads")
    bias = c.bool("attention_bias")
    full = Attention(heads=heads, kv_heads=heads, head_dim=h // heads, qkv_bias=bias, out_bias=bias)
    window = c.int("local_attention")
    if window > context:
        raise LlmplanError(f"{name}: local_attention ({window:,}) exceeds the context ({context:,})")
    local = Attention(heads=heads, kv_heads=heads, head_dim=h // heads, qkv_bias=bias, out_bias=bias,
                      kind="sliding", window=window)
    kinds = layer_kinds(c, n, {"full_attention": "full", "sliding_attention": "sliding"})
    if kinds is None:
        every = c.int("global_attn_every_n_layers", default=3)
        kinds = ["full" if i % every == 0 else "sliding" for i in range(n)]
    ffn = Dense(c.int("intermediate_size"), gated=True, bias=c.bool("mlp_bias"))
    groups = []
    for i, kind in enumerate(kinds):
        g = LayerGroup(1, full if kind == "full" else local, ffn, 1 if i == 0 else 2)
        if groups and (groups[-1].mixer, groups[-1].norms) == (g.mixer, g.norms):
            groups[-1] = LayerGroup(groups[-1].count + 1, g.mixer, ffn, g.norms)
        else:
            groups.append(g)
    return ModelSpec.from_groups(
        groups=tuple(groups), name=name, arch="encoder", hidden=h, vocab=c.int("vocab_size"), context=context,
        position="rotary", norm="layernorm", norm_bias=c.bool("norm_bias"), embedding_norm=True, final_norm=True,
        tied_embeddings=True, activation=c.str("hidden_activation", "gelu"), norms_per_layer=2, source=SOURCE,
        assumptions=("counted as ModernBertModel (no masked-LM head)",))


def deberta_v2(c: Cfg, name: str) -> ModelSpec:
    """modeling_deberta_v2.py (DeBERTa-v2 and v3): BERT-style post-norm layers with biases; absolute positions only
    with position_biased_input; the relative-position table rel_embeddings (2 x position_buckets rows, else 2 x
    max_relative_positions, else 2 x max_position_embeddings) and its LayerNorm (norm_rel_ebd "layer_norm"); no
    pooler in DebertaV2Model."""
    h = c.int("hidden_size")
    if c.int("embedding_size", default=h) != h:
        raise LlmplanError(f"{name}: DeBERTa with embedding_size != hidden_size (embed_proj) is not supported")
    if c.int("conv_kernel_size", default=0, minimum=0):
        raise LlmplanError(f"{name}: DeBERTa's convolution layer (conv_kernel_size) is not supported")
    relative = c.bool("relative_attention", default=False)
    rows, norm = 0, False
    if relative:
        if not c.bool("share_att_key", default=False):
            raise LlmplanError(f"{name}: DeBERTa without share_att_key (separate position projections) is not "
                               "supported")
        buckets = c.int("position_buckets", default=-1, minimum=-1)
        span = c.int("max_relative_positions", default=-1, minimum=-1)
        rows = 2 * (buckets if buckets > 0 else span if span >= 1 else c.int("max_position_embeddings"))
        norm = "layer_norm" in str(c.value("norm_rel_ebd", "none")).lower().split("|")
    learned = c.bool("position_biased_input", default=True)
    return ModelSpec(
        name=name, arch="encoder", layers=c.int("num_hidden_layers"), hidden=h, heads=c.int("num_attention_heads"),
        ffn=c.int("intermediate_size"), vocab=c.int("vocab_size"), context=c.int("max_position_embeddings"),
        position="learned" if learned else "relative", type_vocab=c.int("type_vocab_size", default=0, minimum=0),
        activation=c.str("hidden_act", "gelu"), qkv_bias=True, out_bias=True, mlp_bias=True, embedding_norm=True,
        final_norm=False, relative_embeddings=rows, relative_embedding_norm=norm, source=SOURCE,
        assumptions=("counted as DebertaV2Model (no pooler, no masked-LM head)",))


def bart(c: Cfg, name: str) -> ModelSpec:
    """modeling_bart.py: post-norm encoder-decoder with biases everywhere, learned positions of
    max_position_embeddings + 2 rows and a LayerNorm after the embeddings in each stack, the embedding shared by
    both stacks and the head; no final norm."""
    heads, ffn = c.int("encoder_attention_heads"), c.int("encoder_ffn_dim")
    if c.int("decoder_attention_heads") != heads or c.int("decoder_ffn_dim") != ffn:
        raise LlmplanError(f"{name}: encoder and decoder of different widths (heads or ffn_dim) are not supported")
    return ModelSpec(
        name=name, arch="encoder-decoder", layers=c.int("decoder_layers"), encoder_layers=c.int("encoder_layers"),
        hidden=c.int("d_model"), heads=heads, ffn=ffn, vocab=c.int("vocab_size"),
        context=c.int("max_position_embeddings"), position="learned", position_offset=2,
        activation=c.str("activation_function", "gelu"), tied_embeddings=c.bool("tie_word_embeddings", True),
        qkv_bias=True, out_bias=True, mlp_bias=True, embedding_norm=True, final_norm=False, source=SOURCE)


def t5_like(c: Cfg, name: str, per_layer: bool) -> ModelSpec:
    """mT5 / UMT5 (modeling_mt5.py, modeling_umt5.py): T5 v1.1 blocks; UMT5 keeps a relative position bias in every
    layer. The checkpoints hold a separate output head (tie_word_embeddings false), as transformers 4.x builds it."""
    proj = c.str("feed_forward_proj", "gated-gelu")
    layers = c.int("num_layers")
    return ModelSpec(
        name=name, arch="encoder-decoder", layers=c.int("num_decoder_layers", null=layers), encoder_layers=layers,
        hidden=c.int("d_model"), heads=c.int("num_heads"), head_dim=c.int("d_kv"), ffn=c.int("d_ff"),
        vocab=c.int("vocab_size"), context=c.int("n_positions", default=512),
        mlp="gated" if proj.startswith("gated-") else "standard", activation=proj.removeprefix("gated-"),
        position="relative", relative_buckets=c.int("relative_attention_num_buckets", default=32),
        relative_per_layer=per_layer, tied_embeddings=c.bool("tie_word_embeddings", default=False),
        norm="rmsnorm", source=SOURCE)


def mt5(c: Cfg, name: str) -> ModelSpec:
    return t5_like(c, name, per_layer=False)


def umt5(c: Cfg, name: str) -> ModelSpec:
    return t5_like(c, name, per_layer=True)
