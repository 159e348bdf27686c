"""What one layer keeps for the backward pass, tensor by tensor (the terms that llmplan.estimate.activations adds up).

Korthikanti et al. 2022 section 4 lists a GPT layer's saved tensors; each term here is one of them, generalised by
shape (GQA, gated MLPs, flash attention, MLA, Mamba-2 / DeltaNet, MoE, cross-attention, LoRA). The module docstring
of llmplan.estimate.activations says which implementations ("fused", "pytorch", "pytorch-cuda") are modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llmplan.estimate.shapes import kv_heads_on_gpu
from llmplan.models.layers import Attention, LayerGroup, Mamba2, MoE
from llmplan.models.layers_v4 import CompressedAttention
from llmplan.models.spec import ModelSpec

ATTENTION = ("flash", "eager")
RECOMPUTE = ("none", "selective", "full")
IMPLS = ("fused", "pytorch", "pytorch-cuda")
FP32 = 4.0
INDEX = 8.0  # token ids and targets are int64


@dataclass(frozen=True)
class ActivationConfig:
    seq: int
    batch: int                          # micro-batch per GPU
    bytes_per_value: float = 2.0        # 2 for fp16/bf16 activations, 4 for fp32
    attention: str = "flash"
    recompute: str = "none"
    dropout: bool = True
    tp: int = 1
    sp: bool = False                    # sequence parallelism (Korthikanti et al. 2022, section 4.2.2)
    impl: str = "fused"
    loss_fp32: bool = True              # logits upcast to fp32 for the loss (Korthikanti: 4 s b v)
    lora_targets: tuple[str, ...] | None = None  # LoRA: modules with adapters; other linears are frozen
    lora_rank: int = 0
    encoder_seq: int | None = None      # encoder-decoder: encoder length (default: seq)
    residual_fp32: bool = False         # PyTorch autocast (AMP): fp32 residual stream, norms and softmax in fp32
    mask_bytes: float | None = None     # bytes per dropout-mask element; None: 1 (bool, CUDA's fused dropout), or
                                        # the activation dtype for "pytorch" (the CPU keeps the scaled noise)


@dataclass(frozen=True)
class Term:
    name: str
    bytes: float
    consumer: str = ""  # linear whose weight gradient alone keeps this tensor (dropped when frozen without adapter)


def dropout_mask_bytes(c: ActivationConfig) -> float:
    if c.mask_bytes is not None:
        return c.mask_bytes
    return c.bytes_per_value if c.impl == "pytorch" else 1.0


def _group(spec: ModelSpec, group: LayerGroup | None) -> LayerGroup:
    return group if group is not None else spec.layer_groups[0]


def _dims(spec: ModelSpec, c: ActivationConfig, g: LayerGroup) -> dict:
    """Per-GPU widths of one layer's tensors (tp splits heads and inner widths; KV heads replicate below tp)."""
    t = c.tp
    n = c.seq * c.batch
    d = dict(n=n, nr=n / t if c.sp else n, h=spec.hidden, p=c.bytes_per_value)
    m = g.attention
    if m is not None:
        kv = kv_heads_on_gpu(m.kv_heads, t)
        d.update(q=m.q_dim / t, k=kv * m.head_dim, v=kv * m.d_v, out=m.heads * m.d_v / t, a=m.heads / t)
        d["kv"] = d["k"]  # plain attention: K and V the same width
    return d


def norm_terms(spec: ModelSpec, c: ActivationConfig, name: str, nr: float, shared_input: bool = False) -> list[Term]:
    """A norm keeps its input and fp32 statistics (LayerNorm mean and rstd, RMSNorm rstd); PyTorch's F.rms_norm
    keeps an fp32 copy of its input and the fp32 normalised tensor instead."""
    h, p = spec.hidden, c.bytes_per_value
    stats = (8.0 if spec.norm == "layernorm" else 4.0) * nr
    if c.impl == "pytorch" and spec.norm == "rmsnorm":  # CPU: composite rms_norm
        kept = ([] if shared_input else [FP32 * nr * h]) + [FP32 * nr * h]
        return [Term(name, sum(kept)), Term(name + "_stats", stats)]
    r = FP32 if c.residual_fp32 else p  # autocast keeps the residual stream, hence every norm input, in fp32
    return ([] if shared_input else [Term(name, r * nr * h)]) + [Term(name + "_stats", stats)]


