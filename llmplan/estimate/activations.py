"""Activation memory: the tensors a training step keeps from the forward pass for the backward pass.

Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models", section 4) count, per GPT
layer with 16-bit activations and dropout, s b h (34 + 5 a s / h) bytes; tensor parallelism t with sequence
parallelism divides all of it by t; selective recomputation (the attention core recomputed) leaves 34 s b h / t;
full recomputation keeps the layer input, 2 s b h. This module lists the same tensors one by one, each as a term,
so that the formula follows for a GPT layer exactly and generalises by shape: grouped-query attention (smaller K and
V), gated MLPs, any feed-forward size, flash attention (no s x s scores, a logsumexp kept), no dropout (no masks),
cross-attention, rotary embeddings, mixture-of-experts and LoRA. Norm statistics (fp32 mean/rstd per token), which
the paper leaves out, are separate terms ending in "_stats".

Implementations modelled (ActivationConfig.impl): "fused" is the paper's accounting (fused norm kernels that keep
their input; flash output laid out so the output projection reads it without a copy); "pytorch" is the same model
written with plain PyTorch ops, as llmplan's bench model is, run on the CPU (F.rms_norm keeps fp32 copies; the
rotated query is head-major, so the attention output is copied before the output projection; eager attention keeps
its bool causal mask; dropout keeps its noise in the activation dtype). Both are checked against counted saved
tensors (tests/test_memory_measured.py). "pytorch-cuda" is that model on a GPU, inferred from PyTorch's CUDA kernels
rather than measured here: F.rms_norm dispatches to a fused kernel that keeps its input and rstd, the flash kernel
writes its output sequence-major (no copy), dropout keeps a bool mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from llmplan.errors import LlmplanError
from llmplan.estimate.shapes import ceil_div, kv_heads_on_gpu
from llmplan.models.layers import Attention, LayerGroup, Mamba2, MoE
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


def _mask(c: ActivationConfig) -> float:
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


def _norm(spec: ModelSpec, c: ActivationConfig, name: str, nr: float, shared_input: bool = False) -> list[Term]:
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
            terms += [Term(f"{prefix}_dropout_mask", _mask(c) * n * s_kv * a),  # a s^2 b
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
    if c.recompute == "full":  # only the layer input is kept; the layer is recomputed in the backward pass
        return [Term("layer_input", (FP32 if c.residual_fp32 else p) * nr * h)]
    parts = (g.mixer is not None) + (g.ffn is not None)
    n_apps = (parts if g.norms in (1, 2) else g.norms) if g.norms else 0
    terms: list[Term] = []
    m = g.mixer
    if m is not None:
        if n_apps:
            terms += _norm(spec, c, "norm_attn", nr)
        terms.append(Term("attn_input", p * nr * h, consumer="qkv" if isinstance(m, Attention) else "in_proj"))
        if isinstance(m, Attention):
            terms += _attention(spec, c, d, "attn", c.seq, d["n"], spec.position not in ("alibi",)
                                and not spec.relative_buckets and spec.arch != "encoder", m)
        else:
            terms += _recurrent(spec, c, d, m)
        if c.dropout:
            terms.append(Term("attn_residual_dropout_mask", _mask(c) * nr * h))
    if cross and isinstance(m, Attention):
        enc = c.encoder_seq or c.seq
        terms += _norm(spec, c, "norm_cross", nr)
        terms.append(Term("cross_input", p * nr * h, consumer="q"))
        terms += _attention(spec, c, d, "cross", enc, enc * c.batch, False, m)
        if c.dropout:
            terms.append(Term("cross_residual_dropout_mask", _mask(c) * nr * h))
    if g.ffn is not None:
        if n_apps:
            terms += _norm(spec, c, "norm_mlp", nr, shared_input=spec.parallel_layers)
        terms += _mlp(spec, c, d, g.ffn)
        if c.dropout:
            terms.append(Term("mlp_residual_dropout_mask", _mask(c) * nr * h))
    for i in range(max(n_apps - parts, 0)):  # sandwich norms after the attention / MLP outputs
        terms += _norm(spec, c, f"norm_post_{i}", nr)
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


@dataclass(frozen=True)
class ActivationEstimate:
    layer_bytes: float            # one self-attention layer, one micro-batch
    cross_layer_bytes: float      # one decoder layer with cross-attention (0 unless encoder-decoder)
    embedding_bytes: float        # token ids, positions, embedding dropout mask (first stage)
    head_bytes: float             # final norm, head input, log-probabilities, targets (last stage)
    logits_transient_bytes: float  # logits and their fp32 copy while the loss is formed (last stage)
    recompute_transient_bytes: float  # the one layer rematerialised during the backward pass
    first_stage_bytes: float      # everything the first pipeline stage keeps at its peak
    last_stage_bytes: float
    microbatches_in_flight: int
    terms: tuple[Term, ...] = field(default=(), hash=False)  # one layer's terms, for the breakdown
    layer_kinds: tuple[tuple[str, int, float], ...] = ()  # (group_label, layers, bytes per layer) when they differ


def layer_bytes(spec: ModelSpec, c: ActivationConfig, cross: bool = False, group: LayerGroup | None = None) -> float:
    return sum(t.bytes for t in layer_terms(spec, c, cross, group))


def group_label(g: LayerGroup) -> str:
    """'sliding attention + MLP', 'MLA + MoE', 'Mamba-2', 'MLP-only': what a layer of the group is made of."""
    m, f = g.mixer, g.ffn
    if isinstance(m, Attention):
        mixer = "MLA" if m.is_mla else f"{m.kind} attention"
    else:
        mixer = {Mamba2: "Mamba-2"}.get(type(m), "Gated DeltaNet" if m is not None else "")
    ffn = "MoE" if isinstance(f, MoE) else ("MLP" if f is not None else "")
    return " + ".join(x for x in (mixer, ffn) if x) if mixer else "MLP-only"


def group_layer_bytes(spec: ModelSpec, c: ActivationConfig) -> list[tuple[LayerGroup, float]]:
    """One layer's saved bytes for each layer group, in order."""
    return [(g, layer_bytes(spec, c, group=g)) for g in spec.layer_groups]


