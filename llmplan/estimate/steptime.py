"""Time of one optimizer step of a training layout, as a sum of named parts, and the memory per GPU it needs.

Pure: model x system x layout -> StepEstimate. The parts (docs/methodology.md, "Step time", has every formula):
- per micro-batch on the slowest pipeline stage: GEMMs, attention core, memory-bound ops (llmplan.estimate.opcosts),
  the logits, recomputation, exposed TP/SP, CP and EP communication, pipeline sends;
- the pipeline bubble: (pp - 1) / vp stage-times per step, i.e. a fraction (pp - 1) / (m x vp) of the m micro-batches
  (Narayanan et al. 2021, section 2.2; Llama 3 paper section 3.3.2);
- data-parallel gradient reduction and ZeRO/FSDP parameter gathers, hidden behind the backward (forward for the
  gathers) compute they overlap, except the last bucket (Megatron --overlap-grad-reduce / PyTorch DDP and FSDP);
- the optimizer step, memory-bound (mixed-precision Adam: 30 bytes read and written per parameter of the shard).
MFU is model FLOPs (PaLM Appendix B: 6 N + 12 L H Q T per token, llmplan's detailed count) / (time x GPUs x peak).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache

from llmplan.estimate.collectives import Group, collective_seconds
from llmplan.estimate.layout import Layout, layout_warnings
from llmplan.estimate.opcosts import ACT_BYTES, head_cost, layer_cost
from llmplan.hardware.efficiency import Efficiency, efficiency_for
from llmplan.models.layers import MoE
from llmplan.models.params import count_params
from llmplan.models.spec import ModelSpec

ADAM_BYTES = 30.0  # per parameter: read fp32 master, m, v, grad (16); write master, m, v (12) and the 16-bit copy (2)
SM_SHARE = {"scaleup": 0.15, "scaleout": 0.02}  # compute slowed while NCCL kernels run beside it (Calculon
# system files' processor_usage: NVLink 0.15, InfiniBand 0.02)


@dataclass(frozen=True)
class System:
    gpu: object                  # llmplan.hardware.GPU (or a custom device)
    gpus: int
    node_gpus: int               # GPUs per NVLink domain
    eff: Efficiency


def make_system(gpu, gpus: int, node_gpus: int | None = None, profile=None) -> System:
    eff = efficiency_for(gpu, profile)
    return System(gpu=gpu, gpus=gpus, node_gpus=int(node_gpus or eff.nvlink_domain_gpus or 1), eff=eff)


@dataclass(frozen=True)
class StepEstimate:
    layout: dict = field(hash=False)
    step_seconds: float
    tokens_per_second_per_gpu: float
    mfu: float
    model_flops_per_step: float
    step_breakdown: dict = field(hash=False)       # seconds per part; they add up to step_seconds
    hidden_comm_seconds: dict = field(hash=False)  # communication that overlaps compute (not in the step time)
    memory_bytes: int | None = None
    memory_breakdown: dict = field(hash=False, default_factory=dict)
    gpu_memory_bytes: int | None = None
    fits: bool | None = None
    warnings: tuple = ()
    efficiency_source: str = ""

    def as_dict(self) -> dict:
        return {"layout": self.layout, "step_seconds": self.step_seconds,
                "tokens_per_second_per_gpu": self.tokens_per_second_per_gpu, "mfu": self.mfu,
                "model_flops_per_step": self.model_flops_per_step, "step_breakdown": self.step_breakdown,
                "hidden_comm_seconds": self.hidden_comm_seconds, "memory_bytes": self.memory_bytes,
                "memory_breakdown": self.memory_breakdown, "gpu_memory_bytes": self.gpu_memory_bytes,
                "fits": self.fits, "warnings": list(self.warnings), "efficiency_source": self.efficiency_source}


def stage_layers(n_layers: int, pp: int, vp: int) -> list[list[int]]:
    """Layer indices on each pipeline rank: pp x vp chunks of consecutive layers, chunk c on rank c % pp; uneven
    counts give the extra layers to the middle chunks, not the first and last (which hold the embedding and the
    head: Llama 3 paper section 3.3.2 takes one layer off each)."""
    chunks = pp * vp
    base, extra = divmod(n_layers, chunks)
    order = sorted(range(chunks), key=lambda c: (c in (0, chunks - 1), c))
    sizes = [base + (1 if c in order[:extra] else 0) for c in range(chunks)]
    out: list[list[int]] = [[] for _ in range(pp)]
    start = 0
    for c, size in enumerate(sizes):
        out[c % pp].extend(range(start, start + size))
        start += size
    return out


def per_spec(fn):
    """Cache a function of a model spec by the spec object itself (hashing a spec of many layer groups costs more
    than the estimate; a spec is frozen, so the same object gives the same answer)."""
    memo: dict = {}

    def wrapper(spec, *args):
        hit = memo.get((id(spec), args))
        if hit is not None and hit[0] is spec:
            return hit[1]
        value = fn(spec, *args)
        if len(memo) > 512:
            memo.clear()
        memo[(id(spec), args)] = (spec, value)
        return value

    wrapper.__doc__ = fn.__doc__
    return wrapper


@lru_cache(maxsize=4096)
def _stage_groups(owner: tuple[int, ...], kinds: int, pp: int, vp: int) -> tuple[tuple[int, ...], ...]:
    """Per pipeline rank, how many layers of each kind it holds (`owner`: the kind of every layer, in order)."""
    out = []
    for layers in stage_layers(len(owner), pp, vp):
        counts = [0] * kinds
        for i in layers:
            counts[owner[i]] += 1
        out.append(tuple(counts))
    return tuple(out)


@per_spec
def _kinds(spec: ModelSpec):
    """The distinct layer makes (groups of equal mixer, FFN and norms merged) and the make of every layer."""
    kinds: list = []
    owner: list[int] = []
    for g in spec.layer_groups:
        k = (g.mixer, g.ffn, g.norms)
        if k not in kinds:
            kinds.append(k)
        owner += [kinds.index(k)] * g.count
    return tuple(kinds), tuple(owner)


@per_spec
def _group_params(spec: ModelSpec) -> tuple[tuple[float, float, float], ...]:
    """Per layer make, one layer's (TP-split, expert, replicated) parameters."""
    h = spec.hidden
    out = []
    for mixer, ffn, norms in _kinds(spec)[0]:
        split = mixer.params(h) if mixer is not None else 0.0
        expert = replicated = 0.0
        if isinstance(ffn, MoE):
            expert = ffn.experts * ffn.expert_params(h)
            split += ffn.shared_params(h)
            replicated += ffn.router_params(h)
        elif ffn is not None:
            split += ffn.params(h)
        replicated += norms * h
        out.append((float(split), float(expert), float(replicated)))
    return tuple(out)


