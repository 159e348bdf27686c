"""What a model keeps per sequence at inference: the KV cache of its attention layers and the fixed state of its
recurrent layers, summed over layer groups.

Per layer kind, as vLLM's KV-cache manager sizes it (vllm/v1/kv_cache_interface.py): full attention holds every
token, sliding-window attention at most the window, chunked attention at most the chunk, MLA the compressed latent
plus the shared rotary key (kv_lora_rank + qk_rope_head_dim values; DeepSeek-V2 section 2.1.2), and Mamba-2 / Gated
DeltaNet layers a state whose size does not depend on the length (MambaSpec). DeepSeek-V4's compressed attention
holds its window's K=V entries plus one compressed entry per compress_ratio tokens (and, for CSA, the indexer's
compressed key): `CompressedAttention.cache_values`. Tensor parallelism splits KV heads
(replicating them when there are fewer heads than GPUs) and recurrent heads; the MLA latent has no head axis, so
every tensor-parallel rank holds all of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmplan.models.layers import Attention, GatedDeltaNet, Mamba2
from llmplan.models.layers_v4 import CompressedAttention
from llmplan.models.spec import ModelSpec
from llmplan.units import DTYPE_BYTES


@dataclass(frozen=True)
class CacheBytes:
    kv_cache_bytes: int                 # attention layers: K/V (MLA: latent) for the tokens each layer holds
    state_bytes: int                    # recurrent layers: fixed per sequence
    layers: dict = field(hash=False)    # layer kind -> how many layers of it ("full", "sliding", "mla", ...)

    @property
    def total_bytes(self) -> int:
        return self.kv_cache_bytes + self.state_bytes


def layer_kind(mixer) -> str | None:
    if isinstance(mixer, CompressedAttention):
        return mixer.kind_name  # sliding, csa or hca
    if isinstance(mixer, Attention):
        return "mla" if mixer.is_mla else mixer.kind
    if isinstance(mixer, Mamba2):
        return "mamba2"
    if isinstance(mixer, GatedDeltaNet):
        return "gated_deltanet"
    return None


def _split(heads: int, tp: int) -> float:
    """Share of `heads` on one of tp GPUs: heads / tp, or one whole head each when tp exceeds the heads."""
    return max(heads // tp, 1) / heads if heads >= tp else 1 / heads


def cache_bytes(spec: ModelSpec, tokens: int, batch: int = 1, kv_dtype: str = "bf16", state_dtype: str | None = None,
                tp: int = 1, pp: int = 1, encoder_tokens: int | None = None,
                expanded_mla: bool = False) -> CacheBytes:
    """KV cache and recurrent state on one GPU for `batch` sequences of `tokens` tokens (pp: an even share of the
    layers). Encoder-only models cache nothing; an encoder-decoder decoder also caches the cross-attention K/V of the
    encoder output (`encoder_tokens`, default `tokens`)."""
    kv_b = DTYPE_BYTES[kv_dtype]
    st_b = DTYPE_BYTES[state_dtype or kv_dtype]
    kv = state = 0.0
    layers: dict[str, int] = {}
    if spec.arch != "encoder":
        for g in spec.layer_groups:
            kind = layer_kind(g.mixer)
            if kind is None:
                continue
            layers[kind] = layers.get(kind, 0) + g.count
            m = g.mixer
            if isinstance(m, Attention):
                share = 1.0 if m.is_mla else _split(m.kv_heads, tp)
                if isinstance(m, CompressedAttention):  # window + compressed entries (+ indexer keys)
                    values = m.cache_values(tokens)
                else:
                    held = m.tokens_held(tokens)
                    if spec.arch == "encoder-decoder":
                        held += encoder_tokens or tokens
                    values = m.kv_values_per_token(expanded_mla) * held
                kv += g.count * values * share * kv_b
            else:
                heads = m.heads if isinstance(m, Mamba2) else m.v_heads
                state += g.count * m.state_values() * _split(heads, tp) * st_b
    scale = batch / pp
    return CacheBytes(int(round(kv * scale)), int(round(state * scale)), layers)
