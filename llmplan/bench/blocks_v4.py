"""DeepSeek-V4's layers for the bench, with exactly the parameters llmplan.models.layers_v4 counts: compressed
attention (sliding-window shared-KV MQA with sinks, low-rank query, grouped output projection, HCA / CSA compressors
and CSA's lightning indexer) and the manifold-constrained hyper-connections around each sub-block.

A reference form in plain PyTorch after transformers 5.24's modeling_deepseek_v4.py run without a cache (the training
path): the core is eager math over the window's keys and the compressed entries (PyTorch's fused kernels take no
sink logit), the indexer's top-k selection carries no gradient (as there), and the routing of the MoE is the bench's
learned top-k (hash-routed layers have the same parameters). Rotary embeddings rotate the trailing
qk_rope_head_dim channels with the bench's tables (one base for every layer, where V4 uses a second base for the
compressed layers: a difference in values, not in work or memory). Not fast, and not what DeepSeek's fused kernels
keep for backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from llmplan.bench.model import RMSNorm, make_norm
from llmplan.bench.positions import apply_rotary, rotary_tables, window_mask
from llmplan.models.layers import LayerGroup
from llmplan.models.layers_v4 import CompressedAttention as CompressedSpec
from llmplan.models.spec import ModelSpec

SINKHORN_ITERS = 20  # hc_sinkhorn_iters of the released configs (no parameters: not in the model description)
EPS = 1e-6


def _rms(x):
    """RMSNorm without a weight (q_b_norm, the hyper-connections' input norm)."""
    return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + EPS).to(x.dtype)


def _rope_tail(x, cos, sin, dim: int):
    """Rotate the trailing `dim` channels of each head (V4 lays heads out as [nope | rope])."""
    if not dim:
        return x
    return torch.cat((x[..., :-dim], apply_rotary(x[..., -dim:], cos, sin)), dim=-1)


class HyperConnection(nn.Module):
    """DeepseekV4HyperConnection: from the flattened, normalised streams a linear map gives the pre (collapse),
    post (expand) and comb (mix, Sinkhorn-projected to doubly stochastic) weights."""

    def __init__(self, streams: int, hidden: int):
        super().__init__()
        self.n = streams
        mix = (2 + streams) * streams
        self.fn = nn.Parameter(torch.randn(mix, streams * hidden) * 0.02)
        self.base = nn.Parameter(torch.zeros(mix))
        self.scale = nn.Parameter(torch.ones(3))

    def forward(self, x):
        """x: (b, s, streams, h) -> post (b, s, n), comb (b, s, n, n), the collapsed block input (b, s, h)."""
        n = self.n
        mix = F.linear(_rms(x.flatten(2).float()), self.fn.float())
        pre, post, comb = mix.split([n, n, n * n], dim=-1)
        b_pre, b_post, b_comb = self.base.split([n, n, n * n])
        pre = torch.sigmoid(pre * self.scale[0] + b_pre) + EPS
        post = 2 * torch.sigmoid(post * self.scale[1] + b_post)
        comb = torch.softmax((comb * self.scale[2] + b_comb).unflatten(-1, (n, n)), dim=-1) + EPS
        comb = comb / (comb.sum(-2, keepdim=True) + EPS)
        for _ in range(SINKHORN_ITERS - 1):
            comb = comb / (comb.sum(-1, keepdim=True) + EPS)
            comb = comb / (comb.sum(-2, keepdim=True) + EPS)
        collapsed = (pre.unsqueeze(-1) * x).sum(2).to(x.dtype)
        return post.to(x.dtype), comb.to(x.dtype), collapsed

    @staticmethod
    def merge(post, comb, out, x):
        """The block's output expanded to the streams plus the streams mixed: post x out + comb^T x."""
        return post.unsqueeze(-1) * out.unsqueeze(-2) + comb.transpose(-1, -2) @ x


class HyperHead(nn.Module):
    """DeepseekV4HyperHead: the streams' final collapse before the model's norm."""

    def __init__(self, streams: int, hidden: int):
        super().__init__()
        self.n = streams
        self.hc_fn = nn.Parameter(torch.randn(streams, streams * hidden) * 0.02)
        self.hc_base = nn.Parameter(torch.zeros(streams))
        self.hc_scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        pre = torch.sigmoid(F.linear(_rms(x.flatten(2).float()), self.hc_fn.float()) * self.hc_scale + self.hc_base)
        return ((pre + EPS).unsqueeze(-1) * x).sum(2).to(x.dtype)


