"""Training and inference FLOPs of a transformer, in the 6 N D convention and counted matmul by matmul.

Conventions (see docs/methodology.md, "Compute"):
- A multiply-add is 2 FLOPs; the backward pass costs twice the forward (Kaplan et al. 2020, section 2.1), so one
  training token costs 3 x its forward FLOPs.
- `six_nd`: C = 6 N D with N the parameters that act on a token (Brown et al. 2020, GPT-3 paper, Appendix D):
  total parameters for decoder- and encoder-only models, active parameters for mixture-of-experts, and half the
  parameters for an encoder-decoder model (the paper's 3 N D for T5: each token passes either the encoder or the
  decoder).
- `detailed`: every matmul weight that acts on the token (MoE: the routed top-k experts, the shared expert and the
  router; MLA: q_a, q_b, kv_a, kv_b and o), the attention scores QK^T and the weighted sum AV (2 x keys x heads x
  (qk head dim + v head dim) per token and layer; 4 x layers x seq x heads x head_dim for plain attention over the
  full sequence, PaLM Appendix B; Chinchilla Appendix F), the state updates of recurrent mixers, and the output
  logits (2 x d_model x vocab, Kaplan et al. 2020 Table 1). Norms, softmax and other element-wise work are left out.
- Sliding-window and chunked layers: PaLM counts causal attention over the full s x s product, twice the causal
  (query, key) pairs; windowed layers keep that factor on their exact pairs, sum over positions of the keys each
  query attends, so keys per query = 2 x sum_i keys_attended(i) / (s + 1) (= s when the window covers the sequence).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmplan.errors import LlmplanError
from llmplan.models.layers import Attention, GatedDeltaNet, Mamba2, MoE
from llmplan.models.layers_v4 import CompressedAttention
from llmplan.models.params import count_params, expert_mlp_params, layer_params, linear
from llmplan.models.spec import ModelSpec

RECOMPUTE = ("none", "selective", "full")

# Long-context models are pretrained at a few thousand tokens and extended at the end: Llama 3 405B trained 15.6T
# tokens at 8,192 and only a final stage at 128K (Dubey et al. 2024, "The Llama 3 Herd of Models", section 3.4);
# Qwen2 at 4,096, extended to 32K at the end (Yang et al. 2024, Qwen2 technical report). The planner defaults to it
# when the context is longer, since attention FLOPs grow with the sequence.
PRETRAIN_SEQ_CAP = 8192


@dataclass(frozen=True)
class ForwardParts:
    """Forward FLOPs of one token, by kind (a training token costs 3x these; Kaplan et al. 2020)."""

    matmul: float     # 2 x the matmul weights that act on the token (attention projections, MLP, active experts)
    attention: float  # QK^T and AV over the context (PaLM Appendix B: 4 L T H Q per token forward)
    logits: float     # output head 2 x d_model x vocab (and OPT's in/out projections)
    recurrent: float = 0.0  # state updates of Mamba-2 / Gated DeltaNet mixers (their projections are in matmul)

    @property
    def total(self) -> float:
        return self.matmul + self.attention + self.logits + self.recurrent


@dataclass(frozen=True)
class TrainingFlops:
    """Training compute for `tokens` tokens of length `seq`. All values in FLOPs."""

    model: str
    arch: str
    params: int                # total parameters
    params_per_token: float    # N of the 6 N D convention (active; half the total for encoder-decoder)
    tokens: float
    seq: int
    recompute: str
    six_nd: float              # 6 N D (GPT-3 paper, Appendix D); 3 N D for encoder-decoder
    detailed: float            # model FLOPs counted matmul by matmul, with attention and logits
    hardware: float            # detailed + recomputation (what the GPUs actually execute)
    hardware_nd: float         # the convention's hardware count: 6 N D, 8 N D with full recompute
    breakdown: dict = field(hash=False)  # FLOPs by part: forward_matmul, forward_attention, ..., recompute
    assumptions: tuple[str, ...] = ()

    @property
    def ratio(self) -> float:
        """detailed / six_nd: how much the 6 N D shortcut leaves out (attention, logits) or adds (embeddings)."""
        return self.detailed / self.six_nd


def _check_seq(spec: ModelSpec, seq: int | None) -> int:
    s = spec.context if seq is None else seq
    if not isinstance(s, int) or isinstance(s, bool) or s < 1:
        raise LlmplanError(f"sequence length must be a positive whole number, got {seq!r}")
    return s


def _body_scale(spec: ModelSpec) -> float:
    """For a model given by a bare count, the layers were rescaled to keep the count exact: follow that scaling."""
    if spec.param_count is None:
        return 1.0
    b = count_params(spec)
    shape = count_params(spec.with_(param_count=None))
    return (b.attention + b.mlp + b.norms) / max(shape.attention + shape.mlp + shape.norms, 1)


def _inactive_per_layer(spec: ModelSpec) -> int:
    """Expert weights that a token does not pass through (mixture-of-experts routes to experts_per_token)."""
    return (spec.experts - spec.experts_per_token) * expert_mlp_params(spec)


def _head_flops(spec: ModelSpec) -> float:
    """Output logits, 2 x d_model x vocab (Kaplan et al. 2020 Table 1 'De-embed'), plus OPT-350m's projections."""
    e = spec.embed_dim or spec.hidden
    extra = 2 * 2 * e * spec.hidden if spec.embed_dim and spec.embed_dim != spec.hidden else 0
    return 2.0 * e * spec.vocab + extra


