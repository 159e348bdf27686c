"""Serving memory on one GPU: the weights' shard, the KV pool an engine reserves, and how many requests it holds.

- Weight formats (bytes per parameter, scales included): bf16/fp16 2; fp8 1 (one fp32 scale per tensor or per
  128 x 128 block, < 0.1%); int8 1 (one scale per output row); int4 0.5 + 2/128 (AWQ/GPTQ: an fp16 scale per group
  of 128; Lin et al. 2024, Frantar et al. 2023); nvfp4 0.5 + 1/16 (4-bit E2M1 values and an FP8 E4M3 scale per 16;
  NVIDIA, "Introducing NVFP4", 2025); mxfp4 0.5 + 1/32 (an E8M0 scale per 32; OCP Microscaling Formats v1.0,
  section 5). Quantized checkpoints keep embeddings, output head and norms in 16 bits (ModelOpt, AWQ, GPTQ).
- Tensor parallelism splits every linear layer and the vocabulary over the `tp` GPUs of a replica (Shoeybi et al.
  2019, Megatron-LM); expert parallelism places experts on `ep` of them and splits each expert over tp/ep, so an
  expert's weights are also 1/tp per GPU (TensorRT-LLM moe_tp x moe_ep = tp).
- KV pool: vLLM lets weights, activations and cache use `gpu_memory_utilization` (0.9) of the total memory
  (vllm/worker: num_gpu_blocks = (total x utilization - peak) // block bytes); TensorRT-LLM gives the KV cache
  `kv_cache_free_gpu_mem_fraction` (0.9) of what is free after the weights and activations (KvCacheConfig).
- Pages: a request of L tokens takes ceil(L / block) pages (Kwon et al. 2023, PagedAttention). TensorRT-LLM's
  default GUARANTEED_NO_EVICT policy reserves the pages of the whole I + O at admission; vLLM and SGLang allocate
  pages as a request grows (preempting when the pool runs out), so in steady state a request holds on average the
  pages of I + O / 2 (its mean length over its life). max concurrency = pool // (pages x page bytes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmplan.errors import LlmplanError
from llmplan.estimate.kvcache import cache_bytes
from llmplan.estimate.serve_engines import Engine
from llmplan.models import ModelSpec, count_params
from llmplan.models.layers import MoE
from llmplan.units import GiB

WEIGHT_FORMATS: dict[str, float] = {
    "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0,
    "int4": 0.5 + 2.0 / 128,   # AWQ/GPTQ: fp16 scale per group of 128
    "nvfp4": 0.5 + 1.0 / 16,   # FP8 E4M3 scale per 16 values
    "mxfp4": 0.5 + 1.0 / 32,   # E8M0 scale per 32 values
}
KV_FORMATS = ("bf16", "fp16", "fp8", "int8")
FP4 = ("nvfp4", "mxfp4")
# CUDA context, NCCL buffers, CUDA graphs and allocator slack: AIConfigurator keeps 3.5 GB ("other_mem ... for safer
# deployment", systems/*.yaml), Vidur 10% of memory; 2 GiB is what vLLM's own profiling leaves on Hopper (recalled).
RUNTIME_RESERVE_BYTES = 2 * GiB


@dataclass(frozen=True)
class WeightPlan:
    """The stored format of the linear layers (attention, dense MLP, shared experts) and of the routed experts."""

    linear: str
    experts: str
    linear_bytes: float
    expert_bytes: float

    @property
    def label(self) -> str:
        return self.linear if self.linear == self.experts else f"{self.linear} (experts {self.experts})"


def weight_plan(spec: ModelSpec, dtype: str | None) -> WeightPlan:
    """--dtype for every linear layer, or the checkpoint's own format (gpt-oss: MXFP4 experts, bf16 elsewhere)."""
    if dtype is not None:
        if dtype not in WEIGHT_FORMATS:
            raise LlmplanError(f"unknown --dtype {dtype!r}; choose one of {', '.join(WEIGHT_FORMATS)}")
        return WeightPlan(dtype, dtype, WEIGHT_FORMATS[dtype], WEIGHT_FORMATS[dtype])
    wf = getattr(spec, "weight_format", None)
    if wf is None:
        return WeightPlan("bf16", "bf16", 2.0, 2.0)
    name = wf.method if wf.method in WEIGHT_FORMATS else f"{wf.method}"
    if wf.applies_to == "experts":
        return WeightPlan("bf16", name, 2.0, wf.bytes_per_param)
    return WeightPlan(name, name, wf.bytes_per_param, wf.bytes_per_param)


@dataclass(frozen=True)
class WeightBytes:
    linear: float    # attention, recurrent mixers, dense MLPs, shared experts, routers (whole model)
    experts: float   # routed experts (whole model)
    embeddings: float  # input embeddings and output head, 16-bit
    norms: float
    mixers: float = 0.0  # the attention / recurrent mixers' share of `linear`


    @property
    def total(self) -> float:
        return self.linear + self.experts + self.embeddings + self.norms

    def per_gpu(self, tp: int, attention_dp: bool = False) -> float:
        """One tensor-parallel rank's shard (norms replicated; with attention data parallelism the mixers too)."""
        if attention_dp:
            return (self.linear - self.mixers + self.experts + self.embeddings) / tp + self.mixers + self.norms
        return (self.linear + self.experts + self.embeddings) / tp + self.norms


