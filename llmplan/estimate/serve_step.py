"""The time of one continuous-batching step on one GPU of a tensor-parallel replica.

A step carries `decode` tokens (one per running request, each attending its context) and `prefill` tokens (chunks
of new prompts). Per layer group, summed over the stack:

- every linear layer (a GEMM of m = decode + prefill tokens) takes max(weight bytes / achievable HBM bandwidth,
  2 m n k / achievable GEMM FLOP/s) (roofline, Williams et al. 2009; per operator as in LLM-Viewer and
  AIConfigurator); a mixture-of-experts layer reads only the experts its m tokens touch: with uniform top-k routing
  E (1 - (1 - k/E)^m) distinct experts per layer (the expected number of distinct values among m draws of k of E);
- attention reads each decoding request's KV cache (llmplan.estimate.kvcache.cache_bytes) at the HBM rate and
  computes 4 x heads x head_dim FLOPs per query-key pair (prefill chunks: causal, at the attention rate);
- a fixed cost per layer (kernel launches, norms, rotary, small ops; larger for MoE layers: router, top-k,
  permutation), the engine's;
- with tp > 1, two all-reduces per layer (after attention and after the MLP, Megatron-LM), each
  latency + 2 (tp - 1)/tp x m x hidden x 2 bytes / bus bandwidth (ring all-reduce bus factor, NCCL performance
  notes: busbw = algbw x 2(n-1)/n).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.errors import LlmplanError
from llmplan.estimate.serve_engines import Engine
from llmplan.estimate.serve_memory import FP4, WeightPlan, kv_bytes_per_sequence
from llmplan.models import ModelSpec
from llmplan.models.layers import Attention, Dense, MoE

# Scale-up (NVLink / PCIe) bandwidth per GPU and direction, until the catalog carries it: NVLink 4 on H100/H200
# 450 GB/s, NVLink 3 on A100 300 GB/s, NVLink 5 on B200 900 GB/s (NVIDIA datasheets: 900 / 600 / 1,800 GB/s both
# directions; AIConfigurator intra_node_bw), PCIe Gen4 x16 32 GB/s for the PCIe cards (L40S, A10, L4).
_SCALEUP_FALLBACK = (("b200", 900e9), ("b100", 900e9), ("gb200", 900e9), ("h100-sxm", 450e9), ("h200", 450e9),
                     ("gh200", 450e9), ("h100-nvl", 300e9), ("a100-80gb", 300e9), ("a100-40gb", 300e9))
PCIE_BYTES_PER_S = 32e9


def scaleup_bytes_per_s(gpu) -> float:
    value = getattr(gpu, "scaleup_bandwidth_bytes_per_s", None)
    if value:
        return float(value)
    name = gpu.name.lower()
    for key, bw in _SCALEUP_FALLBACK:
        if name.startswith(key) and "pcie" not in name:
            return bw
    return PCIE_BYTES_PER_S


@dataclass(frozen=True)
class Rates:
    """Achievable rates on one GPU (see llmplan.hardware.efficiency)."""

    hbm_bytes_per_s: float
    gemm_flops_per_s: float       # plateau of large GEMMs in the compute format
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

    def kv_bytes(self, context: float) -> float:
        return kv_bytes_per_sequence(self.spec, context, self.kv_dtype, self.tp)


@dataclass(frozen=True)
class StepTime:
    gemm_seconds: float
    attention_seconds: float
    comm_seconds: float
    fixed_seconds: float
    weight_bytes: float     # read from HBM by the GEMMs (one GPU)
    kv_bytes: float         # KV read by attention (one GPU)

    @property
    def seconds(self) -> float:
        return self.gemm_seconds + self.attention_seconds + self.comm_seconds + self.fixed_seconds


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


def _gemm(m: float, params: float, weight_bytes: float, r: Rates) -> tuple[float, float]:
    """Time and bytes of one GEMM of m tokens over `params` weights on one GPU: max(memory, compute)."""
    if params <= 0 or m <= 0:
        return 0.0, 0.0
    return max(weight_bytes / r.hbm_bytes_per_s, 2.0 * m * params / r.gemm_flops_per_s), weight_bytes


def _touched(experts: int, top_k: int, tokens: float) -> float:
    """Expected distinct experts among `tokens` tokens each routed to top_k of `experts` uniformly."""
    return experts * (1.0 - (1.0 - top_k / experts) ** max(tokens, 0.0))


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
    spec, r, tp, plan = dep.spec, dep.rates, dep.tp, dep.plan
    h = spec.hidden
    m = decode + prefill
    gemm = attn = wbytes = 0.0
    moe_layers = layers = allreduces = 0
    for g in spec.layer_groups:
        layers += g.count
        t = b = 0.0
        mixer = g.mixer
        if mixer is not None:
            p = mixer.params(h) / tp
            dt, db = _gemm(m, p, p * plan.linear_bytes, r)
            t, b = t + dt, b + db
            allreduces += g.count
        if isinstance(g.ffn, MoE):
            moe = g.ffn
            moe_layers += g.count
            shared = (moe.params(h) - moe.experts * moe.expert_params(h)) / tp
            dt, db = _gemm(m, shared, shared * plan.linear_bytes, r)
            t, b = t + dt, b + db
            touched = _touched(moe.experts, moe.top_k, m)
            per_expert = moe.expert_params(h) / tp
            tokens_per_expert = m * moe.top_k / touched if touched else 0.0
            dt, db = _gemm(tokens_per_expert, per_expert, per_expert * plan.expert_bytes, r)
            t, b = t + touched * dt, b + touched * db
            allreduces += g.count
        elif isinstance(g.ffn, Dense):
            p = g.ffn.params(h) / tp
            dt, db = _gemm(m, p, p * plan.linear_bytes, r)
            t, b = t + dt, b + db
            allreduces += g.count
        if isinstance(mixer, Attention):
            heads = max(mixer.heads / tp, 1.0)
            flops_per_pair = 2.0 * heads * (mixer.head_dim + mixer.d_v)
            pairs = decode * (min(context, mixer.window) if mixer.kind != "full" else context)
            pairs_p = _attention_pairs_prefill(mixer, prefill_start, prefill)
            attn += g.count * (flops_per_pair * pairs / r.attention_flops_per_s
                               + flops_per_pair * pairs_p / r.attention_flops_per_s)
        gemm += g.count * t
        wbytes += g.count * b
    # output head: vocab x hidden over tp for one token per sequence that samples
    head = spec.vocab * h / tp
    dt, db = _gemm(decode + (1.0 if prefill else 0.0), head, 2.0 * head, r)
    gemm, wbytes = gemm + dt, wbytes + db
    # decode attention is bound by reading the KV cache (and recurrent state) of every running request
    kv = decode * dep.kv_bytes(context) if decode else 0.0
    attn_mem = kv / r.hbm_bytes_per_s
    attn = max(attn, attn_mem) if prefill == 0 else attn + attn_mem
    comm = 0.0
    if tp > 1:
        message = m * h * 2.0
        comm = allreduces * (dep.engine.allreduce_latency_seconds
                             + 2.0 * (tp - 1) / tp * message / r.bus_bytes_per_s)
    fixed = layers * dep.engine.fixed_layer_seconds + moe_layers * dep.engine.fixed_moe_layer_seconds
    return StepTime(gemm, attn, comm, fixed, wbytes, kv)
