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
from llmplan.estimate.shapes import ceil_div, kv_heads_per_gpu
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


def _dims(spec: ModelSpec, c: ActivationConfig) -> dict:
    t = c.tp
    n = c.seq * c.batch
    return dict(n=n, nr=n / t if c.sp else n, h=spec.hidden, p=c.bytes_per_value, q=spec.q_dim / t,
                kv=kv_heads_per_gpu(spec, t) * spec.d_head, a=spec.heads / t, f=spec.ffn / t)


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


def _attention(spec: ModelSpec, c: ActivationConfig, d: dict, prefix: str, s_kv: int, n_kv: float,
               causal: bool) -> list[Term]:
    """Q/K/V, the attention core and the output projection's input (self- or cross-attention)."""
    n, p, q, kv, a = d["n"], d["p"], d["q"], d["kv"], d["a"]
    rope = spec.position == "rotary" and prefix == "attn"
    grouped = spec.n_kv_heads < spec.heads
    terms: list[Term] = []
    core_kept = c.recompute == "none"
    if c.attention == "eager" and core_kept:
        kv_e = q if grouped else kv  # K and V repeated to every query head before the score matmul
        terms += [Term(f"{prefix}_q", p * n * q), Term(f"{prefix}_k", p * n_kv * kv_e),
                  Term(f"{prefix}_v", p * n_kv * kv_e)]
        terms.append(Term(f"{prefix}_softmax", p * n * s_kv * a))  # 2 a s^2 b (Korthikanti)
        if c.residual_fp32:  # CUDA autocast runs softmax in fp32: its output, then a 16-bit copy for P V
            terms.append(Term(f"{prefix}_softmax_fp32", FP32 * n * s_kv * a))
        if c.dropout:
            terms += [Term(f"{prefix}_dropout_mask", _mask(c) * n * s_kv * a),  # a s^2 b
                      Term(f"{prefix}_dropout_out", p * n * s_kv * a)]      # 2 a s^2 b
        if c.impl != "fused" and causal:
            terms.append(Term(f"{prefix}_causal_mask", 1.0 * c.seq * s_kv))  # bool
        terms.append(Term(f"{prefix}_out_proj_input", p * n * q, consumer="o"))
    else:
        # Flash attention (Dao et al. 2022) keeps Q, K, V, its output and the fp32 logsumexp, and replays dropout
        # from the RNG state; selective recomputation keeps the core's inputs only. Q, K, V are views of one fused
        # projection, so that storage is kept whole.
        if prefix == "attn":
            terms.append(Term("attn_qkv", p * n * (q + 2 * kv)))
        else:
            terms += [Term(f"{prefix}_q", p * n * q), Term(f"{prefix}_kv", p * n_kv * 2 * kv)]
        if rope:  # rotated Q and K are new tensors; V's view keeps the fused QKV storage alive
            terms.append(Term("attn_rotary_qk", p * n * (q + kv)))
        terms.append(Term(f"{prefix}_out_proj_input", p * n * q, consumer="" if core_kept else "o"))
        if core_kept:
            terms.append(Term(f"{prefix}_softmax_lse", FP32 * n * a))
            if c.impl == "pytorch" and rope:  # head-major output: transposed copy for the output projection
                terms.append(Term(f"{prefix}_out_proj_copy", p * n * q, consumer="o"))
    if c.impl != "fused" and rope and p != FP32:
        terms.append(Term("attn_rotary_tables", 2 * c.seq * spec.d_head * p))  # cos/sin cast per call
    return terms


