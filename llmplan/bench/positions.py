"""Positions and masks for the bench's transformer: rotary tables, ALiBi slopes, T5's relative buckets,
sinusoidal embeddings, and the sliding-window / chunk masks of windowed attention layers."""

from __future__ import annotations

import math

import torch


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


def window_mask(s: int, kind: str, window: int, device) -> torch.Tensor:
    """True where query i sees key j: causal within the last `window` keys (sliding, Beltagy et al. 2020) or within
    its chunk of `window` tokens (chunked, Llama 4's attention_chunk_size)."""
    i = torch.arange(s, device=device)[:, None]
    j = torch.arange(s, device=device)[None, :]
    if kind == "sliding":
        return (j <= i) & (i - j < window)
    return (j <= i) & (i // window == j // window)


def sinusoidal(s: int, h: int, device) -> torch.Tensor:
    pos = torch.arange(s, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, h, 2, device=device, dtype=torch.float32) * (-math.log(10_000.0) / h))
    table = torch.zeros(s, h, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : h // 2]
    return table