def _inner_norm(c: ActivationConfig, name: str, n: float, width: float) -> list[Term]:
    """An RMSNorm inside a mixer over `width` values per token (MLA's latent norms, QK-norm, a gated output norm):
    its input (kept where no other op keeps it) and fp32 rstd; the CPU composite keeps fp32 copies instead."""
    if c.impl == "pytorch":
        return [Term(name, 2 * FP32 * n * width), Term(name + "_stats", FP32 * n)]
    return [Term(name + "_stats", FP32 * n)]


def _core(spec: ModelSpec, c: ActivationConfig, d: dict, prefix: str, s_kv: int, n_kv: float, causal: bool,
          q: float, k: float, v: float, out: float, a: float, grouped: bool, rope: bool) -> list[Term]:
    """The attention core softmax(Q K^T) V and the output projection's input, for query/key width q/k, value v."""
    n, p = d["n"], d["p"]
    terms: list[Term] = []
    core_kept = c.recompute == "none"
    if c.attention == "eager" and core_kept:
        k_e, v_e = (q, out) if grouped else (k, v)  # K and V repeated to every query head before the matmuls
        terms += [Term(f"{prefix}_q", p * n * q), Term(f"{prefix}_k", p * n_kv * k_e),
                  Term(f"{prefix}_v", p * n_kv * v_e)]
        terms.append(Term(f"{prefix}_softmax", p * n * s_kv * a))  # 2 a s^2 b (Korthikanti)
        if c.residual_fp32:  # CUDA autocast runs softmax in fp32: its output, then a 16-bit copy for P V
            terms.append(Term(f"{prefix}_softmax_fp32", FP32 * n * s_kv * a))
        if c.dropout:
            terms += [Term(f"{prefix}_dropout_mask", dropout_mask_bytes(c) * n * s_kv * a),  # a s^2 b
                      Term(f"{prefix}_dropout_out", p * n * s_kv * a)]      # 2 a s^2 b
        if c.impl != "fused" and causal:
            terms.append(Term(f"{prefix}_causal_mask", 1.0 * c.seq * s_kv))  # bool
        terms.append(Term(f"{prefix}_out_proj_input", p * n * out, consumer="o"))
        return terms
    terms.append(Term(f"{prefix}_out_proj_input", p * n * out, consumer="" if core_kept else "o"))
    if core_kept:
        terms.append(Term(f"{prefix}_softmax_lse", FP32 * n * a))
        if c.impl == "pytorch" and rope:  # head-major output: transposed copy for the output projection
            terms.append(Term(f"{prefix}_out_proj_copy", p * n * out, consumer="o"))
    return terms


