"""The time of one continuous-batching step on one GPU of a tensor-parallel replica.

A step carries `decode` tokens (one per running request, each attending its context) and `prefill` tokens (chunks
of new prompts). Per layer group, summed over the stack:

- every GEMM (m = decode + prefill tokens) at its shape, timed by llmplan.hardware.efficiency (tiles, waves, the
  roofline with the HBM rate, a launch); a mixture-of-experts layer reads only the experts its m tokens touch: with
  uniform top-k routing E (1 - (1 - k/E)^m) distinct experts per layer (the expected number of distinct values
  among m draws of k of E), run as one grouped GEMM per projection;
- attention reads each decoding request's KV cache (llmplan.estimate.kvcache.cache_bytes) at the HBM rate and
  computes 4 x heads x head_dim FLOPs per query-key pair (prefill chunks: causal, at the attention rate);
- element-wise ops (fused residual-add + RMSNorm, the gated activation, rotary) stream their activations;
- a fixed cost per layer (launch gaps, small ops; more for MoE layers: router, top-k, permutation), the engine's;
- with tp > 1, two all-reduces per layer (after attention and after the MLP, Megatron-LM), each
  latency + 2 (tp - 1)/tp x m x hidden x 2 bytes / bus bandwidth (ring all-reduce bus factor, NCCL performance
  notes: busbw = algbw x 2(n-1)/n).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.errors import LlmplanError
from llmplan.estimate.serve_engines import Engine
from llmplan.estimate.serve_memory import FP4, WeightPlan, kv_bytes_per_sequence
from llmplan.hardware.efficiency import LAUNCH_SECONDS
from llmplan.models import ModelSpec
from llmplan.models.layers import Attention, Dense, MoE
from llmplan.models.layers_v4 import CompressedAttention
from llmplan.units import DTYPE_BYTES

# A decode attention kernel's floor: TensorRT-LLM's decode attention with under 1 MB of KV to read takes 9.1-11.2 us
# (median by GPU and KV format, H100 and H200; AIConfigurator's measured tables, benchmarks/decode_attention_check.py)
DECODE_ATTENTION_FLOOR_SECONDS = 10e-6
ACT_BYTES = {"fp8": 1.0, "fp4": 1.0}  # activation width of the GEMM formats (fp4 GEMMs take fp8 activations)


@dataclass(frozen=True)
class Rates:
    """Achievable rates on one GPU (see llmplan.hardware.efficiency)."""

    hbm_bytes_per_s: float
    gemm_flops_per_s: float       # a large 16-bit GEMM (for display; each GEMM is timed at its own shape)
    attention_flops_per_s: float  # flash-attention prefill core, 16-bit
    bus_bytes_per_s: float        # all-reduce bus bandwidth within the replica
    source: str


@dataclass(frozen=True)
class Deployment:
    """One replica: the model, its shards on tp GPUs, formats, engine and rates."""

    spec: ModelSpec
    gpu: object
    tp: int
    ep: int
    plan: WeightPlan
    kv_dtype: str
    compute_dtype: str
    engine: Engine
    rates: Rates
    prefill_chunk: int
    eff: object = None            # llmplan.hardware.efficiency.Efficiency
    attention_dtype: str = "bf16"
    attention_dp: bool = False    # attention data parallel over the tp ranks (each its own requests), MLP/MoE split

    @property
    def attention_tp(self) -> int:
        """Ranks one request's attention is split over: tp, or 1 with attention data parallelism."""
        return 1 if self.attention_dp else self.tp

    def kv_bytes(self, context: float) -> float:
        return kv_bytes_per_sequence(self.spec, context, self.kv_dtype, self.attention_tp)

    def kv_read_bytes(self, context: float) -> float:
        """KV one decode step reads for one request: the whole cache, except that DeepSeek-V4's CSA layers read
        only the index_topk compressed entries their indexer keeps (CompressedAttention.values_read)."""
        unread = sum(g.count * (g.mixer.cache_values(int(context)) - g.mixer.values_read(int(context)))
                     for g in self.spec.layer_groups if isinstance(g.mixer, CompressedAttention))
        return self.kv_bytes(context) - unread * DTYPE_BYTES[self.kv_dtype]


@dataclass(frozen=True)
class StepTime:
    gemm_seconds: float
    attention_seconds: float
    comm_seconds: float
    fixed_seconds: float
    weight_bytes: float     # read from HBM by the GEMMs (one GPU)
    kv_bytes: float         # KV read by attention (one GPU)
    elementwise_seconds: float = 0.0  # norms, residual adds, activation function, rotary: activations streamed

    @property
    def seconds(self) -> float:
        return (self.gemm_seconds + self.attention_seconds + self.comm_seconds + self.fixed_seconds
                + self.elementwise_seconds)