def encoder_decoder_tokens_params(spec: ModelSpec) -> tuple[float, float]:
    """Matmul weights acting on one encoder token and on one decoder token of an encoder-decoder model.

    An encoder token passes the encoder layers and, once encoded, the decoder's cross-attention key/value
    projections; a decoder token passes the decoder's self-attention, cross-attention query/output and MLP.
    """
    scale = _body_scale(spec)
    cross_kv = 2 * linear(spec.hidden, spec.kv_dim, spec.qkv_bias)
    enc_layer = layer_params(spec) - _inactive_per_layer(spec)
    dec_layer = layer_params(spec, cross_attention=True) - _inactive_per_layer(spec)
    enc = spec.encoder_layers * enc_layer * scale + spec.layers * cross_kv * scale
    dec = spec.layers * (dec_layer - cross_kv) * scale
    return enc, dec


def causal_pairs(m: Attention, seq: int) -> int:
    """(query, key) pairs of one causal layer over `seq` tokens: sum over positions of m.keys_attended(i)."""
    if isinstance(m, CompressedAttention):  # DeepSeek-V4: the window's keys plus the compressed entries attended
        return causal_pairs(Attention(1, 1, 1, kind="sliding", window=m.window), seq) + m.compressed_pairs(seq)
    if m.kind == "full":
        return seq * (seq + 1) // 2
    w = m.window
    if m.kind == "sliding":  # min(i + 1, w): a triangle up to the window, then w keys each
        return seq * (seq + 1) // 2 if seq <= w else w * (w + 1) // 2 + (seq - w) * w
    full, rest = divmod(seq, w)  # chunked: i % w + 1 within each chunk
    return full * w * (w + 1) // 2 + rest * (rest + 1) // 2


def keys_per_query(m: Attention, seq: int, causal: bool = True) -> float:
    """Keys each query is counted against: seq for a full layer (PaLM's convention, no saving from the causal
    mask); windowed layers the same convention on their exact pairs, 2 x causal_pairs / (seq + 1). Non-causal
    (encoder) windowed layers: the band, min(seq, window). A sparse-attention indexer (DeepSeek-V3.2) keeps
    index_topk keys per query, counted like a window of that size."""
    if not causal:
        keys = float(seq if m.kind == "full" else min(seq, m.window))
        if isinstance(m, CompressedAttention):
            entries = m.compressed_entries(seq)
            keys += min(entries, m.index_topk) if m.sparse else entries
    else:
        keys = 2.0 * causal_pairs(m, seq) / (seq + 1)
    if m.index_topk and not isinstance(m, CompressedAttention):  # V4's top-k applies to its compressed entries
        top = Attention(heads=1, kv_heads=1, head_dim=1, kind="sliding", window=m.index_topk)
        keys = min(keys, 2.0 * causal_pairs(top, seq) / (seq + 1) if causal else min(seq, m.index_topk))
    return keys


