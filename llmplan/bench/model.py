"""A decoder-only transformer built exactly from a ModelSpec, so that what the bench measures is what the planner
predicts: sum(p.numel()) equals count_params(spec) for the layers built.

Every structural choice of the spec is honoured: learned/rotary/ALiBi/relative/sinusoidal positions, LayerNorm or
RMSNorm (with or without bias), multi-head/grouped-query/multi-query attention with any head_dim, standard or gated
MLP, biases, tied or untied head, parallel attention+MLP, mixture-of-experts (token-choice top-k routing, every
expert built). Encoder and encoder-decoder specs are rejected: the bench trains decoder-only language models.
Q, K and V are one fused linear (same parameter count as three) because one matmul is what fast kernels run.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from llmplan.errors import LlmplanError
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
    s = spec.with_(param_count=None, **({"layers": layers} if layers else {}))
    return count_params(s).total


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


def rotary_tables(seq: int, dim: int, device, base: float = 10_000.0):
    """cos/sin tables for rotary embeddings over the full head_dim (Su et al. 2021, RoFormer eq. 34)."""
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim))
    angles = torch.outer(torch.arange(seq, device=device, dtype=torch.float32), inv)
    return angles.cos(), angles.sin()


def apply_rotary(x, cos, sin):
    """Rotate pairs (x1, x2) of the two halves of each head (the GPT-NeoX/LLaMA layout)."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def alibi_slopes(heads: int) -> torch.Tensor:
    """Geometric head slopes 2^(-8i/n) (Press et al. 2022, ALiBi, section 3), extended for non-powers of two."""
    def powers(n):
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]
    p = 2 ** math.floor(math.log2(heads))
    slopes = powers(p) + powers(2 * p)[0::2][: heads - p]
    return torch.tensor(slopes)


def relative_buckets(rel: torch.Tensor, n_buckets: int, max_distance: int = 128) -> torch.Tensor:
    """T5's causal relative-position buckets (Raffel et al. 2020, section 2.1): exact for near, log-spaced for far."""
    rel = (-rel).clamp(min=0)
    exact = n_buckets // 2
    far = exact + (torch.log(rel.float().clamp(min=1) / exact) / math.log(max_distance / exact)
                   * (n_buckets - exact)).long()
    return torch.where(rel < exact, rel, far.clamp(max=n_buckets - 1))


