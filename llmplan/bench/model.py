"""A decoder-only transformer built exactly from a ModelSpec, so that what the bench measures is what the planner
predicts: sum(p.numel()) equals count_params(spec) for the layers built.

Every structural choice of the spec is honoured, layer group by layer group (llmplan.models.layers): learned/rotary/
ALiBi/relative/sinusoidal positions, LayerNorm or RMSNorm (with or without bias), multi-head/grouped-query/
multi-query attention with any head_dim and value width, full, sliding-window and chunked attention (a band or
chunk mask), QK-norm, attention sinks, layers without positions (NoPE), multi-head latent attention, Mamba-2 and
Gated DeltaNet mixers (llmplan.bench.blocks), standard or gated MLP, biases, tied or untied head, parallel
attention+MLP, sandwich norms, mixture-of-experts (token-choice top-k routing, every expert built, shared experts,
router and expert biases) and dense first layers. Encoder and encoder-decoder specs are rejected: the bench trains
decoder-only language models. Q, K and V are one fused linear (same parameter count as three) because one matmul
is what fast kernels run.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from llmplan.bench.positions import (alibi_slopes, apply_rotary, relative_buckets, rotary_tables,  # noqa: F401
                                     sinusoidal, window_mask)
from llmplan.errors import LlmplanError
from llmplan.estimate.shapes import truncated
from llmplan.models.layers import Attention as AttentionSpec
from llmplan.models.layers import LayerGroup
from llmplan.models.layers_v4 import CompressedAttention as CompressedAttentionSpec
from llmplan.models.layers import MoE as MoESpec
from llmplan.models.params import count_params
from llmplan.models.spec import ModelSpec

ATTENTION_KINDS = ("flash", "eager")
RECOMPUTE_KINDS = ("none", "selective", "full")

_ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "swiglu": F.silu,   # gated MLP naming: the gate's activation
    "geglu": F.gelu,
    "relu2": lambda x: F.relu(x).square(),  # squared ReLU (Primer, So et al. 2021)
}


def built_params(spec: ModelSpec, layers: int | None = None) -> int:
    """Parameters of the model build_model makes: the exact count of the shape (a bare-count spec's stated total is
    rescaled in count_params; the built model has its shape's count)."""
    return count_params(truncated(spec.with_(param_count=None), layers)).total


class RMSNorm(nn.Module):
    """x / rms(x) * weight (Zhang and Sennrich 2019); optional bias for specs that carry one."""

    def __init__(self, dim: int, bias: bool, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x):
        y = F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        return y + self.bias if self.bias is not None else y


def make_norm(spec: ModelSpec) -> nn.Module:
    if spec.norm == "rmsnorm":
        return RMSNorm(spec.hidden, bias=spec.has_norm_bias)
    return nn.LayerNorm(spec.hidden, bias=spec.has_norm_bias)


def attention_core(q, k, v, attention: str, bias, dropout: float, training: bool, mask=None, sinks=None):
    """softmax(QK^T / sqrt(d) + mask) V. q: (b, heads, s, d); k: (b, kv_heads, s, d); v: (b, kv_heads, s, d_v).
    `mask`: bool (s, s), True where a query sees a key (sliding window, chunk); None: causal. `sinks`: one logit per
    head that joins every softmax and is dropped after it (gpt-oss); computed as plain math in either mode."""
    p = dropout if training else 0.0
    groups = q.shape[1] // k.shape[1]
    if mask is not None and bias is not None:
        bias, mask = bias.masked_fill(~mask, float("-inf")), None
    if attention == "flash" and sinks is None:
        if mask is not None:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, enable_gqa=groups > 1)
        if bias is None:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True, enable_gqa=groups > 1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=p,
                                              enable_gqa=groups > 1)
    if groups > 1:
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    s = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    elif bias is None:
        causal = torch.ones(s, s, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(causal, float("-inf"))
    else:
        scores = scores + bias.to(scores.dtype)
    if sinks is not None:
        sink = sinks.to(scores.dtype).view(1, -1, 1, 1).expand(scores.shape[0], -1, s, 1)
        probs = torch.cat((scores, sink), dim=-1).softmax(dim=-1)[..., :-1]
    else:
        probs = scores.softmax(dim=-1)
    probs = F.dropout(probs, p=p, training=training)
    return probs @ v


class Attention(nn.Module):
    def __init__(self, spec: ModelSpec, m: AttentionSpec, attention: str, selective: bool, dropout: float,
                 relative: bool):
        super().__init__()
        self.heads, self.kv_heads, self.d, self.dv = m.heads, m.kv_heads, m.head_dim, m.d_v
        self.gate = m.q_dim if m.output_gate else 0  # Qwen3-Next: a sigmoid gate on the attention output
        # Gemma 4: K-as-V layers project no V (V = K), KV-shared layers reuse the last K and V of their kind
        self.k_eq_v, self.kv_shared, self.kind = m.k_eq_v, m.kv_shared, m.kind
        self.k_width = 0 if m.kv_shared else m.kv_heads * m.head_dim
        self.v_width = 0 if m.kv_shared or m.k_eq_v else m.kv_heads * m.d_v
        self.qkv = nn.Linear(spec.hidden, m.q_dim + self.gate + self.k_width + self.v_width, bias=m.qkv_bias)
        self.out = nn.Linear(m.heads * m.d_v, spec.hidden, bias=m.out_bias)
        self.attention, self.selective, self.dropout = attention, selective, dropout
        self.rope = m.rope and spec.position == "rotary"
        self.window = (m.kind, m.window) if m.kind != "full" else None
        self.qk_norm = m.qk_norm
        if m.qk_norm == "head":  # one RMSNorm over each head's width (Qwen3, Gemma 3)
            self.q_norm = RMSNorm(m.head_dim, False)
            self.k_norm = RMSNorm(m.head_dim, False) if not m.kv_shared else None
        elif m.qk_norm == "proj":  # over the whole projections (OLMo 2)
            self.q_norm, self.k_norm = RMSNorm(m.q_dim, False), RMSNorm(m.kv_heads * m.head_dim, False)
        self.sinks = nn.Parameter(torch.zeros(m.heads)) if m.sinks else None
        # T5 keeps one relative-position table per stack, in its first layer.
        self.relative = nn.Embedding(spec.relative_buckets, spec.heads) if relative else None

    def forward(self, x, ctx):
        b, s, _ = x.shape
        q, gate, k, v = self.qkv(x).split([self.heads * self.d, self.gate, self.k_width, self.v_width], dim=-1)
        if self.qk_norm == "proj":
            q, k = self.q_norm(q), self.k_norm(k)
        q = q.view(b, s, self.heads, self.d).transpose(1, 2)
        if self.qk_norm == "head":
            q = self.q_norm(q)
        if self.rope:
            q = apply_rotary(q, *ctx["rope"][self.d])
        if self.kv_shared:
            k, v = ctx["shared_kv"][self.kind]
        else:
            k = k.view(b, s, self.kv_heads, self.d).transpose(1, 2)
            v = k if self.k_eq_v else v.view(b, s, self.kv_heads, self.dv).transpose(1, 2)
            if self.qk_norm == "head":
                k = self.k_norm(k)
            if self.rope:
                k = apply_rotary(k, *ctx["rope"][self.d])
            ctx.setdefault("shared_kv", {})[self.kind] = (k, v)
        bias = ctx.get("bias")
        if self.relative is not None:
            ctx["bias"] = bias = self.relative(ctx["buckets"]).permute(2, 0, 1) + ctx["causal"]
        mask = ctx["masks"][self.window] if self.window else None
        args = (q, k, v, self.attention, bias, self.dropout, self.training, mask, self.sinks)
        if self.selective:  # Korthikanti et al. 2022: recompute only the attention core in the backward pass
            y = checkpoint(attention_core, *args, use_reentrant=False)
        else:
            y = attention_core(*args)
        y = y.transpose(1, 2).reshape(b, s, -1)
        if self.gate:
            y = y * torch.sigmoid(gate)
        return F.dropout(self.out(y), self.dropout, self.training)


class MLP(nn.Module):
    def __init__(self, hidden: int, ffn: int, gated: bool, bias: bool, activation: str, dropout: float,
                 act_params: int = 0):
        super().__init__()
        self.gated = gated
        self.up = nn.Linear(hidden, ffn * (2 if gated else 1), bias=bias)  # [gate | up]
        self.down = nn.Linear(ffn, hidden, bias=bias)
        from llmplan.bench.blocks import learned_activation  # xIELU's two scalars (Apertus)

        act = _ACTIVATIONS.get(activation.lower(), F.gelu)
        self.act = learned_activation(activation, act_params) if act_params else act
        self.dropout = dropout

    def forward(self, x):
        if self.gated:  # Shazeer 2020, GLU variants: act(x W_gate) * (x W_up)
            gate, up = self.up(x).chunk(2, dim=-1)
            h = self.act(gate) * up
        else:
            h = self.act(self.up(x))
        return F.dropout(self.down(h), self.dropout, self.training)


class Block(nn.Module):
    """Pre-norm block of one layer group. norms: 1 = one norm shared by both branches (or the one branch of a layer
    with only a mixer or only an MLP), 2 = one before each, 3-4 = also a norm after the attention / MLP output
    (sandwich norms). Parallel layers: attention and MLP read the same input."""

    def __init__(self, spec: ModelSpec, g: LayerGroup, attention: str, recompute: str, dropout: float, first: bool):
        super().__init__()
        self.norms = nn.ModuleList(make_norm(spec) for _ in range(g.norms))
        m = g.mixer
        if isinstance(m, AttentionSpec) and m.is_mla:
            from llmplan.bench.blocks import MLAttention

            self.attn = MLAttention(spec, m, attention, recompute == "selective", dropout)
        elif isinstance(m, AttentionSpec):
            relative = first and spec.relative_buckets > 0
            self.attn = Attention(spec, m, attention, recompute == "selective", dropout, relative)
        elif m is not None:
            from llmplan.bench.blocks import recurrent_mixer

            self.attn = recurrent_mixer(spec, m, dropout)
        else:
            self.attn = None
        f = g.ffn
        if isinstance(f, MoESpec):
            from llmplan.bench.blocks import MoE

            self.mlp = MoE(spec.hidden, f, spec.activation, dropout)
        elif f is not None:
            self.mlp = MLP(spec.hidden, f.ffn, f.gated, f.bias, spec.activation, dropout, f.act_params)
        else:
            self.mlp = None
        self.parallel = spec.parallel_layers

    def _norm(self, i: int, x):
        n = len(self.norms)
        if n == 0:
            return x
        return self.norms[min(i, n - 1)](x)

    def _post(self, i: int, x):
        return self.norms[i](x) if len(self.norms) > i else x

    def _mlp(self, x):
        """The MLP branch; norms beyond the four of a sandwich (Gemma 4's MoE branch beside its dense MLP) are
        applied to the branch's output in turn: the parameters are exact, their placement simplified."""
        y = self.mlp(self._norm(1, x))
        for norm in list(self.norms)[4:]:
            y = norm(y)
        return y

    def forward(self, x, ctx):
        if self.attn is None:
            return x + self.mlp(self._norm(0, x))
        if len(self.norms) > 4:
            x = x + self._post(2, self.attn(self._norm(0, x), ctx))
            return x + self._post(3, self._mlp(x))
        if self.mlp is None:
            return x + self.attn(self._norm(0, x), ctx)
        if self.parallel:
            return x + self.attn(self._norm(0, x), ctx) + self.mlp(self._norm(1, x))
        x = x + self._post(2, self.attn(self._norm(0, x), ctx))
        return x + self._post(3, self.mlp(self._norm(1, x)))


def _init_weights(module: nn.Module) -> None:
    """GPT-2 initialisation, N(0, 0.02) weights and zero biases (Radford et al. 2019), so that the first loss on
    random tokens is about ln(vocab) rather than the large logits of PyTorch's N(0, 1) embedding default."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)


class DecoderLM(nn.Module):
    """forward(tokens) -> logits (b, s, vocab); forward(tokens, targets) -> mean cross-entropy loss."""

    def __init__(self, spec: ModelSpec, attention: str, recompute: str, dropout: float):
        super().__init__()
        self.spec, self.recompute = spec, recompute
        h, e = spec.hidden, spec.embed_dim or spec.hidden
        self.tokens = nn.Embedding(spec.vocab, e)
        self.project_in = nn.Linear(e, h, bias=False) if e != h else None
        self.project_out = nn.Linear(h, e, bias=False) if e != h else None
        learned = spec.position == "learned"
        self.positions = nn.Embedding(spec.context + spec.position_offset, h) if learned else None
        self.token_types = nn.Embedding(spec.type_vocab, h) if spec.type_vocab else None
        self.embedding_norm = make_norm(spec) if spec.embedding_norm else None
        self.drop = nn.Dropout(dropout)
        layers = [g for g in spec.layer_groups for _ in range(g.count)]
        from llmplan.bench.blocks_v4 import HyperBlock, HyperHead  # DeepSeek-V4's layers and stream collapse

        self.blocks = nn.ModuleList(HyperBlock(spec, g, dropout, recompute == "selective") if g.hyper else
                                    Block(spec, g, attention, recompute, dropout, first=i == 0)
                                    for i, g in enumerate(layers))
        streams = max((g.hyper for g in layers), default=0)
        self.hc_head = HyperHead(streams, h) if streams else None
        self.final_norm = make_norm(spec) if spec.final_norm else None
        if spec.tied_embeddings:
            self.head = None
            self.head_bias = nn.Parameter(torch.zeros(spec.vocab)) if spec.lm_head_bias else None
        else:
            self.head = nn.Linear(e, spec.vocab, bias=spec.lm_head_bias)
            self.head_bias = None
        self.apply(_init_weights)


    def _context(self, s: int, device) -> dict:
        spec, ctx = self.spec, {}
        attns = [g.attention for g in spec.layer_groups if g.attention is not None]
        if spec.position == "rotary":  # one table per rotary width (MLA rotates its qk_rope_head_dim part only)
            dims = {m.qk_rope_head_dim if m.is_mla else m.head_dim for m in attns if m.rope}
            ctx["rope"] = {d: rotary_tables(s, d, device) for d in dims}
        ctx["masks"] = {(m.kind, m.window): window_mask(s, m.kind, m.window, device) for m in attns
                        if m.kind != "full"}
        causal = torch.full((s, s), float("-inf"), device=device).triu(1)
        if spec.position == "alibi":  # bias -slope * distance on past keys
            pos = torch.arange(s, device=device)
            dist = (pos[None, :] - pos[:, None]).clamp(max=0).float()
            ctx["bias"] = alibi_slopes(spec.heads).to(device)[:, None, None] * dist + causal
        if spec.relative_buckets:  # T5 relative bias (counted by count_params whenever buckets are set)
            pos = torch.arange(s, device=device)
            ctx["buckets"] = relative_buckets(pos[None, :] - pos[:, None], spec.relative_buckets)
            ctx["causal"] = causal
        return ctx

    def forward(self, tokens, targets=None):
        b, s = tokens.shape
        if s > self.spec.context and self.positions is not None:
            raise LlmplanError(f"sequence {s} exceeds the model's {self.spec.context} learned positions")
        x = self.tokens(tokens)
        if self.project_in is not None:
            x = self.project_in(x)
        if self.positions is not None:
            x = x + self.positions(torch.arange(s, device=tokens.device) + self.spec.position_offset)
        if self.spec.position == "sinusoidal":  # Vaswani et al. 2017, section 3.5
            x = x + sinusoidal(s, self.spec.hidden, tokens.device).to(x.dtype)
        if self.token_types is not None:
            x = x + self.token_types(torch.zeros_like(tokens))
        if self.embedding_norm is not None:
            x = self.embedding_norm(x)
        x = self.drop(x)
        if self.hc_head is not None:  # the residual as hc_mult streams, each a copy of the embedding
            x = x.unsqueeze(2).expand(-1, -1, self.hc_head.n, -1).contiguous()
        ctx = self._context(s, tokens.device)
        for block in self.blocks:
            if self.recompute == "full" and self.training:  # recompute the whole block in backward
                x = checkpoint(block, x, ctx, use_reentrant=False)
            else:
                x = block(x, ctx)
        if self.hc_head is not None:
            x = self.hc_head(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
        if self.project_out is not None:
            x = self.project_out(x)
        if self.head is not None:
            logits = self.head(x)
        else:
            logits = F.linear(x, self.tokens.weight, self.head_bias)
        if targets is None:
            return logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))


def unbuilt(spec: ModelSpec) -> str | None:
    """Why the bench cannot build this model's layers (refused rather than approximated), or None."""
    for g in spec.layer_groups:
        if bool(g.hyper) != isinstance(g.mixer, CompressedAttentionSpec):  # built together: DeepSeek-V4's layer
            return f"{spec.name!r} has hyper-connections or compressed attention apart, which the bench does not build"
        if g.attention is not None and g.attention.index_heads and not g.hyper:
            return f"{spec.name!r} has DeepSeek-V3.2's sparse-attention indexer, which the bench does not build"
    return None


def build_model(spec: ModelSpec, layers: int | None = None, attention: str = "flash", recompute: str = "none",
                dropout: float = 0.0, device: str = "cpu", dtype=None) -> DecoderLM:
    """The decoder-only transformer of `spec` with `layers` layers (default: all of them), ready to train."""
    if spec.arch != "decoder":
        raise LlmplanError(f"the bench builds decoder-only models; {spec.name!r} is {spec.arch}")
    if spec.pooler:
        raise LlmplanError(f"{spec.name!r} has a pooler, which decoder-only models do not use")
    if attention not in ATTENTION_KINDS:
        raise LlmplanError(f"unknown attention {attention!r}; accepted: {', '.join(ATTENTION_KINDS)}")
    if recompute not in RECOMPUTE_KINDS:
        raise LlmplanError(f"unknown recompute {recompute!r}; accepted: {', '.join(RECOMPUTE_KINDS)}")
    if not 0.0 <= dropout < 1.0:
        raise LlmplanError(f"dropout must be in [0, 1), got {dropout}")
    if layers is not None and (not isinstance(layers, int) or layers < 1):
        raise LlmplanError(f"layers must be a positive integer, got {layers!r}")
    for g in spec.layer_groups:
        m = g.attention
        if m is not None and spec.position == "rotary" and m.rope:
            dim = m.qk_rope_head_dim if m.is_mla else m.head_dim
            if dim % 2:
                raise LlmplanError(f"rotary positions need an even head_dim, got {dim}")
        if unbuilt(spec):
            raise LlmplanError(unbuilt(spec))
        if g.norms > 8:
            raise LlmplanError(f"{g.norms} norms per layer are not supported by the bench (0-8)")
    if layers is not None and layers > spec.layers and spec.groups:
        raise LlmplanError(f"layers must be at most {spec.name}'s {spec.layers}, got {layers}")
    built = truncated(spec.with_(param_count=None), layers)
    model = DecoderLM(built, attention, recompute, dropout)
    model.to(device=device, dtype=dtype or torch.float32)
    return model