def attention_core_flops(m: Attention, seq: int, causal: bool = True) -> float:
    """Forward FLOPs per token of one layer's attention core: QK^T at the qk head dim and AV at the v head dim
    (MLA: qk_nope + qk_rope = 192 and v 128 for DeepSeek-V3; DeepSeek-V2 section 2.1), 2 FLOPs per multiply-add;
    plus the lightning indexer's scores over every key (DeepSeek-V3.2: index_heads x index_head_dim per key)."""
    keys = keys_per_query(m, seq, causal)
    flops = 2.0 * keys * m.heads * (m.head_dim + m.d_v)
    if isinstance(m, CompressedAttention):  # V4's indexer scores every visible compressed entry (paper eq. 16)
        entries = (2.0 * m.compressed_pairs(seq, capped=False) / (seq + 1) if causal
                   else float(m.compressed_entries(seq)))
        return flops + (2.0 * entries * m.index_heads * m.index_head_dim if m.sparse else 0.0)
    if m.index_heads:
        full = float(seq) if not causal else 2.0 * causal_pairs(Attention(1, 1, 1), seq) / (seq + 1)
        flops += 2.0 * full * m.index_heads * m.index_head_dim
    return flops


def recurrent_flops(mixer) -> float:
    """Forward FLOPs per token of a recurrent mixer's state update beyond its projections, one multiply-add (2 FLOPs)
    per state value for each matrix-vector product or rank-1 update; element-wise decays left out like norms.
    Mamba-2 (Dao and Gu 2024, eq. 1 / SSD recurrence h_t = a_t h_{t-1} + B_t x_t^T, y_t = h_t C_t): the update and
    the readout, 2 x 2 x heads x head_dim x state. Gated DeltaNet (Yang et al. 2024, eq. 10:
    S_t = a_t S_{t-1} (I - b_t k_t k_t^T) + b_t v_t k_t^T, o_t = S_t q_t): S k, the rank-1 correction, v k^T and the
    readout, 4 x 2 x v_heads x k_head_dim x v_head_dim. The model's FLOPs, not the chunked kernels' (which spend
    more on their intra-chunk products)."""
    if isinstance(mixer, Mamba2):
        return 4.0 * mixer.heads * mixer.head_dim * mixer.state
    if isinstance(mixer, GatedDeltaNet):
        return 8.0 * mixer.v_heads * mixer.k_head_dim * mixer.v_head_dim
    return 0.0


def forward_parts(spec: ModelSpec, seq: int | None = None, decoder_fraction: float = 0.5) -> ForwardParts:
    """Forward FLOPs per token, split by kind. `seq` is the attended length (training: the full sequence).

    Decoder- and encoder-only models walk the layer groups: every group's attention kind, MLA head dims and
    recurrent mixers; the matmul weights are the active parameters (count_params: routed top-k experts, shared
    experts, routers, per group). Encoder-decoder: the average over tokens, `decoder_fraction` of them passing the
    decoder, the rest the encoder (0.5: half the tokens on each side, as the GPT-3 paper's 3 N D assumes); both
    sides have length seq.
    """
    s = _check_seq(spec, seq)
    if spec.arch != "encoder-decoder":
        b = count_params(spec)
        matmul = 2.0 * (b.active - b.embeddings - b.output_head - b.other)
        causal = spec.arch == "decoder"
        attention = recurrent = 0.0
        for g in spec.layer_groups:
            if isinstance(g.mixer, Attention):
                attention += g.count * attention_core_flops(g.mixer, s, causal)
            else:
                recurrent += g.count * recurrent_flops(g.mixer)
        return ForwardParts(matmul=matmul, attention=attention, logits=_head_flops(spec), recurrent=recurrent)
    attn = 4.0 * s * spec.q_dim  # QK^T and AV, 2 FLOPs per multiply-add each (PaLM Appendix B)
    if not 0.0 <= decoder_fraction <= 1.0:
        raise LlmplanError(f"decoder token fraction must be between 0 and 1, got {decoder_fraction}")
    enc, dec = encoder_decoder_tokens_params(spec)
    f_dec, f_enc = decoder_fraction, 1.0 - decoder_fraction
    matmul = 2.0 * (f_enc * enc + f_dec * dec)
    # encoder tokens: encoder self-attention; decoder tokens: self-attention and cross-attention over the input
    attention = f_enc * spec.encoder_layers * attn + f_dec * spec.layers * 2 * attn
    return ForwardParts(matmul=matmul, attention=attention, logits=f_dec * _head_flops(spec))


