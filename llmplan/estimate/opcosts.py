"""Seconds of one layer's operators on one GPU for one micro-batch: GEMMs, attention core, memory-bound traffic, and
the collectives the layer issues. Walks the model's layer groups (dense, MoE, MLA, sliding, Mamba-2, DeltaNet).

Formulas (docs/methodology.md, "Step time"):
- a linear layer y = x W (x: M x K, W: K x N) costs a GEMM forward, and in backward the data gradient (M x K x N)
  and the weight gradient (K x N x M): backward = 2 x forward in FLOPs (Kaplan et al. 2020 section 2.1), each at
  its own size-dependent efficiency (llmplan.hardware.efficiency).
- Megatron tensor parallelism (Shoeybi et al. 2019): QKV and up/gate split by columns, output and down by rows;
  one all-reduce of the layer input's size after attention and one after the MLP in forward, the same in backward;
  with sequence parallelism each becomes a reduce-scatter + all-gather of the same volume (Korthikanti et al. 2022).
- attention core: 2 x queries x keys x heads x (d_qk + d_v) FLOPs forward, causal masking halves the keys
  (flash attention skips masked blocks); flash attention's backward does 2.5 x the forward's work (it recomputes
  the scores: 5 matmuls against 2; Dao 2023, FlashAttention-2 section 3.1.2).
- MoE: tokens are routed top_k ways; with expert parallelism ep a rank holds experts / ep experts and receives,
  balanced, its tokens x top_k assignments (Megatron-Core, expert tensor parallel 1); dispatch and combine are
  all-to-alls of assignments x hidden x bytes, twice forward and twice backward (Lepikhin et al. 2020, GShard).
- norms, residual adds, activations, rotary embeddings: memory-bound, bytes read + written / achievable HBM
  bandwidth (Calculon; llm-analysis); backward moves about twice the forward's bytes.
- host dispatch: every PyTorch operator costs the CPU a fixed time to dispatch and launch, forward and in the
  autograd backward; the GPU runs ahead of the host only while its kernels are longer (`host_seconds`).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.estimate.collectives import Group, collective_seconds
from llmplan.estimate.layout import Layout
from llmplan.estimate.shapes import compressed_mats
from llmplan.hardware.efficiency import LAUNCH_SECONDS, Efficiency
from llmplan.models.layers import Attention, Dense, GatedDeltaNet, Mamba2, MoE
from llmplan.models.layers_v4 import CompressedAttention

ACT_BYTES = 2.0  # activations and collectives in 16-bit (fp8 recipes keep them so: Transformer Engine)
BWD_ATTENTION = 2.5  # flash-attention backward / forward work (Dao 2023)
# Host time per PyTorch operator: Python, dispatcher and autograd record (published range 5-25 us for one eager op's
# CPU-side chain), measured with benchmarks/host_overhead.py (PyTorch 2.13, x86 server CPU, 4 x 4 tensors so the
# kernels cost ~0; least-disturbed of 4 runs on a shared machine): 9 us per forward op, 11 us per backward node;
# plus the CUDA launch of its kernel (LAUNCH_SECONDS, 4 us; NVIDIA CUDA C++ Best Practices Guide)
HOST_FWD_OP_SECONDS = 9e-6 + LAUNCH_SECONDS
HOST_BWD_OP_SECONDS = 11e-6 + LAUNCH_SECONDS
# Operators a layer dispatches in forward (each has about one autograd node in backward), by part: a norm, a linear,
# a collective: 1 each; a residual add with its dropout: 2; the attention block's reshapes, splits and the fused
# kernel: 6 (rotary +2), unfused: 16 (transposes, baddbmm, scale-mask-softmax, dropout with its RNG-tracker fork,
# bmm, permute, contiguous); an activation 1 (gated: +1); an MoE block's router, top-k, permutes and grouped GEMMs: 16.
HOST_OPS = {"norm": 1, "linear": 1, "collective": 1, "residual": 2, "flash": 6, "rotary": 2, "unfused": 16,
            "activation": 1, "moe": 16}
UNFUSED_SOFTMAX_BYTES = 7.0  # per score element, unfused: scores written (2) and read (2), probabilities (2),
# dropout mask (1) - Megatron 2021's fused scale-mask-softmax still round-trips the s x s matrix through HBM


@dataclass(frozen=True)
class LayerCost:
    """Seconds for one layer, one micro-batch, on one GPU."""

    gemm_fwd: float
    gemm_bwd: float
    attn_fwd: float
    attn_bwd: float
    mem_fwd: float
    mem_bwd: float
    tp_fwd: float        # tensor/sequence-parallel collectives, forward
    tp_bwd: float
    cp_fwd: float        # context-parallel K/V exchange (ring), overlappable with the attention core
    cp_bwd: float
    ep_fwd: float        # expert all-to-all
    ep_bwd: float
    recompute: float     # extra forward work in backward (full: the whole forward; selective: the core)
    recompute_comm: float
    host: float = 0.0    # CPU dispatch time of the layer's operators, forward + backward (+ recomputed forward)

    @property
    def compute(self) -> float:
        return self.gemm_fwd + self.gemm_bwd + self.attn_fwd + self.attn_bwd + self.mem_fwd + self.mem_bwd


def _linear(eff: Efficiency, m: float, k: float, n: float, dtype: str, quantize: bool = True) -> tuple[float, float]:
    """(forward, backward) seconds of y = x W with x: m x k, W: k x n; fp8 casts x forward and dy backward
    (the weight gradient reuses both casts)."""
    if m <= 0 or k <= 0 or n <= 0:
        return 0.0, 0.0
    return eff.gemm_seconds(m, n, k, dtype, quantize), \
        eff.gemm_seconds(m, k, n, dtype, quantize) + eff.gemm_seconds(k, n, m, dtype, False)


def _mean_keys(attn: Attention, seq: int) -> float:
    """Keys a query attends on average over a causal sequence of `seq` (full, sliding window, chunked; DeepSeek-V4:
    the window and the compressed entries, exactly)."""
    if isinstance(attn, CompressedAttention):
        from llmplan.estimate.flops import causal_pairs

        return causal_pairs(attn, seq) / seq
    if attn.kind == "sliding" and attn.window and attn.window < seq:
        w = attn.window
        return w - w * (w - 1) / (2.0 * seq)
    if attn.kind == "chunked" and attn.window and attn.window < seq:
        return (attn.window + 1) / 2.0
    return (seq + 1) / 2.0


def layer_cost(eff: Efficiency, layout: Layout, mixer, ffn, norms: int, hidden: int, node: int) -> LayerCost:
    t = layout
    tp, cp, h, w = t.tp, t.cp, hidden, ACT_BYTES
    tokens = t.micro_batch * t.seq / cp            # tokens of a micro-batch on this rank's CP slice
    h_part = h / tp if t.sp else h                 # norms and residuals are split over TP with SP
    dt = t.dtype
    gf = gb = af = ab = mf = 0.0
    tp_colls = 0  # collectives of the layer input's size, forward (all-reduce, or RS+AG with SP)
    cp_f = cp_b = ep_f = ep_b = 0.0
    mf += (2 * norms + 6) * tokens * h_part * w    # norms read+write, two residual adds (2 reads, 1 write)
    ops = norms * HOST_OPS["norm"] + 2 * HOST_OPS["residual"]
    if isinstance(mixer, Attention):
        a = mixer
        heads = a.heads / tp
        if isinstance(a, CompressedAttention):  # q_b, o_a (by groups) and o_b split over tp, as vLLM splits them
            split = {"q_b", "o_a", "o_b"}
            parts = [(tokens, k / tp if n == "o_b" else k, o / tp if n in split - {"o_b"} else o)
                     for n, k, o in compressed_mats(a, h)]
            kv_width = a.head_dim
        elif a.is_mla:
            parts = []
            if a.q_lora_rank:
                parts += [(tokens, h, a.q_lora_rank), (tokens, a.q_lora_rank, a.q_dim / tp)]
            else:
                parts += [(tokens, h, a.q_dim / tp)]
            nope = a.head_dim - a.qk_rope_head_dim
            parts += [(tokens, h, a.kv_lora_rank + a.qk_rope_head_dim),
                      (tokens, a.kv_lora_rank, a.heads * (nope + a.d_v) / tp)]
            kv_width = a.heads * (a.head_dim + a.d_v) / tp
        else:
            kv_width = max(a.kv_heads * (a.head_dim + a.d_v) / tp, a.head_dim + a.d_v)  # replicated below 1 head
            parts = [(tokens, h, a.q_dim / tp + kv_width)]
        if not isinstance(a, CompressedAttention):
            parts.append((tokens, a.heads * a.d_v / tp, h))
        if a.index_heads and not isinstance(a, CompressedAttention):
            parts.append((tokens, a.q_lora_rank or h, a.index_heads * a.index_head_dim))
        for m, k, n in parts:
            f, b = _linear(eff, m, k, n, dt)
            gf, gb = gf + f, gb + b
        ops += len(parts) * HOST_OPS["linear"] + HOST_OPS["unfused" if t.attention == "unfused" else "flash"] \
            + (HOST_OPS["rotary"] if a.rope else 0)
        keys = _mean_keys(a, t.seq)
        core = 2.0 * tokens * keys * heads * (a.head_dim + a.d_v)  # QK^T and AV, causal half
        if t.attention == "unfused":  # batched GEMMs over the full (masked) score matrix + softmax in HBM
            full = t.seq if a.kind == "full" else min(t.seq, a.window or t.seq)
            bmm = eff.gemm_seconds(tokens * heads, full, a.head_dim, "bf16") + \
                eff.gemm_seconds(tokens * heads, a.d_v, full, "bf16")
            soft = eff.memory_seconds(UNFUSED_SOFTMAX_BYTES * tokens * heads * full)
            af, ab = bmm + soft, 2 * bmm + 2 * soft
        else:
            rate = eff.attention_flops_per_s(dt, keys, (a.head_dim + a.d_v) / 2, t.attention)
            af, ab = core / rate, BWD_ATTENTION * core / rate
        mf += 2 * (a.q_dim / tp + kv_width / 2) * tokens * w if a.rope else 0.0  # rotary on q and k
        tp_colls += 1
        if cp > 1:  # ring attention: cp - 1 exchanges of this rank's K and V (Liu et al. 2023; Megatron CP)
            kv_bytes = tokens * kv_width * w
            step = collective_seconds(eff, "p2p", kv_bytes, Group(cp, tp, node))
            cp_f, cp_b = (cp - 1) * step, 2 * (cp - 1) * step  # backward also returns dK, dV
    elif isinstance(mixer, (Mamba2, GatedDeltaNet)):
        width = mixer.params(h) / h / tp  # in/out projections as one hidden-wide GEMM per rank
        f, b = _linear(eff, tokens, h, width, dt)
        gf, gb = gf + f, gb + b
        ops += 2 * HOST_OPS["linear"] + HOST_OPS["flash"]  # projections, conv + scan kernels and their reshapes
        conv = mixer.conv_dim / tp
        mf += 8 * tokens * conv * w  # conv1d and chunked scan: read/write the conv stream several times
        tp_colls += 1
    if isinstance(ffn, Dense):
        n_up = ffn.ffn * (2 if ffn.gated else 1) / tp
        for m, k, n in ((tokens, h, n_up), (tokens, ffn.ffn / tp, h)):
            f, b = _linear(eff, m, k, n, dt)
            gf, gb = gf + f, gb + b
        mf += (3 if ffn.gated else 2) * tokens * ffn.ffn / tp * w
        ops += 2 * HOST_OPS["linear"] + HOST_OPS["activation"] * (2 if ffn.gated else 1)
        tp_colls += 1
    elif isinstance(ffn, MoE):
        e = ffn
        moe_tokens = tokens / tp  # Megatron-Core MoE runs with SP under TP: each TP rank routes its own slice
        assigned = moe_tokens * e.top_k
        local = e.experts / t.ep
        per_expert = assigned / local
        f, b = _linear(eff, moe_tokens, h, e.experts, "bf16")  # router
        gf, gb = gf + f, gb + b
        up = e.expert_ffn * (2 if e.gated else 1)
        for m, k, n in ((per_expert, h, up), (per_expert, e.expert_ffn, h)):
            f, b = _linear(eff, m, k, n, dt, quantize=False)  # grouped GEMM: one cast of all rows
            gf = gf + local * f + eff.quantize_seconds(assigned, k, dt)
            gb = gb + local * b + eff.quantize_seconds(assigned, n, dt)
        if e.shared_ffn:
            for m, k, n in ((tokens, h, e.shared_ffn * 2 / tp), (tokens, e.shared_ffn / tp, h)):
                f, b = _linear(eff, m, k, n, dt)
                gf, gb = gf + f, gb + b
            mf += 3 * tokens * e.shared_ffn / tp * w
        mf += (4 * h + (3 if e.gated else 2) * e.expert_ffn) * assigned * w  # permute, unpermute, activation
        ops += HOST_OPS["moe"] + (4 * HOST_OPS["linear"] + 2 * HOST_OPS["activation"] if e.shared_ffn else 0) \
            + (4 * HOST_OPS["collective"] if t.ep > 1 else 0)
        if t.ep > 1:
            a2a = collective_seconds(eff, "all_to_all", assigned * h * w, Group(t.ep, 1, node))
            ep_f, ep_b = 2 * a2a, 2 * a2a
    tp_f = 0.0
    if tp > 1 and tp_colls:
        g = Group(tp, 1, node)
        size = tokens * h * w
        one = (collective_seconds(eff, "all_gather", size, g) + collective_seconds(eff, "reduce_scatter", size, g)
               if t.sp else collective_seconds(eff, "all_reduce", size, g))
        tp_f = tp_colls * one
        ops += tp_colls * HOST_OPS["collective"] * (2 if t.sp else 1)
    recompute, recompute_comm = 0.0, 0.0
    if t.recompute == "full":
        recompute, recompute_comm = gf + af + eff.memory_seconds(mf), tp_f + cp_f + ep_f
    elif t.recompute == "selective" and t.attention == "unfused":
        recompute = af  # Korthikanti et al. 2022: the attention core again; flash attention recomputes anyway
    host = ops * ((2 if t.recompute == "full" else 1) * HOST_FWD_OP_SECONDS + HOST_BWD_OP_SECONDS)
    return LayerCost(gf, gb, af, ab, eff.memory_seconds(mf), eff.memory_seconds(2 * mf), tp_f, tp_f, cp_f, cp_b,
                     ep_f, ep_b, recompute, recompute_comm, host)


def head_cost(eff: Efficiency, layout: Layout, hidden: int, vocab: int, node: int) -> tuple[float, float]:
    """(compute, TP comm) seconds of the output logits and loss per micro-batch on the last stage (forward and
    backward; the head runs in 16-bit: fp8 recipes keep it out of fp8)."""
    tokens = layout.micro_batch * layout.seq / layout.cp
    f, b = _linear(eff, tokens, hidden, vocab / layout.tp, "bf16")
    loss = eff.memory_seconds(16.0 * tokens * vocab / layout.tp)  # fp32 softmax cross-entropy, fwd + bwd
    comm = 0.0
    if layout.tp > 1 and layout.sp:  # the last norm's output is all-gathered before the head, its grad scattered
        g = Group(layout.tp, 1, node)
        comm = 2 * collective_seconds(eff, "all_gather", tokens * hidden * ACT_BYTES, g)
    return f + b + loss, comm