def compute_dtype_for(plan: WeightPlan, gpu) -> str:
    """The tensor-core format the GEMMs run in: fp8 weights with fp8 activations (W8A8); FP4 on a chip with an
    fp4 peak; integer and FP4 weights elsewhere are dequantized to 16 bits (W4A16, W8A16 kernels)."""
    sixteen = "bf16" if gpu.peak("bf16") is not None else "fp16"
    fmt = plan.experts if plan.experts in FP4 or plan.experts == "fp8" else plan.linear
    if fmt == "fp8" and gpu.peak("fp8") is not None:
        return "fp8"
    if fmt in FP4 and gpu.peak("fp4") is not None:
        return "fp4"
    return sixteen


def _gemm(eff, m: float, n: float, k: float, dtype: str, weight_bytes_per_param: float,
          quantize: bool = True) -> tuple[float, float]:
    """Seconds and weight bytes of an M x N x K GEMM on one GPU: the efficiency model's tile/wave/roofline time
    (llmplan.hardware.efficiency); weights stored narrower than the compute format (W4A16, W8A16) are streamed at
    their stored width when the GEMM is memory-bound."""
    if m <= 0 or n <= 0 or k <= 0:
        return 0.0, 0.0
    weights = n * k * weight_bytes_per_param
    t = eff.gemm_seconds(m, n, k, dtype, quantize)
    width = ACT_BYTES.get(dtype, 2.0)
    if weight_bytes_per_param < width:
        stored_width = (m * k + k * n + m * n) * width / eff.hbm_bytes_per_s + LAUNCH_SECONDS
        if t <= stored_width * (1 + 1e-9):  # memory-bound: the weights at their stored width
            t = (width * (m * k + m * n) + weights) / eff.hbm_bytes_per_s + LAUNCH_SECONDS
    return t, weights


def _elementwise_values(g, h: int, tp: int, ep: int = 1) -> float:
    """16-bit values one token's element-wise ops stream through HBM in one layer (Korthikanti et al. 2022 list
    the same tensors): a fused residual-add + RMSNorm kernel per norm of the layer (two for a pre-norm block, one
    for Nemotron-H's single-mixer layers), each reading the residual and the branch output and writing both (4 h,
    replicated on every tensor-parallel rank), the gated activation (reads 2 f, writes f, with f = inner width /
    tp; top-k experts' widths for MoE), an MoE layer's permute into expert order and the unpermute that sums the
    top-k outputs back (each routed copy read and written once each way, 4 h, over the ep ranks that share the
    copies; the training model counts the same, llmplan.estimate.opcosts) and rotary on q and k (read and
    write)."""
    values = 4.0 * h * g.norms
    ffn = g.ffn
    if isinstance(ffn, MoE):
        values += 3.0 * (ffn.top_k * ffn.expert_ffn + ffn.shared_ffn) / tp + 4.0 * h * ffn.top_k / ep
    elif isinstance(ffn, Dense):
        values += 3.0 * ffn.ffn / tp if ffn.gated else 2.0 * ffn.ffn / tp
    att = g.attention
    if att is not None and att.rope:
        values += 2.0 * (att.q_dim / tp + max(att.kv_heads / tp, 1.0) * att.head_dim)
    return values


def _touched(experts: int, top_k: int, tokens: float) -> float:
    """Expected distinct experts among `tokens` tokens each routed to top_k of `experts` uniformly."""
    return experts * (1.0 - (1.0 - top_k / experts) ** max(tokens, 0.0))


def routed_experts(eff, moe: MoE, tokens: float, h: int, tp: int, ep: int, dtype: str,
                   weight_bytes_per_param: float) -> tuple[float, float]:
    """Seconds and weight bytes of one GPU's routed-expert GEMMs for `tokens` tokens: the experts the batch
    touches (uniform routing), each split over tp / ep GPUs and spread over ep, run as one grouped GEMM per
    projection (one launch, not one per expert) after one activation cast of all the rows this GPU receives."""
    touched = _touched(moe.experts, moe.top_k, tokens)
    moe_tp = tp / ep
    per_gpu = touched / ep
    m_e = tokens * moe.top_k / touched if touched else 0.0
    up = _gemm(eff, m_e, (2 if moe.gated else 1) * moe.expert_ffn / moe_tp, h, dtype, weight_bytes_per_param, False)
    down = _gemm(eff, m_e, h, moe.expert_ffn / moe_tp, dtype, weight_bytes_per_param, False)
    rows = m_e * per_gpu
    seconds = per_gpu * (up[0] + down[0]) - 2.0 * max(per_gpu - 1.0, 0.0) * LAUNCH_SECONDS \
        + eff.quantize_seconds(rows, h, dtype) + eff.quantize_seconds(rows, moe.expert_ffn / moe_tp, dtype)
    return seconds, per_gpu * (up[1] + down[1])


def _attention_pairs_prefill(att: Attention, start: float, tokens: float) -> float:
    """Query-key pairs of a causal chunk of `tokens` queries at positions start .. start + tokens."""
    if tokens <= 0:
        return 0.0
    mean_keys = start + (tokens + 1) / 2.0
    if att.kind != "full":
        mean_keys = min(mean_keys, float(att.window))
    return tokens * mean_keys