def _attention(spec: ModelSpec, c: ActivationConfig, d: dict, prefix: str, s_kv: int, n_kv: float,
               causal: bool, m: Attention) -> list[Term]:
    """Q/K/V, the attention core and the output projection's input (self- or cross-attention)."""
    if m.is_mla and prefix == "attn":
        return _mla(spec, c, d, m, causal)
    if m.sinks and c.impl == "pytorch":  # plain PyTorch has no fused kernel with sinks: the core runs as eager math
        c = replace(c, attention="eager")
    if isinstance(m, CompressedAttention) and prefix == "attn":
        return _compressed(spec, c, d, m, causal)
    n, p, q, kv, a = d["n"], d["p"], d["q"], d["kv"], d["a"]
    v = d["v"]
    rope = spec.position == "rotary" and m.rope and prefix == "attn"
    grouped = m.kv_heads < m.heads
    terms: list[Term] = []
    eager_kept = c.attention == "eager" and c.recompute == "none"
    if not eager_kept:
        # Flash attention (Dao et al. 2022) keeps Q, K, V, its output and the fp32 logsumexp, and replays dropout
        # from the RNG state; selective recomputation keeps the core's inputs only. Q, K, V are views of one fused
        # projection, so that storage is kept whole.
        if prefix == "attn":  # K-as-V layers project no V; KV-shared layers use an earlier layer's K and V
            own_kv = 0.0 if m.kv_shared else kv + (0.0 if m.k_eq_v else v)
            terms.append(Term("attn_qkv", p * n * (q * (2 if m.output_gate else 1) + own_kv)))
        else:
            terms += [Term(f"{prefix}_q", p * n * q), Term(f"{prefix}_kv", p * n_kv * (kv + v))]
        if rope:  # rotated Q and K are new tensors; V's view keeps the fused QKV storage alive
            terms.append(Term("attn_rotary_qk", p * n * (q + kv)))
        elif m.qk_norm and prefix == "attn":  # normalised Q and K are new tensors the core keeps
            terms.append(Term("attn_normed_qk", p * n * (q + kv)))
    if m.qk_norm and prefix == "attn":  # QK-norm (Qwen3, Gemma 3: per head; OLMo 2: whole projections)
        terms += _inner_norm(c, "attn_qk_norm", n, q + kv)
    terms += _core(spec, c, d, prefix, s_kv, n_kv, causal, q, kv, v, d["out"], a, grouped, rope)
    if m.output_gate and prefix == "attn":  # out = core * sigmoid(gate) (Qwen3-Next): sigmoid's output and the core
        terms += [Term("attn_gate_sigmoid", p * n * d["out"]), Term("attn_gated_core", p * n * d["out"])]
    if c.impl != "fused" and rope and p != FP32:
        terms.append(Term("attn_rotary_tables", 2 * c.seq * m.head_dim * p))  # cos/sin cast per call
    return terms


def _compressed(spec: ModelSpec, c: ActivationConfig, d: dict, m: CompressedAttention, causal: bool) -> list[Term]:
    """DeepSeek-V4 attention in training, by the same rule (each op keeps the inputs its backward needs): q_a's
    output feeds its norm, the normed latent q_b and the indexer's q_b; q_b's output feeds the weightless per-head
    norm, kv_proj's its norm; the core keeps the rotated Q and the one K = V head over the window and the compressed
    entries; its output is kept by the inverse rotation, then copied for o_a; o_a's group outputs feed o_b. A compressor keeps its kv and gate projections (the pooling's inputs); CSA's
    indexer its own, its query and head weights (its score matrix is recomputed, not kept, as the core's is)."""
    n, p, t = d["n"], d["p"], c.tp
    heads = m.heads / t
    q, kv, lat = heads * m.head_dim, float(m.head_dim), m.q_lora_rank
    terms = [Term("v4_q_latent", p * n * lat)] + _inner_norm(c, "v4_q_norm", n, lat)
    terms += [Term("v4_q_latent_normed", p * n * lat, consumer="q"), Term("v4_q_heads", p * n * q)]
    terms += [Term("v4_q_head_norm_stats", FP32 * n * heads), Term("v4_kv", p * n * kv)]
    terms += _inner_norm(c, "v4_kv_norm", n, kv)
    terms.append(Term("attn_rotary_qk", p * n * (q + kv)))
    if m.compress_ratio:
        width = kv * (2 if m.sparse else 1)
        terms.append(Term("v4_compressor_kv_gate", p * n * 2 * width))
    if m.sparse:
        terms += [Term("v4_indexer_kv_gate", p * n * 4 * m.index_head_dim),
                  Term("v4_indexer_q", p * n * m.index_heads * m.index_head_dim),
                  Term("v4_indexer_weights", FP32 * n * m.index_heads)]
    keys = c.seq + m.compressed_entries(c.seq)  # eager math: the windowed mask over the sequence, then the entries
    terms += _core(spec, c, d, "attn", keys, n, causal, q, kv, kv, q, heads, True, True)
    # the core's output, kept by the rotation that undoes V's rotary part (then o_a's input, counted by _core)
    terms.append(Term("v4_core_out", p * n * q))
    terms.append(Term("v4_o_groups", p * n * m.o_groups * m.o_lora_rank / t, consumer="o"))
    return terms