class Compressor(nn.Module):
    """One compressed entry per `ratio` tokens: a softmax over the window (gate + position bias) pools the kv
    projections; CSA's overlapping form pools window w's second series with window w - 1's first (2 x width)."""

    def __init__(self, hidden: int, width: int, ratio: int, overlap: bool):
        super().__init__()
        wide = 2 * width if overlap else width
        self.width, self.ratio, self.overlap = width, ratio, overlap
        self.kv_proj = nn.Linear(hidden, wide, bias=False)
        self.gate_proj = nn.Linear(hidden, wide, bias=False)
        self.position_bias = nn.Parameter(torch.zeros(ratio, wide))
        self.kv_norm = RMSNorm(width, bias=False)

    def forward(self, x):
        b, s, _ = x.shape
        t, r, d = s // self.ratio, self.ratio, self.width
        if t == 0:
            return x.new_zeros(b, 0, d)
        kv = self.kv_proj(x[:, :t * r]).view(b, t, r, -1)
        gate = self.gate_proj(x[:, :t * r]).view(b, t, r, -1) + self.position_bias.to(x.dtype)
        if self.overlap:  # slots: the previous window's first series (none for window 0), this window's second
            kv = torch.cat((F.pad(kv[:, :-1, :, :d], (0, 0, 0, 0, 1, 0)), kv[..., d:]), dim=2)
            gate = torch.cat((F.pad(gate[:, :-1, :, :d], (0, 0, 0, 0, 1, 0), value=float("-inf")), gate[..., d:]),
                             dim=2)
        return self.kv_norm((kv * gate.softmax(dim=2)).sum(dim=2))


class Indexer(nn.Module):
    """CSA's lightning indexer: its own compressed keys, queries from the query latent, head weights; keeps the
    index_topk visible entries of highest score sum_h w_h relu(q_h . k) per query."""

    def __init__(self, hidden: int, m: CompressedSpec):
        super().__init__()
        self.heads, self.dim, self.topk = m.index_heads, m.index_head_dim, m.index_topk
        self.compressor = Compressor(hidden, m.index_head_dim, m.compress_ratio, overlap=True)
        self.q_b_proj = nn.Linear(m.q_lora_rank, m.index_heads * m.index_head_dim, bias=False)
        self.weights_proj = nn.Linear(hidden, m.index_heads, bias=False)

    @torch.no_grad()
    def forward(self, x, q_latent, visible, rope):
        # inputs detached: no gradient flows through the selection, and module hooks (FlopCounterMode's tracker)
        # must not see tensors that require grad inside no_grad
        x, q_latent = x.detach(), q_latent.detach()
        b, s, _ = x.shape
        keys = self.compressor(x)
        q = self.q_b_proj(q_latent).view(b, s, self.heads, self.dim)
        keys, q = rope(keys, positions=True), rope(q.transpose(1, 2), positions=False).transpose(1, 2)
        scores = torch.einsum("bshd,btd->bsht", q.float(), keys.float()).relu() * self.dim ** -0.5
        scores = (scores * self.weights_proj(x).float().unsqueeze(-1) * self.heads ** -0.5).sum(2)
        scores = scores.masked_fill(~visible, float("-inf"))
        keep = torch.zeros_like(visible.expand(b, -1, -1))
        k = min(self.topk or keys.shape[1], keys.shape[1])
        keep.scatter_(-1, scores.topk(k, dim=-1).indices, True)
        return keep & visible