def attention_core(q, k, v, attention: str, bias, dropout: float, training: bool):
    """softmax(QK^T / sqrt(d) + mask) V. q: (b, heads, s, d); k, v: (b, kv_heads, s, d)."""
    p = dropout if training else 0.0
    groups = q.shape[1] // k.shape[1]
    if attention == "flash":
        if bias is None:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True, enable_gqa=groups > 1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=p,
                                              enable_gqa=groups > 1)
    if groups > 1:
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    s = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if bias is None:
        causal = torch.ones(s, s, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(causal, float("-inf"))
    else:
        scores = scores + bias.to(scores.dtype)
    probs = F.dropout(scores.softmax(dim=-1), p=p, training=training)
    return probs @ v


class Attention(nn.Module):
    def __init__(self, spec: ModelSpec, attention: str, selective: bool, dropout: float, relative: bool):
        super().__init__()
        self.heads, self.kv_heads, self.d = spec.heads, spec.n_kv_heads, spec.d_head
        self.qkv = nn.Linear(spec.hidden, spec.q_dim + 2 * spec.kv_dim, bias=spec.qkv_bias)
        self.out = nn.Linear(spec.q_dim, spec.hidden, bias=spec.out_bias)
        self.attention, self.selective, self.dropout = attention, selective, dropout
        # T5 keeps one relative-position table per stack, in its first layer.
        self.relative = nn.Embedding(spec.relative_buckets, spec.heads) if relative else None

    def forward(self, x, ctx):
        b, s, _ = x.shape
        q, k, v = self.qkv(x).split([self.heads * self.d, self.kv_heads * self.d, self.kv_heads * self.d], dim=-1)
        q = q.view(b, s, self.heads, self.d).transpose(1, 2)
        k = k.view(b, s, self.kv_heads, self.d).transpose(1, 2)
        v = v.view(b, s, self.kv_heads, self.d).transpose(1, 2)
        if "rope" in ctx:
            q, k = apply_rotary(q, *ctx["rope"]), apply_rotary(k, *ctx["rope"])
        bias = ctx.get("bias")
        if self.relative is not None:
            ctx["bias"] = bias = self.relative(ctx["buckets"]).permute(2, 0, 1) + ctx["causal"]
        args = (q, k, v, self.attention, bias, self.dropout, self.training)
        if self.selective:  # Korthikanti et al. 2022: recompute only the attention core in the backward pass
            y = checkpoint(attention_core, *args, use_reentrant=False)
        else:
            y = attention_core(*args)
        y = F.dropout(self.out(y.transpose(1, 2).reshape(b, s, -1)), self.dropout, self.training)
        return y


class MLP(nn.Module):
    def __init__(self, spec: ModelSpec, dropout: float):
        super().__init__()
        self.gated = spec.mlp == "gated"
        self.up = nn.Linear(spec.hidden, spec.ffn * (2 if self.gated else 1), bias=spec.mlp_bias)  # [gate | up]
        self.down = nn.Linear(spec.ffn, spec.hidden, bias=spec.mlp_bias)
        self.act = _ACTIVATIONS.get(spec.activation.lower(), F.gelu)
        self.dropout = dropout

    def forward(self, x):
        if self.gated:  # Shazeer 2020, GLU variants: act(x W_gate) * (x W_up)
            gate, up = self.up(x).chunk(2, dim=-1)
            h = self.act(gate) * up
        else:
            h = self.act(self.up(x))
        return F.dropout(self.down(h), self.dropout, self.training)


class MoE(nn.Module):
    """Token-choice top-k routing over `experts` MLPs with a bias-free router (Mixtral, Jiang et al. 2024)."""

    def __init__(self, spec: ModelSpec, dropout: float):
        super().__init__()
        self.router = nn.Linear(spec.hidden, spec.experts, bias=False)
        self.experts = nn.ModuleList(MLP(spec, dropout) for _ in range(spec.experts))
        self.k = spec.experts_per_token

    def forward(self, x):
        flat = x.reshape(-1, x.shape[-1])
        weights, chosen = self.router(flat).topk(self.k, dim=-1)
        weights = weights.softmax(dim=-1)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            rows, slot = (chosen == e).nonzero(as_tuple=True)
            if rows.numel():
                out = out.index_add(0, rows, expert(flat[rows]) * weights[rows, slot, None].to(flat.dtype))
        return out.view_as(x)


class Block(nn.Module):
    """Pre-norm block. norms_per_layer: 1 = one norm shared by both branches, 2 = one before each, 3-4 = also a norm
    after the attention / MLP output (sandwich norms). Parallel layers: attention and MLP read the same input."""

    def __init__(self, spec: ModelSpec, attention: str, recompute: str, dropout: float, first: bool):
        super().__init__()
        self.norms = nn.ModuleList(make_norm(spec) for _ in range(spec.norms_per_layer))
        relative = first and spec.relative_buckets > 0
        self.attn = Attention(spec, attention, recompute == "selective", dropout, relative)
        self.mlp = MoE(spec, dropout) if spec.is_moe else MLP(spec, dropout)
        self.parallel = spec.parallel_layers

    def _norm(self, i: int, x):
        n = len(self.norms)
        if n == 0:
            return x
        return self.norms[min(i, n - 1)](x)

    def _post(self, i: int, x):
        return self.norms[i](x) if len(self.norms) > i else x

    def forward(self, x, ctx):
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
        self.blocks = nn.ModuleList(Block(spec, attention, recompute, dropout, first=i == 0)
                                    for i in range(spec.layers))
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
        if spec.position == "rotary":
            ctx["rope"] = rotary_tables(s, spec.d_head, device)
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
        ctx = self._context(s, tokens.device)
        for block in self.blocks:
            if self.recompute == "full" and self.training:  # recompute the whole block in backward
                x = checkpoint(block, x, ctx, use_reentrant=False)
            else:
                x = block(x, ctx)
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


def sinusoidal(s: int, h: int, device) -> torch.Tensor:
    pos = torch.arange(s, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, h, 2, device=device, dtype=torch.float32) * (-math.log(10_000.0) / h))
    table = torch.zeros(s, h, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : h // 2]
    return table


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
    if spec.position == "rotary" and spec.d_head % 2:
        raise LlmplanError(f"rotary positions need an even head_dim, got {spec.d_head}")
    if spec.norms_per_layer > 4:
        raise LlmplanError(f"norms_per_layer {spec.norms_per_layer} is not supported by the bench (0-4)")
    built = spec.with_(param_count=None, **({"layers": layers} if layers else {}))
    model = DecoderLM(built, attention, recompute, dropout)
    model.to(device=device, dtype=dtype or torch.float32)
    return model