def hyper_terms(c: ActivationConfig, name: str, nr: float, h: int, streams: int) -> list[Term]:
    """One hyper-connection (DeepseekV4HyperConnection, in fp32): the streams it collapses and mixes, their
    flattened RMS-normed copy for fn's backward and its rstd, and the pre / post / comb weights."""
    r = FP32 if c.residual_fp32 else c.bytes_per_value
    return [Term(f"{name}_streams", r * nr * streams * h), Term(f"{name}_normed", FP32 * nr * streams * h),
            Term(f"{name}_stats", FP32 * nr), Term(f"{name}_weights", FP32 * nr * (2 + streams) * streams)]


def _mla(spec: ModelSpec, c: ActivationConfig, d: dict, m: Attention, causal: bool) -> list[Term]:
    """Multi-head latent attention in training (DeepSeek-V2 section 2.1, not absorbed): an extension of
    Korthikanti's accounting by the same rule (each op keeps the inputs its backward needs). q_a's output feeds its
    norm, the normed latent q_b; kv_a's output (latent and shared rotary key) feeds kv_a_layernorm and the rotary
    embedding, the normed latent kv_b; kv_b's output holds K's non-rotary part and V (V is a view: kept whole); the
    core keeps the assembled Q and K (heads x (qk_nope + qk_rope)), V, its output and the logsumexp."""
    n, p, t = d["n"], d["p"], c.tp
    heads = m.heads / t
    nope = m.head_dim - m.qk_rope_head_dim
    terms: list[Term] = []
    if m.q_lora_rank:
        terms += [Term("mla_q_latent", p * n * m.q_lora_rank)] + _inner_norm(c, "mla_q_norm", n, m.q_lora_rank)
        terms.append(Term("mla_q_latent_normed", p * n * m.q_lora_rank, consumer="q"))
    terms += [Term("mla_kv_latent", p * n * (m.kv_lora_rank + m.qk_rope_head_dim))]
    terms += _inner_norm(c, "mla_kv_norm", n, m.kv_lora_rank)
    terms.append(Term("mla_kv_latent_normed", p * n * m.kv_lora_rank, consumer="kv"))
    q = k = heads * m.head_dim
    v = heads * m.d_v
    padded = c.impl != "fused" and m.d_v < m.head_dim and c.attention == "flash"
    if padded:
        # PyTorch's flash kernels need one head dim for Q, K and V: V is padded to the qk head dim and the output
        # sliced (as transformers does for flash_attention_2), so V and the output are kept at qk width and the
        # output projection reads a copy of the sliced output
        terms += [Term("mla_q", p * n * q), Term("mla_k", p * n * k), Term("mla_v_padded", p * n * q)]
        if c.recompute == "none":
            terms += [Term("attn_out_padded", p * n * q), Term("attn_softmax_lse", FP32 * n * heads)]
        terms.append(Term("attn_out_proj_input", p * n * v, consumer="o"))
        return terms
    if c.attention != "eager" or c.recompute != "none":
        terms += [Term("mla_q", p * n * q), Term("mla_k", p * n * k),
                  Term("mla_kv_up", p * n * heads * (nope + m.d_v))]  # V is a view of kv_b's output
    rope = spec.position == "rotary" and m.rope
    terms += _core(spec, c, d, "attn", c.seq, n, causal, q, k, v, v, heads, False, rope)
    return terms