def _mlp(spec: ModelSpec, c: ActivationConfig, d: dict) -> list[Term]:
    n, nr, p, f, h = d["n"], d["nr"], d["p"], d["f"], d["h"]
    k = spec.experts_per_token if spec.is_moe else 1
    act = spec.activation.lower()
    terms: list[Term] = []
    if spec.is_moe:  # router: top-k ids and weights; each token's input gathered for each of its k experts
        terms += [Term("mlp_router", n * k * (INDEX + p)), Term("mlp_expert_inputs", k * p * n * h, consumer="up")]
    if spec.mlp == "gated":  # act(x W_gate) * (x W_up), W_down (Shazeer 2020)
        terms += [Term("mlp_gate_up", k * 2 * p * n * f),        # gate kept by act(), up by the product
                  Term("mlp_act_out", k * p * n * f),            # kept by the product
                  Term("mlp_product", k * p * n * f, consumer="down")]
    elif act == "relu":  # ReLU keeps its output, which is also the down projection's input
        terms.append(Term("mlp_act_out", k * p * n * f))
    else:  # GELU/SiLU keep their input; the down projection keeps the activation's output (8 s b h each for 4h)
        terms += [Term("mlp_act_in", k * p * n * f), Term("mlp_act_out", k * p * n * f, consumer="down")]
    terms.insert(0, Term("mlp_input", p * nr * h, consumer="router" if spec.is_moe else "up"))
    return terms


def layer_terms(spec: ModelSpec, c: ActivationConfig, cross: bool = False) -> list[Term]:
    """Saved tensors of one transformer layer on one GPU, for one micro-batch (cross: a decoder layer with
    cross-attention in an encoder-decoder model)."""
    d = _dims(spec, c)
    nr, p, h = d["nr"], d["p"], d["h"]
    if c.recompute == "full":  # only the layer input is kept; the layer is recomputed in the backward pass
        return [Term("layer_input", (FP32 if c.residual_fp32 else p) * nr * h)]
    n_apps = 2 if spec.norms_per_layer in (1, 2) else spec.norms_per_layer
    terms: list[Term] = []
    if n_apps:
        terms += _norm(spec, c, "norm_attn", nr)
    terms.append(Term("attn_input", p * nr * h, consumer="qkv"))
    terms += _attention(spec, c, d, "attn", c.seq, d["n"], causal=spec.position not in ("alibi",)
                        and not spec.relative_buckets)
    if c.dropout:
        terms.append(Term("attn_residual_dropout_mask", _mask(c) * nr * h))
    if cross:
        enc = c.encoder_seq or c.seq
        terms += _norm(spec, c, "norm_cross", nr)
        terms.append(Term("cross_input", p * nr * h, consumer="q"))
        terms += _attention(spec, c, d, "cross", enc, enc * c.batch, causal=False)
        if c.dropout:
            terms.append(Term("cross_residual_dropout_mask", _mask(c) * nr * h))
    if n_apps:
        terms += _norm(spec, c, "norm_mlp", nr, shared_input=spec.parallel_layers)
    terms += _mlp(spec, c, d)
    if c.dropout:
        terms.append(Term("mlp_residual_dropout_mask", _mask(c) * nr * h))
    for i in range(max(n_apps - 2, 0)):  # sandwich norms after the attention / MLP outputs
        terms += _norm(spec, c, f"norm_post_{i}", nr)
    if c.lora_targets is not None:
        terms = _lora(spec, c, d, terms, cross)
    return terms


def _lora(spec: ModelSpec, c: ActivationConfig, d: dict, terms: list[Term], cross: bool) -> list[Term]:
    """LoRA (Hu et al. 2021): a frozen linear without an adapter needs its input for no gradient, so autograd keeps
    it only if another op does; each adapter keeps its down-projection's output (r values per token)."""
    targets = set(c.lora_targets or ())
    needs = {"qkv": {"q", "k", "v"}, "q": {"q"}, "o": {"o"}, "up": {"gate", "up"}, "down": {"down"},
             "router": {"router"}, "head": set()}
    kept = [t for t in terms if not t.consumer or needs.get(t.consumer, set()) & targets]
    present = [m for m in ("q", "k", "v", "o", "up", "down") if m in targets]
    if spec.mlp == "gated" and "gate" in targets:
        present.append("gate")
    n_mods = len(present) + (4 if cross and targets & {"q", "k", "v", "o"} else 0)
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