class CompressedAttention(nn.Module):
    """DeepseekV4Attention: q_a, its norm, q_b, the weightless per-head norm; kv_proj (K = V, one head) and its norm;
    rotary on the trailing qk_rope_head_dim channels; the core with one sink logit per head over the window's keys
    and the visible compressed entries; the rotation undone on the output; o_a per head group, then o_b."""

    def __init__(self, spec: ModelSpec, m: CompressedSpec, dropout: float, selective: bool = False):
        super().__init__()
        h, q, d = spec.hidden, m.q_lora_rank, m.head_dim
        self.m, self.dropout, self.rope_dim, self.selective = m, dropout, m.qk_rope_head_dim, selective
        self.q_a_proj = nn.Linear(h, q, bias=False)
        self.q_a_norm = RMSNorm(q, bias=False)
        self.q_b_proj = nn.Linear(q, m.q_dim, bias=False)
        self.kv_proj = nn.Linear(h, d, bias=False)
        self.kv_norm = RMSNorm(d, bias=False)
        self.o_a_proj = nn.Linear(m.q_dim // m.o_groups, m.o_groups * m.o_lora_rank, bias=False)
        self.o_b_proj = nn.Linear(m.o_groups * m.o_lora_rank, h, bias=False)
        self.sinks = nn.Parameter(torch.zeros(m.heads))
        self.compressor = Compressor(h, d, m.compress_ratio, m.sparse) if m.compress_ratio else None
        self.indexer = Indexer(h, m) if m.sparse else None

    def forward(self, x, ctx):
        m, (b, s, _) = self.m, x.shape
        heads, d, r = m.heads, m.head_dim, m.compress_ratio
        cos, sin = rotary_tables(s, self.rope_dim, x.device) if self.rope_dim else (None, None)

        def rope(t, positions=False, inverse=False):  # entries sit at the first token of their window
            if not self.rope_dim:
                return t
            c, n = (cos[::r][: t.shape[-2]], sin[::r][: t.shape[-2]]) if positions else (cos, sin)
            return _rope_tail(t, c, -n if inverse else n, self.rope_dim)

        q_latent = self.q_a_norm(self.q_a_proj(x))
        q = rope(_rms(self.q_b_proj(q_latent).view(b, s, heads, d)).transpose(1, 2))
        kv = rope(self.kv_norm(self.kv_proj(x)).view(b, 1, s, d))
        masks = ctx.get("masks") or {}
        mask = masks.get(("sliding", m.window))
        mask = (window_mask(s, "sliding", m.window, x.device) if mask is None else mask).unsqueeze(0)
        keys = kv
        if self.compressor is not None:
            entries = rope(self.compressor(x), positions=True)
            t = entries.shape[1]
            visible = (torch.arange(t, device=x.device)[None, :]
                       < ((torch.arange(s, device=x.device) + 1) // r)[:, None]).unsqueeze(0)
            if self.indexer is not None:
                visible = self.indexer(x, q_latent, visible, rope)
            keys = torch.cat((kv, entries.unsqueeze(1)), dim=2)
            mask = torch.cat((mask.expand(visible.shape[0], -1, -1), visible), dim=-1)
        core = checkpoint(self._core, q, keys, mask, use_reentrant=False) if self.selective else self._core(q, keys, mask)
        out = rope(core, inverse=True).transpose(1, 2).reshape(b, s, m.o_groups, -1)
        w = self.o_a_proj.weight.view(m.o_groups, m.o_lora_rank, -1)
        return self.o_b_proj(torch.einsum("bsgi,goi->bsgo", out, w).flatten(2))

    def _core(self, q, keys, mask):
        """softmax(Q K^T / sqrt(d), with a sink logit per head) V over the window and the entries (K = V)."""
        b, heads, s, d = q.shape
        scores = (q @ keys.transpose(-1, -2)) * d ** -0.5
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        sink = self.sinks.to(scores.dtype).view(1, heads, 1, 1).expand(b, heads, s, 1)
        probs = torch.cat((scores, sink), dim=-1).softmax(dim=-1)[..., :-1]
        return F.dropout(probs, p=self.dropout, training=self.training) @ keys


class HyperBlock(nn.Module):
    """A DeepSeek-V4 layer: attention, then the MoE, each between its hyper-connection and its pre-norm."""

    def __init__(self, spec: ModelSpec, g: LayerGroup, dropout: float, selective: bool = False):
        super().__init__()
        from llmplan.bench.blocks import MoE

        self.attn_hc, self.ffn_hc = HyperConnection(g.hyper, spec.hidden), HyperConnection(g.hyper, spec.hidden)
        self.norms = nn.ModuleList(make_norm(spec) for _ in range(g.norms))
        self.attn = CompressedAttention(spec, g.mixer, dropout, selective)
        self.mlp = MoE(spec.hidden, g.ffn, spec.activation, dropout)

    def forward(self, x, ctx):
        post, comb, inner = self.attn_hc(x)
        x = HyperConnection.merge(post, comb, self.attn(self.norms[0](inner), ctx), x)
        post, comb, inner = self.ffn_hc(x)
        return HyperConnection.merge(post, comb, self.mlp(self.norms[-1](inner)), x)
