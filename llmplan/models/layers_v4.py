"""DeepSeek-V4's parts that a plain attention layer lacks: compressed attention and manifold-constrained
hyper-connections (transformers 5.24 modeling_deepseek_v4.py; DeepSeek-V4 paper sections 2.2 and 2.3).

Every V4 attention layer is a shared-KV multi-query attention (one KV head read as both key and value, a per-head
sink logit) over a sliding window of recent tokens, with a low-rank query (q_a_proj, q_a_norm, q_b_proj) and a
grouped low-rank output projection (o_a_proj: heads split into o_groups, each group to o_lora_rank; o_b_proj mixes
the o_groups x o_lora_rank vector to hidden). Layers with a compressor add long-range entries: every
`compress_ratio` tokens are pooled into one cached entry of head_dim values. Heavily compressed attention (HCA,
ratio 128) attends to all of them; compressed sparse attention (CSA, ratio 4) pools overlapping windows (two
series, 2 x head_dim wide) and a lightning indexer keeps index_topk of the entries per query.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.errors import LlmplanError
from llmplan.models.layers import Attention, _check_ints


@dataclass(frozen=True)
class CompressedAttention(Attention):
    """A DeepSeek-V4 attention layer (transformers DeepseekV4Attention). It is an `Attention` of kind "sliding"
    (window = sliding_window) with k_eq_v and sinks; q_lora_rank > 0 is its low-rank query; qk_rope_head_dim the
    rotary channels at the end of each head. compress_ratio 0: the sliding window only; with index_heads > 0 the
    layer is CSA (overlapping compressor and indexer), else HCA."""

    o_groups: int = 1          # head groups of the grouped output projection
    o_lora_rank: int = 0       # per-group width d_g of that projection
    compress_ratio: int = 0    # source tokens pooled into one compressed entry; 0: no compressor

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_ints(self, ("o_groups", "o_lora_rank", "q_lora_rank"), 1)
        _check_ints(self, ("compress_ratio",), 0)
        if self.kind != "sliding" or not self.k_eq_v or self.kv_heads != 1:
            raise LlmplanError("compressed attention is shared-KV multi-query attention over a sliding window "
                               "(kind sliding, k_eq_v, one KV head)")
        if self.qk_rope_head_dim % 2 or self.qk_rope_head_dim > self.head_dim:
            raise LlmplanError(f"the rotary part of a head ({self.qk_rope_head_dim}) must be even and at most "
                               f"head_dim ({self.head_dim})")
        if self.heads % self.o_groups:
            raise LlmplanError(f"{self.heads} heads cannot be split into {self.o_groups} output groups")
        if self.index_heads and not self.compress_ratio:
            raise LlmplanError("a compressed sparse attention indexer needs a compress_ratio")

    @property
    def sparse(self) -> bool:
        """CSA: an overlapping compressor and a lightning indexer (DeepseekV4CSACompressor)."""
        return self.index_heads > 0

    @property
    def kind_name(self) -> str:
        if not self.compress_ratio:
            return "sliding"
        return "csa" if self.sparse else "hca"

    def compressor_params(self, hidden: int) -> int:
        """kv_proj and gate_proj (2 x head_dim wide for CSA's two series), position_bias (ratio x that width) and
        kv_norm; CSA's indexer: its own compressor at index_head_dim, q_b_proj from the query latent, and the
        scorer's weights_proj (DeepseekV4HCACompressor, DeepseekV4CSACompressor, DeepseekV4Indexer)."""
        if not self.compress_ratio:
            return 0
        r, d = self.compress_ratio, self.head_dim
        width = 2 * d if self.sparse else d
        total = 2 * hidden * width + r * width + d
        if self.sparse:
            iw, di = 2 * self.index_head_dim, self.index_head_dim
            total += (2 * hidden * iw + r * iw + di + self.q_lora_rank * self.index_heads * di
                      + hidden * self.index_heads)
        return total

    def params(self, hidden: int) -> int:
        """q_a_proj, q_a_norm, q_b_proj (q_b_norm has no weight), kv_proj and kv_norm (one head_dim-wide head),
        o_a_proj (heads x head_dim -> o_groups x o_lora_rank, block-diagonal), o_b_proj, sinks, the compressor."""
        h, q, d = hidden, self.q_lora_rank, self.head_dim
        return (h * q + q + q * self.q_dim + h * d + d + self.q_dim * self.o_lora_rank
                + self.o_groups * self.o_lora_rank * h + self.heads + self.compressor_params(h))

    def kv_values_per_token(self, expanded_mla: bool = False) -> int:
        """Values of one sliding-window entry (K = V: head_dim); the compressed entries are `cache_values`'."""
        return self.head_dim

    def compressed_entries(self, seq: int) -> int:
        """Compressed entries a sequence of `seq` tokens has emitted: one per closed window of compress_ratio."""
        return seq // self.compress_ratio if self.compress_ratio else 0

    def cache_values(self, seq: int, expanded_mla: bool = False) -> int:
        """Values one layer caches for a sequence: the window's K=V entries (head_dim each), the compressed
        entries (head_dim each) and, for CSA, the indexer's compressed keys (index_head_dim each), as transformers'
        DeepseekV4HCACache / DeepseekV4CSACache and vLLM (DeepseekV4SWACache, a compress_ratio MLAAttentionSpec,
        DeepseekV4IndexerCache) hold them. The compressors' pending tokens (fewer than compress_ratio) are left
        out."""
        return (min(seq, self.window) * self.head_dim
                + self.compressed_entries(seq) * (self.head_dim + self.index_head_dim))

    def values_read(self, seq: int) -> int:
        """Cached values one decode step reads: the window, the compressed entries attended (CSA: index_topk of
        them) and, for CSA, every indexer key (the indexer scores them all; paper section 2.3.1)."""
        entries = self.compressed_entries(seq)
        attended = min(entries, self.index_topk) if self.sparse and self.index_topk else entries
        return min(seq, self.window) * self.head_dim + attended * self.head_dim + entries * self.index_head_dim

    def compressed_keys(self, position: int) -> int:
        """Compressed entries the query at 0-based `position` attends: those whose window closed by then
        ((position + 1) // ratio), at most index_topk of them for CSA."""
        visible = (position + 1) // self.compress_ratio if self.compress_ratio else 0
        return min(visible, self.index_topk) if self.sparse and self.index_topk else visible

    def keys_attended(self, position: int) -> int:
        return min(position + 1, self.window) + self.compressed_keys(position)

    def compressed_pairs(self, seq: int, capped: bool = True) -> int:
        """Sum over the positions of a causal sequence of `seq` tokens of the compressed entries each query sees
        (compressed_keys; `capped` False: all visible ones, what CSA's indexer scores). With m = compress_ratio,
        sum_{j=1..n} floor(j / m) = m q (q - 1) / 2 + q (r + 1) for n = q m + r; CSA caps each term at
        index_topk, which the terms reach from j = index_topk x m on."""
        m = self.compress_ratio
        if not m:
            return 0

        def uncapped(n: int) -> int:
            q, r = divmod(n, m)
            return m * q * (q - 1) // 2 + q * (r + 1) if n > 0 else 0

        top = self.index_topk if self.sparse and capped and self.index_topk else 0
        if not top or seq < top * m:
            return uncapped(seq)
        return uncapped(top * m - 1) + top * (seq - top * m + 1)


def hyper_params(streams: int, hidden: int) -> int:
    """One manifold-constrained hyper-connection (transformers DeepseekV4HyperConnection; Xie et al. 2026): fn
    maps the flattened streams (streams x hidden) to pre, post and comb weights ((2 + streams) x streams), with a
    base per weight and three scales."""
    mix = (2 + streams) * streams
    return mix * streams * hidden + mix + 3


def hyper_head_params(streams: int, hidden: int) -> int:
    """The final collapse of the streams (DeepseekV4HyperHead): hc_fn, hc_base and hc_scale."""
    return streams * streams * hidden + streams + 1
