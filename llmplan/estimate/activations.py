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
from llmplan.estimate.activation_terms import (  # noqa: F401  (ActivationConfig, Term, layer_terms: re-exported)
    ATTENTION, FP32, IMPLS, INDEX, RECOMPUTE, ActivationConfig, Term, dropout_mask_bytes, layer_terms, norm_terms)
from llmplan.estimate.shapes import ceil_div, kv_heads_on_gpu
from llmplan.models.layers import Attention, LayerGroup, Mamba2, MoE
from llmplan.models.spec import ModelSpec


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
        embedding += dropout_mask_bytes(c) * nr * h * (2 if encdec else 1)
    if c.impl != "fused" and spec.position == "rotary" and p == FP32:
        embedding += FP32 * c.seq * (spec.d_head if encdec else _rope_dim(spec))  # cos/sin, shared by every layer
    vocab = ceil_div(spec.vocab, c.tp)  # the output layer is split over the vocabulary (Megatron)
    head = INDEX * n + (FP32 if c.loss_fp32 else p) * n * vocab  # targets; log-probabilities (4 s b v)
    if c.lora_targets is None:
        head += p * nr * h  # output layer input (frozen under LoRA: not kept)
    if spec.final_norm:
        head += sum(t.bytes for t in norm_terms(spec, c, "final_norm", nr))
    streams = max((g.hyper for g in spec.layer_groups), default=0) if not encdec else 0
    if streams:  # DeepSeek-V4's hc_head: the streams it collapses, their fp32 normed copy and rstd, its weights
        r = FP32 if c.residual_fp32 else p
        head += r * nr * streams * h + FP32 * nr * (streams * h + 1 + streams)
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