def _recurrent(spec: ModelSpec, c: ActivationConfig, d: dict, m) -> list[Term]:
    """Mamba-2 / Gated DeltaNet mixers, an extension where Korthikanti has no formula: the in_proj output (its
    views z, x, B, C, dt or q, k, v, z, b, a keep it whole), the depthwise conv's output and the SiLU's output (the
    scan's x, B, C or q, k, v: what mamba_ssm's mamba_chunk_scan_combined and fla's chunk_gated_delta_rule save;
    chunk states are recomputed in their backward), the scan output and the gated RMSNorm's input, and the norm's
    output (out_proj's input)."""
    n, p, t = d["n"], d["p"], c.tp
    if isinstance(m, Mamba2):
        proj = (2 * m.inner + 2 * m.groups * m.state + m.heads) / t
        conv, inner, heads = m.conv_dim / t, m.inner / t, m.heads / t
        extra = []
    else:
        key, value = m.k_heads * m.k_head_dim / t, m.v_heads * m.v_head_dim / t
        proj = (2 * key + 2 * value + 2 * m.v_heads / t)
        conv, inner, heads = m.conv_dim / t, value, m.v_heads / t
        extra = [Term("deltanet_qk_l2norm", p * n * 2 * key), Term("deltanet_gate_beta", 2 * FP32 * n * heads)]
    return ([Term("mixer_in_proj_out", p * n * proj), Term("mixer_conv_out", p * n * conv),
             Term("mixer_conv_act", p * n * conv)] + extra
            + [Term("mixer_scan_out", p * n * inner)] + _inner_norm(c, "mixer_norm", n, inner)
            + [Term("mixer_out_proj_input", p * n * inner, consumer="out_proj")])


def _ffn_terms(c: ActivationConfig, d: dict, prefix: str, f: float, gated: bool, act: str, k: float) -> list[Term]:
    """One MLP's inner tensors for k x n tokens: gate/up outputs, activation, product (Shazeer 2020)."""
    n, p = d["n"] * k, d["p"]
    if gated:  # act(x W_gate) * (x W_up), W_down
        return [Term(f"{prefix}_gate_up", 2 * p * n * f),        # gate kept by act(), up by the product
                Term(f"{prefix}_act_out", p * n * f),            # kept by the product
                Term(f"{prefix}_product", p * n * f, consumer="down")]
    if act == "relu":  # ReLU keeps its output, which is also the down projection's input
        return [Term(f"{prefix}_act_out", p * n * f)]
    if act == "relu2":  # squared ReLU: relu's output kept by the square, the square's output by down
        return [Term(f"{prefix}_act_in", p * n * f), Term(f"{prefix}_act_out", p * n * f, consumer="down")]
    # GELU/SiLU keep their input; the down projection keeps the activation's output (8 s b h each for 4h)
    return [Term(f"{prefix}_act_in", p * n * f), Term(f"{prefix}_act_out", p * n * f, consumer="down")]


def _mlp(spec: ModelSpec, c: ActivationConfig, d: dict, ffn) -> list[Term]:
    n, nr, p, h, t = d["n"], d["nr"], d["p"], d["h"], c.tp
    act = spec.activation.lower()
    terms: list[Term] = []
    if isinstance(ffn, MoE):  # router: top-k ids and weights; each token's input gathered for each of its k experts
        k, width = ffn.top_k, ffn.latent or h
        terms += [Term("mlp_router", n * k * (INDEX + p)), Term("mlp_expert_inputs", k * p * n * width, consumer="up")]
        if ffn.latent:  # hidden -> latent before the experts, latent -> hidden after (its input kept)
            terms += [Term("mlp_latent_in", p * n * width), Term("mlp_latent_out", p * n * width)]
        terms += _ffn_terms(c, d, "mlp", ffn.expert_ffn / t, ffn.gated, act, k)
        # each expert's output is scaled by its routing probability, which keeps it for the router's gradient
        # (transformers' experts loop; Megatron-Core's unpermute); plain PyTorch's index_add keeps it once more
        terms.append(Term("mlp_expert_outputs", k * p * n * width))
        if c.impl == "pytorch":
            terms.append(Term("mlp_scatter", k * n * (p * width + 2 * INDEX)))
        if ffn.shared_ffn:  # the shared expert sees every token (DeepSeekMoE): a dense MLP beside the experts
            terms += _ffn_terms(c, d, "mlp_shared", ffn.shared_ffn / t, ffn.gated, act, 1)
    else:
        terms += _ffn_terms(c, d, "mlp", ffn.ffn / t, ffn.gated, act, 1)
    terms.insert(0, Term("mlp_input", p * nr * h, consumer="router" if isinstance(ffn, MoE) else "up"))
    return terms


