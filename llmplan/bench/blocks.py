"""The bench's blocks of current architectures, each with exactly the parameters llmplan.models.layers counts:
mixture-of-experts with shared experts, multi-head latent attention, and Mamba-2 / Gated DeltaNet mixers.

MLA is written as transformers' DeepseekV3Attention trains it (DeepSeek-V2 section 2.1, not absorbed): q_a, an
RMSNorm, q_b; kv_a to the latent and the shared rotary key, an RMSNorm, kv_b to per-head keys and values. The
recurrent mixers are reference forms in plain PyTorch, exact in their parameters and their outputs, not fast and not
what the fused kernels keep for backward: Mamba-2 in its quadratic (attention-like) SSD form (Dao and Gu 2024,
section 5: y = (L * C B^T) x), Gated DeltaNet as its recurrence token by token (Yang et al. 2024, eq. 10).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from llmplan.bench.model import MLP, RMSNorm, apply_rotary, attention_core
from llmplan.errors import LlmplanError
from llmplan.models.layers import Attention as AttentionSpec
from llmplan.models.layers import GatedDeltaNet, Mamba2
from llmplan.models.layers import MoE as MoESpec
from llmplan.models.spec import ModelSpec


class MoE(nn.Module):
    """Token-choice top-k routing over `experts` MLPs (Mixtral, Jiang et al. 2024), optionally with a router bias
    (gpt-oss) and a shared expert that every token passes (DeepSeekMoE, Dai et al. 2024), gated by a sigmoid
    (Qwen2-MoE) where the spec says so."""

    def __init__(self, hidden: int, m: MoESpec, activation: str, dropout: float):
        super().__init__()
        self.router = nn.Linear(hidden, m.experts, bias=m.router_bias)
        # Gemma 4's router: a learned scale per hidden unit on its input and one per expert on its weights
        self.router_scale = nn.Parameter(torch.ones(hidden)) if m.router_scales else None
        self.expert_scale = nn.Parameter(torch.ones(m.experts)) if m.router_scales else None
        width = m.latent or hidden  # latent MoE (Nemotron 3): experts between hidden <-> latent projections
        self.experts = nn.ModuleList(MLP(width, m.expert_ffn, m.gated, m.bias, activation, dropout)
                                     for _ in range(m.experts))
        self.latent_in = nn.Linear(hidden, m.latent, bias=m.bias) if m.latent else None
        self.latent_out = nn.Linear(m.latent, hidden, bias=m.bias) if m.latent else None
        self.shared = (MLP(hidden, m.shared_ffn, m.gated, m.shared_bias, activation, dropout) if m.shared_ffn
                       else None)
        self.shared_gate = nn.Linear(hidden, 1, bias=False) if m.shared_ffn and m.shared_gate else None
        self.k = m.top_k

    def forward(self, x):
        flat = x.reshape(-1, x.shape[-1])
        logits = self.router(flat * self.router_scale if self.router_scale is not None else flat)
        weights, chosen = logits.topk(self.k, dim=-1)
        weights = weights.softmax(dim=-1)
        if self.expert_scale is not None:
            weights = weights * self.expert_scale[chosen]
        inputs = self.latent_in(flat) if self.latent_in is not None else flat
        out = torch.zeros_like(inputs)
        for e, expert in enumerate(self.experts):
            rows, slot = (chosen == e).nonzero(as_tuple=True)
            if rows.numel():
                out = out.index_add(0, rows, expert(inputs[rows]) * weights[rows, slot, None].to(flat.dtype))
        if self.latent_out is not None:
            out = self.latent_out(out)
        if self.shared is not None:
            shared = self.shared(flat)
            if self.shared_gate is not None:
                shared = torch.sigmoid(self.shared_gate(flat)) * shared
            out = out + shared
        return out.view_as(x)


class MLAttention(nn.Module):
    """Multi-head latent attention; the core runs at qk head dim (qk_nope + qk_rope) for Q K^T and v head dim
    for A V."""

    def __init__(self, spec: ModelSpec, m: AttentionSpec, attention: str, selective: bool, dropout: float):
        super().__init__()
        h = spec.hidden
        self.heads, self.d, self.dv, self.rope_dim = m.heads, m.head_dim, m.d_v, m.qk_rope_head_dim
        self.nope, self.rank = m.head_dim - m.qk_rope_head_dim, m.kv_lora_rank
        if m.q_lora_rank:
            self.q_a = nn.Linear(h, m.q_lora_rank, bias=m.qkv_bias)
            self.q_norm = RMSNorm(m.q_lora_rank, False)
            self.q_b = nn.Linear(m.q_lora_rank, m.q_dim, bias=False)
        else:
            self.q_a = None
            self.q = nn.Linear(h, m.q_dim, bias=False)
        self.kv_a = nn.Linear(h, m.kv_lora_rank + m.qk_rope_head_dim, bias=m.qkv_bias)
        self.kv_norm = RMSNorm(m.kv_lora_rank, False)
        self.kv_b = nn.Linear(m.kv_lora_rank, m.heads * (self.nope + m.d_v), bias=False)
        self.out = nn.Linear(m.heads * m.d_v, h, bias=m.out_bias)
        self.rope = m.rope and spec.position == "rotary"
        self.window = (m.kind, m.window) if m.kind != "full" else None
        self.attention, self.selective, self.dropout = attention, selective, dropout

    def forward(self, x, ctx):
        b, s, _ = x.shape
        q = self.q_b(self.q_norm(self.q_a(x))) if self.q_a is not None else self.q(x)
        q = q.view(b, s, self.heads, self.d).transpose(1, 2)
        q_nope, q_pe = q.split([self.nope, self.rope_dim], dim=-1)
        latent, k_pe = self.kv_a(x).split([self.rank, self.rope_dim], dim=-1)
        kv = self.kv_b(self.kv_norm(latent)).view(b, s, self.heads, self.nope + self.dv).transpose(1, 2)
        k_nope, v = kv.split([self.nope, self.dv], dim=-1)
        k_pe = k_pe.view(b, 1, s, self.rope_dim)
        if self.rope:
            q_pe, k_pe = apply_rotary(q_pe, *ctx["rope"][self.rope_dim]), apply_rotary(k_pe, *ctx["rope"][self.rope_dim])
        q = torch.cat((q_nope, q_pe), dim=-1)
        k = torch.cat((k_nope, k_pe.expand(b, self.heads, s, self.rope_dim)), dim=-1)
        mask = ctx["masks"][self.window] if self.window else None
        pad = self.d - self.dv if self.attention == "flash" else 0
        if pad > 0:  # flash kernels take one head dim: pad V, slice the output (transformers' flash_attention_2)
            v = F.pad(v, [0, pad])
        args = (q, k, v, self.attention, None, self.dropout, self.training, mask, None)
        y = checkpoint(attention_core, *args, use_reentrant=False) if self.selective else attention_core(*args)
        if pad > 0:
            y = y[..., :self.dv]
        return F.dropout(self.out(y.transpose(1, 2).reshape(b, s, -1)), self.dropout, self.training)


def _causal_conv(conv: nn.Conv1d, x):
    """Depthwise causal conv over time: x (b, s, c) -> (b, s, c)."""
    s = x.shape[1]
    return conv(x.transpose(1, 2))[..., :s].transpose(1, 2)


class GatedRMSNorm(nn.Module):
    """RMSNorm(y * silu(z)) * weight over groups of `group` values (Mamba-2's and Gated DeltaNet's output norm)."""

    def __init__(self, width: int, group: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.group = group

    def forward(self, y, z):
        y = y * F.silu(z)
        shape = y.shape
        y = y.reshape(*shape[:-1], -1, self.group)
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-6)
        return y.reshape(shape) * self.weight


class Mamba2Mixer(nn.Module):
    """in_proj -> [z, x, B, C, dt]; depthwise causal conv and SiLU over x, B, C; the SSD scan; gated RMSNorm; out_proj
    (transformers NemotronHMamba2Mixer's parameters)."""

    def __init__(self, spec: ModelSpec, m: Mamba2, dropout: float):
        super().__init__()
        h = spec.hidden
        self.m = m
        self.in_proj = nn.Linear(h, 2 * m.inner + 2 * m.groups * m.state + m.heads, bias=m.bias)
        self.conv = nn.Conv1d(m.conv_dim, m.conv_dim, m.conv_kernel, groups=m.conv_dim, padding=m.conv_kernel - 1,
                              bias=m.conv_bias)
        self.dt_bias = nn.Parameter(torch.zeros(m.heads))
        self.A_log = nn.Parameter(torch.zeros(m.heads))
        self.D = nn.Parameter(torch.ones(m.heads))
        # Falcon-H1 without mamba_rms_norm gates with SiLU(z) and no norm (FalconH1Mixer: nn.Identity)
        self.norm = GatedRMSNorm(m.inner, m.inner // m.groups) if m.gated_norm else None
        self.out_proj = nn.Linear(m.inner, h, bias=m.bias)
        self.dropout = dropout

    def forward(self, x, ctx):
        m, (b, s, _) = self.m, x.shape
        z, xbc, dt = self.in_proj(x).split([m.inner, m.conv_dim, m.heads], dim=-1)
        xbc = F.silu(_causal_conv(self.conv, xbc))
        xs, B, C = xbc.split([m.inner, m.groups * m.state, m.groups * m.state], dim=-1)
        xs = xs.view(b, s, m.heads, m.head_dim)
        rep = m.heads // m.groups
        B = B.view(b, s, m.groups, m.state).repeat_interleave(rep, dim=2)
        C = C.view(b, s, m.groups, m.state).repeat_interleave(rep, dim=2)
        dt = F.softplus(dt + self.dt_bias)                            # (b, s, heads)
        a = (dt * -torch.exp(self.A_log)).transpose(1, 2).cumsum(-1)  # log decay, cumulative: (b, heads, s)
        decay = (a[..., :, None] - a[..., None, :]).masked_fill(
            ~torch.ones(s, s, dtype=torch.bool, device=x.device).tril(), float("-inf")).exp()
        scores = torch.einsum("bthn,bshn->bhts", C, B) * decay * dt.transpose(1, 2)[:, :, None, :]
        y = torch.einsum("bhts,bshp->bthp", scores, xs) + xs * self.D[:, None]
        y = y.reshape(b, s, m.inner)
        y = self.norm(y, z) if self.norm is not None else y * F.silu(z)
        return F.dropout(self.out_proj(y), self.dropout, self.training)


class GatedDeltaNetMixer(nn.Module):
    """in_proj_qkvz and in_proj_ba, depthwise causal conv and SiLU over q, k, v, L2-normalised q and k, the gated
    delta rule S_t = a_t S_{t-1} (I - b_t k_t k_t^T) + b_t v_t k_t^T, o_t = S_t q_t, gated RMSNorm, out_proj
    (transformers Qwen3NextGatedDeltaNet's parameters)."""

    def __init__(self, spec: ModelSpec, m: GatedDeltaNet, dropout: float):
        super().__init__()
        h = spec.hidden
        self.m = m
        key, value = m.k_heads * m.k_head_dim, m.v_heads * m.v_head_dim
        self.in_proj_qkvz = nn.Linear(h, 2 * key + 2 * value, bias=False)
        self.in_proj_ba = nn.Linear(h, 2 * m.v_heads, bias=False)
        self.conv = nn.Conv1d(m.conv_dim, m.conv_dim, m.conv_kernel, groups=m.conv_dim, padding=m.conv_kernel - 1,
                              bias=False)
        self.dt_bias = nn.Parameter(torch.ones(m.v_heads))
        self.A_log = nn.Parameter(torch.zeros(m.v_heads))
        self.norm = GatedRMSNorm(m.v_head_dim, m.v_head_dim)
        self.out_proj = nn.Linear(value, h, bias=False)
        self.dropout = dropout

    def forward(self, x, ctx):
        m, (b, s, _) = self.m, x.shape
        key, value = m.k_heads * m.k_head_dim, m.v_heads * m.v_head_dim
        qkv, z = self.in_proj_qkvz(x).split([2 * key + value, value], dim=-1)
        beta, alpha = self.in_proj_ba(x).split([m.v_heads, m.v_heads], dim=-1)
        q, k, v = F.silu(_causal_conv(self.conv, qkv)).split([key, key, value], dim=-1)
        rep = m.v_heads // m.k_heads
        q = F.normalize(q.view(b, s, m.k_heads, m.k_head_dim), dim=-1).repeat_interleave(rep, dim=2)
        k = F.normalize(k.view(b, s, m.k_heads, m.k_head_dim), dim=-1).repeat_interleave(rep, dim=2)
        v = v.view(b, s, m.v_heads, m.v_head_dim)
        beta = beta.sigmoid()
        decay = torch.exp(-torch.exp(self.A_log) * F.softplus(alpha + self.dt_bias))  # (b, s, v_heads)
        state = x.new_zeros(b, m.v_heads, m.k_head_dim, m.v_head_dim)
        outs = []
        for t in range(s):
            kt, vt, bt = k[:, t], v[:, t], beta[:, t, :, None]
            state = state * decay[:, t, :, None, None]
            err = vt - torch.einsum("bhk,bhkv->bhv", kt, state)  # v_t - S^T k_t
            state = state + torch.einsum("bhk,bhv->bhkv", kt, bt * err)
            outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t], state))
        y = self.norm(torch.stack(outs, dim=1), z.view(b, s, m.v_heads, m.v_head_dim))
        return F.dropout(self.out_proj(y.reshape(b, s, value)), self.dropout, self.training)