def _rope_dim(spec: ModelSpec) -> int:
    m = next((g.attention for g in spec.layer_groups if g.attention is not None), None)
    if m is None:
        return 0
    return m.qk_rope_head_dim if m.is_mla else m.head_dim


def check_activation_config(spec: ModelSpec, c: ActivationConfig) -> None:
    if c.attention not in ATTENTION:
        raise LlmplanError(f"unknown attention {c.attention!r}; accepted: {', '.join(ATTENTION)}")
    if c.recompute not in RECOMPUTE:
        raise LlmplanError(f"unknown recompute {c.recompute!r}; accepted: {', '.join(RECOMPUTE)}")
    if c.impl not in IMPLS:
        raise LlmplanError(f"unknown implementation {c.impl!r}; accepted: {', '.join(IMPLS)}")
    if c.seq < 1 or c.batch < 1:
        raise LlmplanError(f"sequence and batch must be at least 1, got seq {c.seq}, batch {c.batch}")


def activation_memory(spec: ModelSpec, c: ActivationConfig, pp: int = 1) -> ActivationEstimate:
    """Activations per GPU for training: layers, embeddings, logits/loss; first and last pipeline stage.

    Pipeline parallelism with the 1F1B schedule (Narayanan et al. 2021): the first stage holds pp micro-batches in
    flight, each for its layers / pp layers, i.e. as much as all layers of one micro-batch (Korthikanti, section 4.2.3).
    """
    check_activation_config(spec, c)
    n, p, h = c.seq * c.batch, c.bytes_per_value, spec.hidden
    nr = n / c.tp if c.sp else n
    terms = layer_terms(spec, c)
    encdec = spec.arch == "encoder-decoder"
    cross = layer_bytes(spec, c, cross=True) if encdec else 0.0
    stage_layers = [0.0] * pp  # each stage's layers, one micro-batch (layers split evenly, in order)
    if encdec:
        enc = c.encoder_seq or c.seq
        enc_layer = layer_bytes(spec, replace(c, seq=enc))
        stack = spec.encoder_layers * enc_layer + spec.layers * cross + p * enc * c.batch * h  # encoder output
        stage_layers = [stack / pp] * pp
        per_layer = sum(t.bytes for t in terms)
        kinds = ()
    else:
        per_group = group_layer_bytes(spec, c)
        flat = [b for g, b in per_group for _ in range(g.count)]
        merged: dict[tuple[str, float], int] = {}
        for g, b in per_group:
            merged[(group_label(g), b)] = merged.get((group_label(g), b), 0) + g.count
        kinds = tuple((label, n_layers, b) for (label, b), n_layers in merged.items()) if len(merged) > 1 else ()
        stack = sum(flat)
        per_layer = stack / len(flat)  # the mean layer (every layer when they are equal)
        size = len(flat) // pp
        stage_layers = [sum(flat[k * size:(k + 1) * size]) for k in range(pp)]
    embedding = INDEX * n * (2 if encdec else 1)
    if spec.position == "learned":
        embedding += INDEX * c.seq  # position ids
    if c.dropout:
        embedding += _mask(c) * nr * h * (2 if encdec else 1)
    if c.impl != "fused" and spec.position == "rotary" and p == FP32:
        embedding += FP32 * c.seq * (spec.d_head if encdec else _rope_dim(spec))  # cos/sin, shared by every layer
    vocab = ceil_div(spec.vocab, c.tp)  # the output layer is split over the vocabulary (Megatron)
    head = INDEX * n + (FP32 if c.loss_fp32 else p) * n * vocab  # targets; log-probabilities (4 s b v)
    if c.lora_targets is None:
        head += p * nr * h  # output layer input (frozen under LoRA: not kept)
    if spec.final_norm:
        head += sum(t.bytes for t in _norm(spec, c, "final_norm", nr))
    logits = p * n * vocab + (FP32 * n * vocab if c.loss_fp32 and p != FP32 else 0.0)
    if c.recompute in ("full", "selective"):  # the largest layer rematerialised in the backward pass
        full = replace(c, recompute="none")
        groups = [None] if encdec else list(spec.layer_groups)
        transient = max(layer_bytes(spec, full, cross=encdec and c.recompute == "full", group=g)
                        - (0.0 if c.recompute == "full" else layer_bytes(spec, c, group=g)) for g in groups)
    else:
        transient = 0.0
    # 1F1B (Narayanan et al. 2021): stage k holds pp - k micro-batches in flight; the first stage the most
    first = pp * (embedding + stage_layers[0]) + transient
    last = stage_layers[-1] + head + logits + transient
    if pp == 1:
        first = last = embedding + stack + head + logits + transient
    return ActivationEstimate(
        layer_bytes=per_layer, cross_layer_bytes=cross, embedding_bytes=embedding, head_bytes=head,
        logits_transient_bytes=logits, recompute_transient_bytes=transient, first_stage_bytes=first,
        last_stage_bytes=last, microbatches_in_flight=pp, terms=tuple(terms), layer_kinds=kinds)