@per_spec
def _edge_params(spec: ModelSpec) -> tuple[float, float]:
    b = count_params(spec)
    return float(b.embeddings), float(b.output_head or b.embeddings)


@per_spec
def _flops_per_token(spec: ModelSpec, seq: int) -> float:
    from llmplan.estimate.flops import train_flops_per_token

    return train_flops_per_token(spec, seq)


def _params_per_rank(spec: ModelSpec, layout: Layout, counts: tuple[int, ...], first: bool,
                     last: bool) -> tuple[float, float]:
    """(dense, expert) parameters one GPU of this stage holds."""
    dense = expert = 0.0
    for n, (split, exp, rep) in zip(counts, _group_params(spec)):
        dense += n * (split / layout.tp + rep)
        expert += n * exp / layout.ep
    emb, head = _edge_params(spec)
    if first:
        dense += emb / layout.tp
    if last and (layout.pp > 1 or spec.tied_embeddings is False):
        dense += head / layout.tp
    return dense, expert


@lru_cache(maxsize=65536)
def _head_cost(eff: Efficiency, key: Layout, hidden: int, vocab: int, node: int):
    return head_cost(eff, key, hidden, vocab, node)


@lru_cache(maxsize=65536)
def _layer_cost(eff: Efficiency, key: Layout, mixer, ffn, norms: int, hidden: int, node: int):
    return layer_cost(eff, key, mixer, ffn, norms, hidden, node)