def forward_flops_per_token(spec: ModelSpec, seq: int | None = None) -> float:
    """Detailed forward FLOPs of one token in a sequence of length `seq` (matmuls + attention + logits)."""
    return forward_parts(spec, seq).total


def train_flops_per_token(spec: ModelSpec, seq: int | None = None) -> float:
    """Model FLOPs of one training token: forward + backward (2x forward) = 3x forward (Kaplan et al. 2020).

    This is the numerator of MFU (PaLM Appendix B: 6 N + 12 L H Q T per token)."""
    return 3.0 * forward_flops_per_token(spec, seq)


def params_per_token(spec: ModelSpec) -> float:
    """N of the 6 N D convention: active parameters; half of all parameters for an encoder-decoder model
    (GPT-3 paper, Appendix D: 'only about half the parameters are active for each token' of T5)."""
    b = count_params(spec)
    return b.total / 2.0 if spec.arch == "encoder-decoder" else float(b.active)


def training_flops(spec: ModelSpec, tokens: float, recompute: str = "none", seq: int | None = None) -> TrainingFlops:
    """Training compute of `spec` on `tokens` tokens, in the 6 N D convention and counted in detail.

    recompute: "none"; "selective" recomputes the attention core (QK^T, softmax, AV) in the backward pass
    (Korthikanti et al. 2022); "full" recomputes each layer's forward (one extra forward: 8 N D hardware FLOPs).
    """
    if not isinstance(tokens, (int, float)) or isinstance(tokens, bool) or not tokens > 0 or tokens == float("inf"):
        raise LlmplanError(f"training tokens must be a finite number greater than zero, got {tokens!r}")
    if recompute not in RECOMPUTE:
        raise LlmplanError(f"unknown recompute mode {recompute!r}; accepted: {', '.join(RECOMPUTE)}")
    s = _check_seq(spec, seq)
    parts = forward_parts(spec, s)
    d = float(tokens)
    fwd = {"forward_matmul": parts.matmul * d, "forward_attention": parts.attention * d,
           "forward_logits": parts.logits * d, "forward_recurrent": parts.recurrent * d}
    bwd = {k.replace("forward", "backward"): 2.0 * v for k, v in fwd.items()}  # backward = 2x forward
    detailed = 3.0 * parts.total * d
    if recompute == "full":  # every layer's forward again; the logits are not part of the checkpointed layers
        extra = (parts.matmul + parts.attention + parts.recurrent) * d
    elif recompute == "selective":
        extra = parts.attention * d
    else:
        extra = 0.0
    n_tok = params_per_token(spec)
    six_nd = 6.0 * n_tok * d
    assumptions = [
        f"attention counted over the full sequence of {s} tokens (no saving from causal masking), as PaLM's MFU",
        "norms, softmax, activations and the embedding lookup are not counted (element-wise, a few percent at most)",
    ] + _layer_notes(spec, s)
    if spec.arch == "encoder-decoder":
        assumptions.append("encoder-decoder: half the tokens pass the encoder and half the decoder, both of length "
                           f"{s}; 6 N D uses half the parameters (the GPT-3 paper's 3 N D for T5)")
    if spec.arch == "encoder":
        assumptions.append("logits counted for every token; BERT-style masked-LM heads score only the masked 15%")
    return TrainingFlops(
        model=spec.name, arch=spec.arch, params=count_params(spec).total, params_per_token=n_tok, tokens=d, seq=s,
        recompute=recompute, six_nd=six_nd, detailed=detailed, hardware=detailed + extra,
        hardware_nd=six_nd * (8.0 / 6.0 if recompute == "full" else 1.0),
        breakdown={**fwd, **bwd, "recompute": extra}, assumptions=tuple(assumptions + list(spec.assumptions)),
    )