def step_time(dep: Deployment, decode: float, context: float, prefill: float = 0.0,
              prefill_start: float = 0.0) -> StepTime:
    """One step: `decode` requests at mean context `context`, plus `prefill` prompt tokens of chunks that start
    at position `prefill_start` of their prompt (mean)."""
    if decode < 0 or prefill < 0:
        raise LlmplanError("a step needs non-negative decode and prefill tokens")
    spec, r, tp, plan, eff, cdt = dep.spec, dep.rates, dep.tp, dep.plan, dep.eff, dep.compute_dtype
    h = spec.hidden
    m = decode + prefill
    # attention data parallelism: each rank runs attention for its 1/tp of the tokens with the whole mixer
    a_tp, a_share = dep.attention_tp, (1.0 / tp if dep.attention_dp else 1.0)
    a_m, a_decode = m * a_share, decode * a_share
    gemm = attn = wbytes = 0.0
    moe_layers = layers = allreduces = attn_layers = 0
    lin, exp = plan.linear_bytes, plan.expert_bytes
    act_values = 0.0  # activation values the element-wise ops read and write per token, all layers

    def dense(t: float, b: float, ffn: int, gated: bool, tokens: float) -> tuple[float, float]:
        up = _gemm(eff, tokens, (2 if gated else 1) * ffn / tp, h, cdt, lin)
        down = _gemm(eff, tokens, h, ffn / tp, cdt, lin)
        return t + up[0] + down[0], b + up[1] + down[1]

    for g in spec.layer_groups:
        layers += g.count
        t = b = 0.0
        mixer = g.mixer
        if isinstance(mixer, Attention) and not mixer.is_mla and not isinstance(mixer, CompressedAttention):
            kv = max(mixer.kv_heads / a_tp, 1.0) * (mixer.head_dim + mixer.d_v)  # KV heads replicated past tp
            qkv = _gemm(eff, a_m, mixer.q_dim / a_tp + kv, h, cdt, lin)
            out = _gemm(eff, a_m, h, mixer.heads * mixer.d_v / a_tp, cdt, lin)
            t, b = qkv[0] + out[0], qkv[1] + out[1]
        elif mixer is not None:  # MLA, V4 and recurrent mixers: their projections as one GEMM of the same weights
            t, b = _gemm(eff, a_m, mixer.params(h) / (h * a_tp), h, cdt, lin)
        if mixer is not None and not dep.attention_dp:
            allreduces += g.count
        if isinstance(g.ffn, MoE):
            moe = g.ffn
            moe_layers += g.count
            if moe.shared_ffn:
                t, b = dense(t, b, moe.shared_ffn, moe.gated, m)
            grouped, wb = routed_experts(eff, moe, m, h, tp, dep.ep, cdt, exp)
            t, b = t + grouped, b + wb
            allreduces += g.count
        elif isinstance(g.ffn, Dense):
            t, b = dense(t, b, g.ffn.ffn, g.ffn.gated, m)
            allreduces += g.count
        if isinstance(mixer, Attention):
            attn_layers += g.count
            heads = max(mixer.heads / a_tp, 1.0)
            flops_per_pair = 2.0 * heads * (mixer.head_dim + mixer.d_v)
            pairs = a_decode * (min(context, mixer.window) if mixer.kind != "full" else context)
            pairs_p = _attention_pairs_prefill(mixer, prefill_start, prefill) * a_share
            if isinstance(mixer, CompressedAttention):  # plus the compressed entries attended (at the mean position)
                pairs += a_decode * mixer.compressed_keys(int(context))
                pairs_p += prefill * a_share * mixer.compressed_keys(int(prefill_start + prefill / 2.0))
            keys = max(prefill_start + prefill / 2.0, 1.0)
            attn += g.count * (flops_per_pair * pairs / r.attention_flops_per_s
                               + flops_per_pair * pairs_p / eff.attention_flops_per_s(dep.attention_dtype, keys))
        gemm += g.count * t
        wbytes += g.count * b
        act_values += g.count * _elementwise_values(g, h, tp, dep.ep)
    # output head: vocab x hidden over tp for one token per sequence that samples
    dt, db = _gemm(eff, decode + (1.0 if prefill else 0.0), spec.vocab / tp, h, dep.attention_dtype, 2.0)
    gemm, wbytes = gemm + dt, wbytes + db
    # decode attention is bound by reading the KV cache (and recurrent state) of every running request
    kv = a_decode * dep.kv_read_bytes(context) if decode else 0.0
    # each attention layer's decode kernel takes at least its floor, however little KV it reads
    attn_mem = kv / r.hbm_bytes_per_s + (DECODE_ATTENTION_FLOOR_SECONDS * attn_layers if decode else 0.0)
    attn = max(attn, attn_mem) if prefill == 0 else attn + attn_mem
    comm = 0.0
    if tp > 1:
        message = m * h * 2.0
        comm = allreduces * (dep.engine.allreduce_latency_seconds
                             + 2.0 * (tp - 1) / tp * message / r.bus_bytes_per_s)
    fixed = layers * dep.engine.fixed_layer_seconds + moe_layers * dep.engine.fixed_moe_layer_seconds
    elementwise = m * act_values * 2.0 / r.hbm_bytes_per_s
    return StepTime(gemm, attn, comm, fixed, wbytes, kv, elementwise)