def weight_bytes(spec: ModelSpec, plan: WeightPlan) -> WeightBytes:
    """Stored bytes of the model's weights, walked over its layer groups."""
    h = spec.hidden
    linear = experts = mixers = 0.0
    for g in spec.layer_groups:
        if g.mixer is not None:
            linear += g.count * g.mixer.params(h) * plan.linear_bytes
            mixers += g.count * g.mixer.params(h) * plan.linear_bytes
        if isinstance(g.ffn, MoE):
            routed = g.ffn.experts * g.ffn.expert_params(h)
            experts += g.count * routed * plan.expert_bytes
            linear += g.count * (g.ffn.params(h) - routed) * plan.linear_bytes
        elif g.ffn is not None:
            linear += g.count * g.ffn.params(h) * plan.linear_bytes
    b = count_params(spec)
    return WeightBytes(linear, experts, 2.0 * (b.embeddings + b.output_head), 2.0 * b.norms, mixers)


def kv_bytes_per_sequence(spec: ModelSpec, tokens: float, kv_dtype: str, tp: int) -> float:
    """KV cache and recurrent state of one sequence of `tokens` tokens on one tensor-parallel rank."""
    c = cache_bytes(spec, max(int(math.ceil(tokens)), 1), 1, kv_dtype, tp=tp)
    return float(c.total_bytes)


def activation_bytes(spec: ModelSpec, tp: int, max_num_tokens: int, max_batch: int) -> float:
    """Peak activations of one step of `max_num_tokens` tokens on one rank (what the engine's profiling pass
    reserves): the widest intermediate (gated MLP or the routed experts' inputs) and the residual stream in 16 bits,
    plus fp32 logits for one token per running sequence."""
    h = spec.hidden
    widest = 0.0
    for g in spec.layer_groups:
        if isinstance(g.ffn, MoE):
            widest = max(widest, g.ffn.top_k * 2 * g.ffn.expert_ffn / tp, 2 * g.ffn.shared_ffn / tp)
        elif g.ffn is not None:
            widest = max(widest, 2 * g.ffn.ffn / tp)
        if g.mixer is not None and g.attention is not None:
            widest = max(widest, (g.attention.q_dim + 2 * g.attention.kv_heads * g.attention.head_dim) / tp)
    per_token = 2.0 * (4 * h + widest)
    return max_num_tokens * per_token + 4.0 * min(max_batch, max_num_tokens) * spec.vocab / tp


@dataclass(frozen=True)
class ServeMemory:
    memory_bytes: float           # the GPU's memory
    weights_bytes: float          # this rank's weight shard
    activation_bytes: float
    reserve_bytes: float          # runtime (CUDA context, NCCL, graphs)
    kv_pool_bytes: float          # what the engine gives the KV cache
    kv_bytes_per_request: float   # pages of one request of I + O tokens
    max_concurrency: int          # requests whose whole I + O fit the replica (before the engine's batch cap)
    block_tokens: int
    rule: str                     # how the pool was sized, in words


def serve_memory(spec: ModelSpec, gpu, plan: WeightPlan, kv_dtype: str, tp: int, engine: Engine,
                 tokens_per_request: int, memory_fraction: float | None = None,
                 max_num_tokens: int | None = None, attention_dp: bool = False) -> ServeMemory:
    """Memory of one rank. With attention data parallelism each of the tp ranks holds the whole KV of its own
    requests (no split, no duplication), so the replica holds tp times what one rank's pool does."""
    frac = engine.memory_fraction if memory_fraction is None else memory_fraction
    if not 0.0 < frac <= 1.0:
        raise LlmplanError(f"memory fraction must be in (0, 1], got {frac!r}")
    total = float(gpu.memory_bytes)
    w = weight_bytes(spec, plan).per_gpu(tp, attention_dp)
    act = activation_bytes(spec, tp, max_num_tokens or engine.max_num_tokens, engine.max_batch)
    reserve = float(RUNTIME_RESERVE_BYTES)
    if engine.memory_base == "free":
        pool = frac * (total - w - act - reserve)
        rule = f"{frac:g} of the memory free after weights and activations (kv_cache_free_gpu_mem_fraction)"
    else:
        pool = frac * total - w - act - reserve
        rule = f"{frac:g} of all memory, less weights and activations (gpu_memory_utilization)"
    block = max(engine.block_tokens, 1)
    pages = math.ceil(tokens_per_request / block) * block
    per_req = kv_bytes_per_sequence(spec, pages, kv_dtype, 1 if attention_dp else tp)
    c_max = int(pool // per_req) * (tp if attention_dp else 1) if pool > 0 and per_req > 0 else 0
    return ServeMemory(total, w, act, reserve, max(pool, 0.0), per_req, max(c_max, 0), block, rule)