def layer_bytes(spec: ModelSpec, c: ActivationConfig, cross: bool = False) -> float:
    return sum(t.bytes for t in layer_terms(spec, c, cross))


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
    d = _dims(spec, c)
    n, nr, p, h = d["n"], d["nr"], d["p"], d["h"]
    terms = layer_terms(spec, c)
    per_layer = sum(t.bytes for t in terms)
    encdec = spec.arch == "encoder-decoder"
    cross = layer_bytes(spec, c, cross=True) if encdec else 0.0
    if encdec:
        enc = c.encoder_seq or c.seq
        enc_cfg = replace(c, seq=enc)
        enc_layer = layer_bytes(spec, enc_cfg)
        stack = spec.encoder_layers * enc_layer + spec.layers * cross + p * enc * c.batch * h  # encoder output
    else:
        stack = spec.layers * per_layer
    embedding = INDEX * n * (2 if encdec else 1)
    if spec.position == "learned":
        embedding += INDEX * c.seq  # position ids
    if c.dropout:
        embedding += _mask(c) * nr * h * (2 if encdec else 1)
    if c.impl != "fused" and spec.position == "rotary" and p == FP32:
        embedding += FP32 * c.seq * spec.d_head  # cos/sin tables, shared by every layer
    vocab = ceil_div(spec.vocab, c.tp)  # the output layer is split over the vocabulary (Megatron)
    head = INDEX * n + (FP32 if c.loss_fp32 else p) * n * vocab  # targets; log-probabilities (4 s b v)
    if c.lora_targets is None:
        head += p * nr * h  # output layer input (frozen under LoRA: not kept)
    if spec.final_norm:
        head += sum(t.bytes for t in _norm(spec, c, "final_norm", nr))
    logits = p * n * vocab + (FP32 * n * vocab if c.loss_fp32 and p != FP32 else 0.0)
    if c.recompute == "full":
        full = replace(c, recompute="none")
        transient = layer_bytes(spec, full, cross=encdec)
    elif c.recompute == "selective":
        full = replace(c, recompute="none")
        transient = layer_bytes(spec, full) - per_layer
    else:
        transient = 0.0
    layers_per_stage = stack / pp
    first = pp * (embedding + layers_per_stage) + transient
    last = layers_per_stage + head + logits + transient
    if pp == 1:
        first = last = embedding + stack + head + logits + transient
    return ActivationEstimate(
        layer_bytes=per_layer, cross_layer_bytes=cross, embedding_bytes=embedding, head_bytes=head,
        logits_transient_bytes=logits, recompute_transient_bytes=transient, first_stage_bytes=first,
        last_stage_bytes=last, microbatches_in_flight=pp, terms=tuple(terms))


def saved_bytes(spec: ModelSpec, c: ActivationConfig) -> float:
    """Bytes saved for backward by one forward pass of the whole model (no pipeline, no transients): the quantity
    that counting saved tensors measures."""
    a = activation_memory(spec, c)
    return a.first_stage_bytes - a.logits_transient_bytes - a.recompute_transient_bytes


def inference_activation_bytes(spec: ModelSpec, seq: int, batch: int, p: float, attention: str = "flash",
                               tp: int = 1) -> float:
    """Peak transient memory of a prefill of `seq` tokens in one chunk (no gradients: nothing is kept between
    layers): the residual stream and norm output, then the larger of the attention phase (Q, K, V, output, and the
    s x s scores with eager attention) and the MLP phase, plus fp32 logits of the last position of each sequence."""
    n = seq * batch
    h, q, f = spec.hidden, spec.q_dim / tp, spec.ffn / tp
    kv = kv_heads_per_gpu(spec, tp) * spec.d_head
    attn = p * n * (q + 2 * kv + q) + (p * n * seq * spec.heads / tp if attention == "eager" else 0.0)
    mlp = p * n * f * (3 if spec.mlp == "gated" else 2)
    return p * n * 2 * h + max(attn, mlp) + FP32 * batch * spec.vocab