def layer_terms(spec: ModelSpec, c: ActivationConfig, cross: bool = False,
                group: LayerGroup | None = None) -> list[Term]:
    """Saved tensors of one layer of `group` (default: the first) on one GPU, for one micro-batch (cross: a decoder
    layer with cross-attention in an encoder-decoder model)."""
    g = _group(spec, group)
    d = _dims(spec, c, g)
    nr, p, h = d["nr"], d["p"], d["h"]
    if c.recompute == "full":  # only the layer input is kept (hyper-connections: all its streams)
        return [Term("layer_input", (FP32 if c.residual_fp32 else p) * nr * h * max(g.hyper, 1))]
    parts = (g.mixer is not None) + (g.ffn is not None)
    n_apps = (parts if g.norms in (1, 2) else g.norms) if g.norms else 0
    terms: list[Term] = []
    m = g.mixer
    if m is not None:
        if g.hyper:
            terms += hyper_terms(c, "hc_attn", nr, h, g.hyper)
        if n_apps:
            terms += norm_terms(spec, c, "norm_attn", nr)
        terms.append(Term("attn_input", p * nr * h, consumer="qkv" if isinstance(m, Attention) else "in_proj"))
        if isinstance(m, Attention):
            terms += _attention(spec, c, d, "attn", c.seq, d["n"], spec.position not in ("alibi",)
                                and not spec.relative_buckets and spec.arch != "encoder", m)
        else:
            terms += _recurrent(spec, c, d, m)
        if c.dropout:
            terms.append(Term("attn_residual_dropout_mask", dropout_mask_bytes(c) * nr * h))
    if cross and isinstance(m, Attention):
        enc = c.encoder_seq or c.seq
        terms += norm_terms(spec, c, "norm_cross", nr)
        terms.append(Term("cross_input", p * nr * h, consumer="q"))
        terms += _attention(spec, c, d, "cross", enc, enc * c.batch, False, m)
        if c.dropout:
            terms.append(Term("cross_residual_dropout_mask", dropout_mask_bytes(c) * nr * h))
    if g.ffn is not None:
        if g.hyper:
            terms += hyper_terms(c, "hc_ffn", nr, h, g.hyper)
        if n_apps:
            terms += norm_terms(spec, c, "norm_mlp", nr, shared_input=spec.parallel_layers)
        terms += _mlp(spec, c, d, g.ffn)
        if c.dropout:
            terms.append(Term("mlp_residual_dropout_mask", dropout_mask_bytes(c) * nr * h))
    for i in range(max(n_apps - parts, 0)):  # sandwich norms after the attention / MLP outputs
        terms += norm_terms(spec, c, f"norm_post_{i}", nr)
    if c.lora_targets is not None:
        terms = _lora(spec, c, d, terms, cross, g)
    return terms


def _lora(spec: ModelSpec, c: ActivationConfig, d: dict, terms: list[Term], cross: bool,
          g: LayerGroup) -> list[Term]:
    """LoRA (Hu et al. 2021): a frozen linear without an adapter needs its input for no gradient, so autograd keeps
    it only if another op does; each adapter keeps its down-projection's output (r values per token)."""
    from llmplan.estimate.shapes import group_linears

    targets = set(c.lora_targets or ())
    needs = {"qkv": {"q", "k", "v"}, "q": {"q"}, "kv": {"k", "v"}, "o": {"o"}, "up": {"gate", "up"},
             "down": {"down"}, "router": {"router"}, "head": set(), "in_proj": {"in_proj"},
             "out_proj": {"out_proj"}}
    kept = [t for t in terms if not t.consumer or needs.get(t.consumer, set()) & targets]
    top_k = g.ffn.top_k if isinstance(g.ffn, MoE) else 1
    n_mods = sum((top_k if m.kind == "expert" else 1) for m in group_linears(LayerGroup(1, g.mixer, g.ffn, g.norms),
                                                                              spec.hidden)
                 if m.kind != "router" and m.name != "indexer" and m.targeted(targets))
    if cross and targets & {"q", "k", "v", "o"}:
        n_mods += 4
    kept.append(Term("lora_intermediates", n_mods * d["p"] * d["n"] * c.lora_rank))
    return kept
