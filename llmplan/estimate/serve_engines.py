"""What a serving engine decides that the physics does not: how much memory its KV pool takes, the page size, the
largest batch and token budget per step, and the fixed costs of its kernels.

Each setting is the engine's documented default, with where it is written; `fixed_layer_seconds` (the time a layer
costs per step beyond its bytes and FLOPs: kernel launches, norms, rotary, small ops) is fitted for the engines that
have one on a declared subset of the published rows (benchmarks/serving_validation.py, `FIT_SUBSET`), and reported
on all rows in docs/validation.md. No engine: the generic one, with the middle of the published range.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llmplan.errors import LlmplanError


@dataclass(frozen=True)
class Engine:
    name: str
    memory_fraction: float     # share of memory the KV pool may use (see memory_base)
    memory_base: str           # "total": fraction of all memory, weights included (vLLM, SGLang);
                               # "free": fraction of what is free after the weights and activations (TensorRT-LLM)
    block_tokens: int          # tokens per KV page
    max_batch: int             # most sequences in one step
    max_num_tokens: int        # token budget of one step (decode tokens first, then prefill chunks)
    fixed_layer_seconds: float     # per layer per step beyond bytes and FLOPs (dense layer)
    fixed_moe_layer_seconds: float  # extra per MoE layer per step (router, top-k, permute, grouped GEMM launch)
    allreduce_latency_seconds: float  # one tensor-parallel all-reduce of a small message
    request_overhead_seconds: float   # added to TTFT: API server, tokenization, scheduling before the first step
    kv_fp8_with_fp8_weights: bool  # an fp8 checkpoint also gets an fp8 KV cache by default
    reserves_whole_request: bool   # pages for all of I + O at admission (TensorRT-LLM GUARANTEED_NO_EVICT);
                                   # False: pages as the request grows, preempting when full (vLLM, SGLang)
    source: str
    small_gpu_limits: tuple[int, int] | None = None  # (max_batch, max_num_tokens) below 70 GiB or on an A100

    def for_gpu(self, gpu) -> "Engine":
        """The engine's limits on this GPU: vLLM keeps 256 sequences and 2,048 tokens per step on GPUs under 70 GiB
        and on A100s (vllm/engine/arg_utils.py get_batch_defaults, "Setting large max_num_batched_tokens for A100
        reduces throughput, see PR #17885")."""
        small = self.small_gpu_limits
        if small and (gpu.memory_bytes < 70 * 2**30 or "a100" in gpu.name.lower()):
            return replace(self, max_batch=small[0], max_num_tokens=small[1], small_gpu_limits=None)
        return self


# Fixed costs: fitted by benchmarks/serving_fit.py on its declared subset (AIConfigurator's silicon rows at
# concurrency <= 4: dense rows for the per-layer cost, MoE rows for the MoE extra, all for the request overhead; an
# engine with fewer than 3 rows keeps the generic value), held at 0 or above; they sit on top of the efficiency
# model's 4 us per GEMM launch and its fp8 activation casts (two kernels per GEMM, efficiency.quantize_seconds),
# which since they were charged leave the dense per-layer cost at its bound, 0. Reference points: TPOT(TP) =
# a/TP + c fits over TP 1-8 give c = 50-80 us per dense layer all in
# (serving-anchors section 3.3), MoE layers ~3x a dense one (section 3.5). Small all-reduces: custom one-shot
# kernels, 8-10 us (llm-analysis `intra_node_min_message_latency` 8 us; AIConfigurator `p2p_latency` 10 us).
ENGINES: dict[str, Engine] = {
    "generic": Engine(
        name="generic", memory_fraction=0.90, memory_base="total", block_tokens=16, max_batch=1024,
        max_num_tokens=8192, fixed_layer_seconds=0.0e-6, fixed_moe_layer_seconds=49.7e-6,
        allreduce_latency_seconds=10e-6, request_overhead_seconds=65.8e-3,
        kv_fp8_with_fp8_weights=False, reserves_whole_request=False,
        source="no engine named: vLLM's memory rule and paging, fixed costs fitted on all engines' rows"),
    "vllm": Engine(
        name="vllm", memory_fraction=0.90, memory_base="total", block_tokens=16, max_batch=1024,
        max_num_tokens=8192, fixed_layer_seconds=0.0e-6, fixed_moe_layer_seconds=49.7e-6,
        allreduce_latency_seconds=10e-6, request_overhead_seconds=44.4e-3,
        kv_fp8_with_fp8_weights=False, reserves_whole_request=False,
        source="vLLM: gpu_memory_utilization 0.9 of total memory (vllm/config: CacheConfig), block_size 16, "
               "max_num_seqs 1024 and max_num_batched_tokens 8192 for the OpenAI server on GPUs of >= 70 GiB "
               "other than A100, else 256 and 2,048 (vllm/engine/arg_utils.py get_batch_defaults), "
               "kv_cache_dtype 'auto' = the model's dtype",
        small_gpu_limits=(256, 2048)),
    "trtllm": Engine(
        name="trtllm", memory_fraction=0.90, memory_base="free", block_tokens=32, max_batch=2048,
        max_num_tokens=8192, fixed_layer_seconds=0.0e-6, fixed_moe_layer_seconds=49.7e-6,
        allreduce_latency_seconds=8e-6, request_overhead_seconds=87.5e-3,
        kv_fp8_with_fp8_weights=True, reserves_whole_request=True,
        source="TensorRT-LLM: kv_cache_free_gpu_mem_fraction 0.9 of the memory free after the weights "
               "(KvCacheConfig), tokens_per_block 32, max_batch_size 2048 and max_num_tokens 8192 (docs "
               "'tuning-max-batch-size-and-max-num-tokens'); an FP8 checkpoint gets an FP8 KV cache "
               "(perf-overview: 'the KV cache will automatically be set to FP8')"),
    "sglang": Engine(
        name="sglang", memory_fraction=0.88, memory_base="total", block_tokens=1, max_batch=1024,
        max_num_tokens=8192, fixed_layer_seconds=0.0e-6, fixed_moe_layer_seconds=49.7e-6,
        allreduce_latency_seconds=10e-6, request_overhead_seconds=65.8e-3,
        kv_fp8_with_fp8_weights=False, reserves_whole_request=False,
        source="SGLang: mem_fraction_static ~0.88 of total memory for weights and KV pool, page_size 1, "
               "chunked_prefill_size 8192 (server_args.py defaults for large GPUs, recalled)"),
}


def get_engine(name: str | None) -> Engine:
    key = (name or "generic").strip().lower().replace("-", "").replace("_", "")
    key = {"tensorrtllm": "trtllm", "trt": "trtllm"}.get(key, key)
    if key not in ENGINES:
        raise LlmplanError(f"unknown --engine {name!r}; choose one of vllm, trtllm, sglang")
    return ENGINES[key]