def recurrent_mixer(spec: ModelSpec, m, dropout: float) -> nn.Module:
    return Mamba2Mixer(spec, m, dropout) if isinstance(m, Mamba2) else GatedDeltaNetMixer(spec, m, dropout)


class XIELU(nn.Module):
    """xIELU (Apertus; transformers activations.py XIELUActivation): two learned scalars alpha_p, alpha_n; beta 0.5,
    eps -1e-6. x > 0: softplus(alpha_p) x^2 + beta x; else (expm1(min(x, eps)) - x)(beta + softplus(alpha_n)) + beta x."""

    def __init__(self):
        super().__init__()
        self.alpha_p = nn.Parameter(torch.full((1,), 0.8).expm1().log())  # softplus^-1(0.8)
        self.alpha_n = nn.Parameter(torch.full((1,), 0.3).expm1().log())  # softplus^-1(0.8 - beta)

    def forward(self, x):
        alpha_p, alpha_n = F.softplus(self.alpha_p), 0.5 + F.softplus(self.alpha_n)
        return torch.where(x > 0, alpha_p * x * x + 0.5 * x,
                           (torch.expm1(torch.clamp(x, max=-1e-6)) - x) * alpha_n + 0.5 * x)


def learned_activation(activation: str, params: int) -> nn.Module:
    """The activation of an MLP whose activation holds `params` learned parameters: xIELU's two, else refused."""
    if params != 2 or activation.lower() != "xielu":
        raise LlmplanError(f"an activation with {params} learned parameters ({activation!r}) is not built")
    return XIELU()