def _layer_notes(spec: ModelSpec, s: int) -> list[str]:
    """What the per-group count did beyond plain attention, one sentence per kind."""
    out, groups = [], spec.layer_groups if spec.arch != "encoder-decoder" else ()
    windowed: dict[tuple[str, int], int] = {}
    for g in groups:
        m = g.attention
        if m is not None and m.kind != "full":
            windowed[(m.kind, m.window)] = windowed.get((m.kind, m.window), 0) + g.count
    for (kind, w), n in windowed.items():
        what = "window" if kind == "sliding" else "chunk"
        out.append(f"{n} {kind} layers: attention limited to their {what} of {w:,} tokens "
                   f"({keys_per_query(Attention(1, 1, 1, kind=kind, window=w), s):,.0f} keys per query, "
                   "the causal pairs in the window x 2 as for full layers)")
    mla = sum(g.count for g in groups if g.attention is not None and g.attention.is_mla)
    if mla:
        a = next(g.attention for g in groups if g.attention is not None and g.attention.is_mla)
        out.append(f"{mla} MLA layers: the projections q_a/q_b/kv_a/kv_b/o as matmuls (not absorbed); QK^T at "
                   f"qk head dim {a.head_dim}, AV at v head dim {a.d_v}")
    moe = [(g.count, g.ffn) for g in groups if isinstance(g.ffn, MoE)] if groups else []
    if moe:
        n, f = sum(c for c, _ in moe), moe[0][1]
        shared = " plus the shared expert" if f.shared_ffn else ""
        dense = sum(g.count for g in groups if g.ffn is not None and not isinstance(g.ffn, MoE))
        out.append(f"mixture-of-experts on {n} layers: {f.top_k} of {f.experts} routed experts act per token"
                   f"{shared} and the router" + (f"; {dense} dense layers" if dense else ""))
    elif spec.is_moe:
        out.append(f"mixture-of-experts: {spec.experts_per_token} of {spec.experts} experts act per token")
    rec = sum(g.count for g in groups if isinstance(g.mixer, (Mamba2, GatedDeltaNet)))
    if rec:
        out.append(f"{rec} recurrent layers (Mamba-2 / Gated DeltaNet): projections as matmuls, the state update "
                   "one multiply-add per state value per product (the recurrence, not the chunked kernels)")
    return out


def flops_budget(gpu, n_gpus: int, seconds: float, mfu: float, dtype: str = "bf16") -> float:
    """Model FLOPs that n_gpus deliver in `seconds` at utilisation `mfu` of the dense `dtype` peak.

    `gpu` is a GPU from the catalog or its name."""
    from llmplan.estimate.timecost import check_mfu, peak_for, resolve_gpu

    g = resolve_gpu(gpu)
    if not isinstance(n_gpus, int) or isinstance(n_gpus, bool) or n_gpus < 1:
        raise LlmplanError(f"number of GPUs must be a whole number of at least 1, got {n_gpus!r}")
    if not 0 < seconds < float("inf"):
        raise LlmplanError(f"time must be a finite number of seconds greater than zero, got {seconds!r}")
    return n_gpus * peak_for(g, dtype) * check_mfu(mfu) * seconds
