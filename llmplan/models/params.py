"""Exact parameter counts from a ModelSpec, with a breakdown.

Each weight matrix is counted as the reference implementations (Hugging Face transformers, Megatron) allocate it:
a linear layer d_in -> d_out holds d_in * d_out weights plus d_out biases when it has a bias. The totals equal what
`transformers` instantiates for the same config (checked in tests/models against real config files).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.models.layers import Attention, LayerGroup, linear
from llmplan.models.layers_v4 import hyper_head_params
from llmplan.models.spec import ModelSpec


@dataclass(frozen=True)
class ParamBreakdown:
    embeddings: int      # token, position and token-type embeddings (and OPT's in/out projections)
    attention: int       # self- and cross-attention projections (and their q/k norms, sinks), T5's position bias
    mlp: int             # feed-forward matrices of all experts, shared experts, MoE routers
    norms: int           # every LayerNorm / RMSNorm between components
    output_head: int     # untied output projection (0 when tied to the input embedding)
    other: int           # BERT pooler
    active: int          # parameters that act on one token (MoE: only the routed experts)
    recurrent: int = 0   # Mamba-2 and Gated DeltaNet mixers
    mtp: int = 0         # multi-token-prediction modules, apart from the total (transformers does not build them)
    hyper: int = 0       # hyper-connections of the layers and the final stream collapse (DeepSeek-V4)

    @property
    def total(self) -> int:
        return (self.embeddings + self.attention + self.recurrent + self.mlp + self.norms + self.output_head
                + self.other + self.hyper)

    @property
    def total_with_mtp(self) -> int:
        return self.total + self.mtp

    @property
    def non_embedding(self) -> int:
        """Total less the input embeddings and output head (Kaplan et al. 2020's N)."""
        return self.total - self.embeddings - self.output_head

    def as_dict(self) -> dict[str, int]:
        out = {
            "embeddings": self.embeddings,
            "attention": self.attention,
            "recurrent": self.recurrent,
            "mlp": self.mlp,
            "norms": self.norms,
            "output_head": self.output_head,
            "other": self.other,
        }
        return {**out, "hyper_connections": self.hyper} if self.hyper else out


def norm_params(spec: ModelSpec) -> int:
    """One LayerNorm holds weight and bias (2h); one RMSNorm weight only (h)."""
    return spec.hidden * (2 if spec.has_norm_bias else 1)


def attention_params(spec: ModelSpec) -> int:
    """Q, K, V and output projections of one attention block (self or cross: the same shapes)."""
    h = spec.hidden
    return (
        linear(h, spec.q_dim, spec.qkv_bias)
        + 2 * linear(h, spec.kv_dim, spec.qkv_bias)
        + linear(spec.q_dim, h, spec.out_bias)
    )


def expert_mlp_params(spec: ModelSpec) -> int:
    """One feed-forward network: up and down (standard), or gate, up and down (gated)."""
    h, f = spec.hidden, spec.ffn
    n_in = 2 if spec.mlp == "gated" else 1
    return n_in * linear(h, f, spec.mlp_bias) + linear(f, h, spec.mlp_bias)


def mlp_params(spec: ModelSpec) -> int:
    """All experts of one layer, plus the router (a bias-free h x experts linear) for MoE."""
    router = spec.hidden * spec.experts if spec.is_moe else 0
    return spec.experts * expert_mlp_params(spec) + router


def layer_params(spec: ModelSpec, cross_attention: bool = False) -> int:
    """One transformer layer: attention (+ cross-attention), MLP and its norms."""
    n_norms = spec.norms_per_layer + (1 if cross_attention else 0)
    attn = attention_params(spec) * (2 if cross_attention else 1)
    return attn + mlp_params(spec) + n_norms * norm_params(spec)


def count_params(spec: ModelSpec) -> ParamBreakdown:
    """Exact parameter count of `spec`, split by component."""
    h, v = spec.hidden, spec.vocab
    e = spec.embed_dim or h

    # an encoder-decoder with learned positions keeps a position table and an embedding norm per stack (BART)
    per_stack = 2 if spec.arch == "encoder-decoder" else 1
    embeddings = v * e
    if spec.embed_dim and spec.embed_dim != h:
        embeddings += 2 * e * h  # OPT-350m: project_in and project_out, no bias
    if spec.position == "learned":
        embeddings += per_stack * (spec.context + spec.position_offset) * h
    embeddings += spec.type_vocab * h
    embeddings += spec.relative_embeddings * h  # DeBERTa rel_embeddings
    ple = spec.per_layer_input * spec.layers    # Gemma 4 per-layer embeddings: one table of layers x width per token
    embeddings += spec.per_layer_vocab * ple

    attention = mlp = norms = recurrent = inactive = hyper = 0
    if spec.arch == "encoder-decoder":
        for n_layers, cross in ((spec.layers, True), (spec.encoder_layers, False)):  # (layers, cross-attention)
            attention += n_layers * attention_params(spec) * (2 if cross else 1)
            mlp += n_layers * mlp_params(spec)
            norms += n_layers * (spec.norms_per_layer + (1 if cross else 0)) * norm_params(spec)
        inactive = spec.total_layers * (spec.experts - spec.experts_per_token) * expert_mlp_params(spec)
        stacks = 2
    else:
        for g in spec.layer_groups:
            if isinstance(g.mixer, Attention):
                attention += g.count * g.mixer.params(h)
            elif g.mixer is not None:
                recurrent += g.count * g.mixer.params(h)
            if g.ffn is not None:
                mlp += g.count * g.ffn.params(h)
                inactive += g.count * (g.ffn.params(h) - g.ffn.active_params(h))
            norms += g.count * g.norms * norm_params(spec)
            hyper += g.count * g.hyper_params(h)
        hyper += hyper_head(spec)
        stacks = 1
    if spec.final_norm:
        norms += stacks * norm_params(spec)
    if spec.relative_buckets:  # T5: in the first layer of each stack; UMT5: in every layer
        attention += (spec.total_layers if spec.relative_per_layer else stacks) * spec.relative_buckets * spec.heads
    if spec.embedding_norm:  # a norm right after the embeddings (BERT, BLOOM; each stack of BART)
        norms += per_stack * norm_params(spec)
    if spec.relative_embedding_norm:
        norms += norm_params(spec)

    output_head = 0 if spec.tied_embeddings else linear(e, v, spec.lm_head_bias)
    if spec.tied_embeddings and spec.lm_head_bias:
        output_head = v  # a bias on a tied head is still its own parameter
    other = linear(h, h, True) if spec.pooler else 0
    if ple:  # Gemma4TextModel per_layer_model_projection and its norm; each layer's input gate and projection
        other += h * ple + 2 * h * ple
        norms += spec.per_layer_input

    mtp = spec.mtp_layers * mtp_module_params(spec)
    exact = ParamBreakdown(embeddings, attention, mlp, norms, output_head, other, 0, recurrent, mtp, hyper)
    result = ParamBreakdown(embeddings, attention, mlp, norms, output_head, other, exact.total - inactive,
                            recurrent, mtp, hyper)
    if spec.param_count is not None:
        return _rescaled(result, spec.param_count)
    return result


def hyper_head(spec: ModelSpec) -> int:
    """The collapse of the residual streams before the final norm of a model with hyper-connections."""
    streams = max((g.hyper for g in spec.layer_groups), default=0)
    return hyper_head_params(streams, spec.hidden) if streams else 0


def mtp_module_params(spec: ModelSpec) -> int:
    """One multi-token-prediction module as DeepSeek-V3 releases it (Liu et al. 2024, DeepSeek-V3 technical report,
    section 2.2; the checkpoint's layer 61): enorm and hnorm, the 2h -> h projection eh_proj, one layer of the
    model's last kind, the shared head's norm, and its own copies of the embedding and output head.

    With `spec.mtp_layer` (DeepSeek-V4, the checkpoint's mtp.0): that layer (its hyper-connections included),
    e_proj and h_proj (h x h each), enorm, hnorm and norm, and its own hc_head; the embedding and output head are
    the model's, not copied."""
    h = spec.hidden
    if spec.mtp_layer is not None:
        layer = spec.mtp_layer.params(h, norm_params(spec))
        streams = spec.mtp_layer.hyper
        return layer + 3 * norm_params(spec) + 2 * h * h + (hyper_head_params(streams, h) if streams else 0)
    last = spec.layer_groups[-1]
    layer = LayerGroup(1, last.mixer, last.ffn, last.norms).params(h, norm_params(spec))
    return layer + 3 * norm_params(spec) + 2 * h * h + 2 * spec.vocab * h


def active_mlp_params(spec: ModelSpec) -> int:
    """Feed-forward parameters one token uses, over all layers (MoE: top_k routed experts, shared, router)."""
    return sum(g.count * g.ffn.active_params(spec.hidden) for g in spec.layer_groups if g.ffn is not None)


def _rescaled(b: ParamBreakdown, total: int) -> ParamBreakdown:
    """For a model given only by its count: keep the shape's embeddings and head, give the rest to the layers in
    the shape's proportions, so that the total is exactly the count the user stated."""
    fixed = b.embeddings + b.output_head + b.other
    body = b.attention + b.mlp + b.norms
    room = max(total - fixed, 0)
    attention = round(b.attention * room / body)
    norms = round(b.norms * room / body)
    mlp = room - attention - norms
    scale = total / b.total
    return ParamBreakdown(b.embeddings, attention, mlp, norms, b.output_head, b.other,
                         active=min(round(b.active * scale), total), recurrent=0, mtp=0)
