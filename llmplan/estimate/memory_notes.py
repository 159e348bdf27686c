"""The sentences `llmplan memory` prints beside its numbers: what was assumed, how the cache was sized, and the
common rule of thumb to compare with (from the same MemoryConfig that llmplan.estimate.memory estimates)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmplan.estimate.quantization import raw_weight_bytes
from llmplan.estimate.shapes import block_linears
from llmplan.models.spec import ModelSpec

if TYPE_CHECKING:
    from llmplan.estimate.memory import MemoryConfig


def cache_notes(spec: ModelSpec, seq: int) -> list[str]:
    """How the cache was sized per layer kind (only where a layer kind other than full attention is present)."""
    from llmplan.estimate.kvcache import layer_kind

    out = []
    for g in spec.layer_groups:
        m, kind = g.mixer, layer_kind(g.mixer)
        if kind in ("sliding", "chunked"):
            what = "window" if kind == "sliding" else "chunk"
            out.append(f"{g.count} {kind} layers hold at most their {what} of {m.window:,} tokens "
                       f"({m.tokens_held(seq):,} at this length)")
        elif kind == "mla":
            out.append(f"{g.count} MLA layers cache the latent: kv_lora_rank {m.kv_lora_rank} + qk_rope_head_dim "
                       f"{m.qk_rope_head_dim} = {m.kv_values_per_token()} values per token (vLLM, SGLang), "
                       "the same on every tensor-parallel GPU")
        elif kind in ("csa", "hca"):  # DeepSeek-V4 compressed attention
            index = f" and an indexer key of {m.index_head_dim}" if m.sparse else ""
            out.append(f"{g.count} {kind} layers hold their window of {m.window:,} tokens plus one entry of "
                       f"{m.head_dim} values{index} per {m.compress_ratio} tokens ({m.compressed_entries(seq):,} "
                       "at this length; transformers DeepseekV4 caches, vLLM)")
        elif kind in ("mamba2", "gated_deltanet"):
            out.append(f"{g.count} {kind} layers keep a fixed state of {g.state_values():,} values per sequence, "
                       "whatever its length (breakdown: state)")
    seen, notes = set(), []
    for n in out:  # groups of one kind repeat (Gemma's 5:1 pattern): say each once, with the layers summed
        key = n.split(" ", 1)[1]
        if key not in seen:
            seen.add(key)
            total = sum(int(x.split(" ", 1)[0]) for x in out if x.split(" ", 1)[1] == key)
            notes.append(f"{total} {key}")
    return notes


def rule_of_thumb(cfg: MemoryConfig, n: int) -> tuple[int | None, str]:
    if cfg.mode in ("train", "finetune"):
        return 6 * 4 * n, "6 x fp32 weights (24 bytes/param): model states and a rough activation allowance"
    if cfg.mode == "infer":
        w = raw_weight_bytes(n, cfg.dtype)
        return int(1.2 * w), f"1.2 x {cfg.dtype} weights: weights plus 20% for cache and activations"
    return None, "no common rule of thumb for adapter training"


def assumptions(cfg: MemoryConfig, p: float, temp: float, stage: str, stored: bool = False) -> list[str]:
    out = []
    spec = cfg.spec
    if stored:
        out.append(f"weights in the checkpoint's stored format {spec.weight_format.label}, the rest in bf16 "
                   "(--dtype overrides)")
    if cfg.ep > 1:
        where = ("the expert-parallel group is drawn from the data-parallel ranks (Megatron-Core), so ZeRO shards "
                 f"the experts' states over dp / ep = {cfg.dp // cfg.ep}") if cfg.mode != "infer" else \
            "the other weights as under --tp"
        out.append(f"expert parallelism --ep {cfg.ep}: each GPU holds 1/{cfg.ep} of the routed experts; {where}")
    if spec.mtp_layers:
        out.append(f"{spec.mtp_layers} multi-token-prediction module(s) not counted (transformers does not build "
                   "them; DeepSeek-V3 trains with them)")
    if cfg.amp:
        out.append(f"PyTorch autocast ({cfg.dtype}): fp32 weights (the master copy), fp32 gradients, {cfg.optimizer} "
                   "states in fp32, a 16-bit copy of each matmul weight from forward to backward; fp32 residual "
                   "stream")
    elif cfg.mode in ("train", "finetune"):
        mixed = cfg.dtype != "fp32"
        grads = "fp32" if cfg.grad_dtype == "fp32" else ("bf16/fp16" if mixed and cfg.grad_dtype == "auto"
                                                         else cfg.grad_dtype)
        out.append(f"{'mixed precision with fp32 master weights' if mixed else 'pure fp32'}; {cfg.optimizer} "
                   f"states in fp32; gradients in {grads}")
    if cfg.mode in ("lora", "qlora"):
        base = "NF4 with double quantization (4.127 bits/param)" if cfg.mode == "qlora" else cfg.dtype
        mats = block_linears(spec)
        present = [t for t in cfg.lora_targets if any(m.targeted((t,)) for m in mats)] or list(cfg.lora_targets)
        out.append(f"frozen base in {base}; LoRA rank {cfg.lora_rank} on {', '.join(present)}; adapters and "
                   f"their gradients in {cfg.adapter_dtype}, optimizer states in fp32")
    if cfg.mode != "infer":
        out.append(f"activations: {cfg.attention} attention, recompute {cfg.recompute}, "
                   f"{'dropout masks kept' if cfg.dropout else 'no dropout'}, {int(p * 8)}-bit values, micro-batch "
                   f"{cfg.batch} x {cfg.seq} tokens; logits upcast to fp32 for the loss")
        if cfg.pp > 1:
            out.append(f"pipeline 1F1B: the first stage holds {cfg.pp} micro-batches in flight; reported stage: "
                       f"{stage}")
    elif cfg.spec.arch == "encoder":
        out.append(f"encoder-only: no KV cache; one forward pass over {cfg.seq} tokens x batch {cfg.batch}")
    else:
        out.append(f"KV cache in {cfg.kv_dtype} for {cfg.seq} tokens x batch {cfg.batch} x beams {cfg.beams}; "
                   "prefill in one chunk")
        out += cache_notes(spec, cfg.seq)
    if cfg.zero:
        out.append(f"ZeRO stage {cfg.zero} over {cfg.dp} data-parallel GPUs")
    if temp:
        out.append("ZeRO-3/offload gathers one layer and prefetches the next: counted in overhead")
    if cfg.offload != "none":
        out.append(f"offload {cfg.offload}: host memory reported per GPU (multiply by GPUs per node)")
    if cfg.measured_overhead_bytes is not None:
        out.append(f"runtime overhead measured: {cfg.overhead_source}")
    else:
        out.append("runtime overhead: 0.5 GiB CUDA context and workspaces + 5% of tensors for fragmentation")
    if cfg.seq > cfg.spec.context:
        out.append(f"sequence {cfg.seq} exceeds the model's context {cfg.spec.context}")
    return out