def estimate_step(spec: ModelSpec, system: System, layout: Layout, memory: bool = True) -> StepEstimate:
    t, eff, node = layout, system.eff, system.node_gpus
    kinds, owner = _kinds(spec)
    key = replace(t, pp=1, vp=1, dp=1, zero=0, global_batch=1)  # what a layer's cost depends on
    costs = [_layer_cost(eff, key, mixer, ffn, norms, spec.hidden, node) for mixer, ffn, norms in kinds]
    stages = _stage_groups(owner, len(kinds), t.pp, t.vp)
    head, head_comm = _head_cost(eff, key, spec.hidden, spec.vocab, node)
    w = ACT_BYTES
    tokens = t.micro_batch * t.seq / t.cp
    p2p = 0.0
    if t.pp > 1:  # activations sent to the next stage, split over TP (Megatron's scatter-gather optimisation)
        p2p = collective_seconds(eff, "p2p", tokens * spec.hidden * w / t.tp, Group(t.pp, t.tp * t.cp * t.dp, node))

    def stage_parts(s: int) -> dict:
        parts = dict.fromkeys(("gemm", "attention_core", "memory_bound", "logits", "recompute", "tp_comm",
                               "cp_comm", "ep_comm", "pp_p2p", "host_overhead"), 0.0)
        hidden = dict.fromkeys(("tp_comm", "cp_comm"), 0.0)
        for n, c in zip(stages[s], costs):
            if not n:
                continue
            parts["gemm"] += n * (c.gemm_fwd + c.gemm_bwd)
            parts["attention_core"] += n * (c.attn_fwd + c.attn_bwd)
            parts["memory_bound"] += n * (c.mem_fwd + c.mem_bwd)
            parts["recompute"] += n * c.recompute
            tp = c.tp_fwd + c.tp_bwd + c.recompute_comm * (c.tp_fwd / max(c.tp_fwd + c.cp_fwd + c.ep_fwd, 1e-30))
            if t.tp_overlap:  # each collective hides behind the GEMM it is split with (Wang et al. 2022)
                exposed = max(0.0, tp - (c.gemm_fwd + c.gemm_bwd)) + 2 * eff.collective_latency_seconds("scaleup")
                exposed = min(exposed, tp)
                hidden["tp_comm"] += n * (tp - exposed)
                tp = exposed
            parts["tp_comm"] += n * tp
            cp_exposed = max(0.0, c.cp_fwd - c.attn_fwd) + max(0.0, c.cp_bwd - c.attn_bwd)
            parts["cp_comm"] += n * cp_exposed
            hidden["cp_comm"] += n * (c.cp_fwd + c.cp_bwd - cp_exposed)
            parts["ep_comm"] += n * (c.ep_fwd + c.ep_bwd)
            # the host dispatches ahead of the GPU; where the layer's kernels are shorter than their dispatch,
            # the GPU waits for the host (the stream time is the larger of the two)
            stream = c.compute + c.recompute + tp + cp_exposed + c.ep_fwd + c.ep_bwd
            parts["host_overhead"] += n * max(0.0, c.host - stream)
        if s == t.pp - 1:
            parts["logits"] += head
            parts["tp_comm"] += head_comm
        if t.pp > 1:
            parts["pp_p2p"] = 2 * t.vp * p2p
        return parts, hidden

    # ranks holding the same layers cost the same: time each distinct one once (the last also holds the head)
    distinct: dict = {}
    for s in range(t.pp):
        k = (stages[s], s == t.pp - 1)
        if k not in distinct:
            parts_s = stage_parts(s)
            distinct[k] = (s, sum(parts_s[0].values()), parts_s)
    slow, _, (mb_parts, mb_hidden) = max(distinct.values(), key=lambda v: (v[1], -v[0]))
    stage_time = sum(mb_parts.values())
    m = t.micro_batches
    breakdown = {k: m * v for k, v in mb_parts.items()}
    hidden = {k: m * v for k, v in mb_hidden.items()}
    breakdown["pipeline_bubble"] = (t.pp - 1) / t.vp * stage_time
    # forward / backward windows of one micro-batch on the slowest stage, for overlapping DP/ZeRO communication
    n_stage = max(sum(stages[slow]), 1)
    fwd = sum(n * (c.gemm_fwd + c.attn_fwd + c.mem_fwd) for n, c in zip(stages[slow], costs))
    bwd = stage_time - fwd - mb_parts["pp_p2p"]
    dense, expert = _params_per_rank(spec, t, stages[slow], slow == 0, slow == t.pp - 1)
    grad_bytes = 2.0 if t.dtype == "fp16" else 4.0  # Megatron reduces bf16 runs' gradients in fp32 (arguments.py
    # sets accumulate_allreduce_grads_in_fp32 for bf16); PyTorch FSDP mixed precision: reduce_dtype fp32
    dp_group = Group(t.dp * t.cp, t.tp, node)
    edp = max(t.tp * t.cp * t.dp // t.ep, 1)
    ep_group = Group(edp, t.ep, node)

    # how many collectives carry them (each pays its latency): FSDP gathers and reduces each block; Megatron-Core
    # buckets gradients and parameters by max(40M, 1M x dp) parameters (distributed_data_parallel.py); without
    # overlap, Megatron-LM's local DDP and DeepSpeed reduce one flat buffer after the backward
    if t.zero == 3:
        buckets = n_stage
    elif t.grad_overlap:
        buckets = max(1, math.ceil((dense + expert) / max(40e6, 1e6 * t.dp * t.cp)))
    else:
        buckets = 1

    def coll(op: str, per_param_bytes: float) -> float:
        return buckets * (collective_seconds(eff, op, dense * per_param_bytes / buckets, dp_group)
                          + collective_seconds(eff, op, expert * per_param_bytes / buckets, ep_group))

    dp_exposed = gather_exposed = dp_hidden = gather_hidden = 0.0
    if t.zero == 3 and t.dp * t.cp > 1:  # FSDP: gather before forward and again before backward, reduce-scatter gradients, per mb
        ag, rs = coll("all_gather", 2.0), coll("reduce_scatter", grad_bytes)
        f_exp = max(ag - fwd, ag / n_stage)
        b_exp = max(ag + rs - bwd, (ag + rs) / n_stage)
        gather_exposed = m * (f_exp + b_exp * ag / (ag + rs))  # the backward's exposure split by volume
        dp_exposed = m * b_exp * rs / (ag + rs)
        gather_hidden, dp_hidden = m * 2 * ag - gather_exposed, m * rs - dp_exposed
    elif t.zero != 3:
        red = coll("all_reduce", grad_bytes) if t.zero == 0 else coll("reduce_scatter", grad_bytes)
        dp_exposed = max(red - bwd, red / n_stage) if t.grad_overlap else red
        dp_hidden = red - dp_exposed
        if t.zero in (1, 2):  # updated parameters gathered, overlapped with the next step's forward
            ag = coll("all_gather", 2.0)
            gather_exposed = max(ag - fwd, ag / n_stage)
            gather_hidden = ag - gather_exposed
    breakdown["dp_grad_reduce"] = dp_exposed
    breakdown["zero_param_gather"] = gather_exposed
    hidden["dp_grad_reduce"] = max(dp_hidden, 0.0)
    hidden["zero_param_gather"] = max(gather_hidden, 0.0)
    shard = (dense / (t.dp * t.cp) + expert / edp) if t.zero >= 1 else dense + expert
    breakdown["optimizer"] = eff.memory_seconds(ADAM_BYTES * shard)
    dp_tier = dp_group.tier
    breakdown["overlap_slowdown"] = (SM_SHARE["scaleup"] * (hidden["tp_comm"] + hidden["cp_comm"])
                                     + SM_SHARE[dp_tier] * (hidden["dp_grad_reduce"] + hidden["zero_param_gather"]))
    step = sum(breakdown.values())
    tokens_step = t.global_batch * t.seq
    model_flops = _flops_per_token(spec, t.seq) * tokens_step
    peak = eff.peak(t.dtype)
    mfu = model_flops / (step * system.gpus * peak)
    warnings = tuple(layout_warnings(t, node))
    est = StepEstimate(layout=t.as_dict(), step_seconds=step, tokens_per_second_per_gpu=tokens_step / step /
                       system.gpus, mfu=mfu, model_flops_per_step=model_flops, step_breakdown=breakdown,
                       hidden_comm_seconds=hidden, warnings=warnings, efficiency_source=eff.source)
    if not memory:
        return est
    from llmplan.estimate.stepmemory import layout_memory

    mem = layout_memory(spec, system.gpu, t)
    cap = getattr(system.gpu, "memory_bytes", None)
    return replace(est, memory_bytes=mem.total_bytes, memory_breakdown=dict(mem.breakdown), gpu_memory_bytes=cap,
                   fits=(mem.total_bytes <= cap * (1 - _headroom())) if cap else None)


def _headroom() -> float:
    from llmplan.estimate.memory import DEFAULT_HEADROOM

    return DEFAULT_HEADROOM


__all__ = ["System", "StepEstimate", "make_system", "estimate_step", "stage_layers"]