def saved_bytes(spec: ModelSpec, c: ActivationConfig) -> float:
    """Bytes saved for backward by one forward pass of the whole model (no pipeline, no transients): the quantity
    that counting saved tensors measures."""
    a = activation_memory(spec, c)
    return a.first_stage_bytes - a.logits_transient_bytes - a.recompute_transient_bytes


def inference_activation_bytes(spec: ModelSpec, seq: int, batch: int, p: float, attention: str = "flash",
                               tp: int = 1) -> float:
    """Peak transient memory of a prefill of `seq` tokens in one chunk (no gradients: nothing is kept between
    layers): the residual stream and norm output, then the largest phase of any layer (attention: Q, K, V, output,
    and the s x s scores with eager attention; MLA: its latents too; recurrent mixers: in_proj output, conv and scan
    outputs; MLP: inner tensors, one expert's width per token for MoE), plus fp32 logits of the
    last position of each sequence."""
    n = seq * batch
    h = spec.hidden
    phases = [0.0]
    if spec.arch == "encoder-decoder":
        q, f = spec.q_dim / tp, spec.ffn / tp
        kv = kv_heads_on_gpu(spec.n_kv_heads, tp) * spec.d_head
        phases += [p * n * (q + 2 * kv + q) + (p * n * seq * spec.heads / tp if attention == "eager" else 0.0),
                   p * n * f * (3 if spec.mlp == "gated" else 2)]
    for g in spec.layer_groups if spec.arch != "encoder-decoder" else ():
        m, f = g.mixer, g.ffn
        if isinstance(m, Attention):
            kv = kv_heads_on_gpu(m.kv_heads, tp)
            width = m.q_dim / tp + kv * (m.head_dim + m.d_v) + m.heads * m.d_v / tp
            if m.is_mla:  # latents, then K and V expanded per head
                width = (m.q_lora_rank + m.kv_lora_rank + m.qk_rope_head_dim
                         + m.heads * (2 * m.head_dim + 2 * m.d_v) / tp)
            phases.append(p * n * width + (p * n * seq * m.heads / tp if attention == "eager" else 0.0))
        elif m is not None:
            inner = m.inner if isinstance(m, Mamba2) else m.v_heads * m.v_head_dim
            phases.append(p * n * (m.params(h) / h + 2 * m.conv_dim + 2 * inner) / tp)  # in_proj width ~ params/h
        if isinstance(f, MoE):  # experts run one after another over their tokens (k n rows over E experts; fused
            # kernels in chunks), the shared expert apart: about one expert's width per token at a time
            phases.append(p * n * max(f.expert_ffn, f.shared_ffn) / tp * (3 if f.gated else 2))
        elif f is not None:
            phases.append(p * n * f.ffn / tp * (3 if f.gated else 2))
    return p * n * 2 * h + max(phases) + FP32 * batch * spec.vocab
