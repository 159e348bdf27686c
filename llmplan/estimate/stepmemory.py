"""Memory per GPU of a training layout, from the memory model (llmplan.estimate.memory), for the step-time model.

What the layout adds to the memory model's inputs:
- uneven pipeline stages (126 layers on 16 stages): the fullest stage, ceil(layers / pp) layers, is what must fit,
  so the model is sized as ceil(layers / pp) x pp layers;
- context parallelism splits each sequence over cp GPUs: activations of seq / cp tokens, and ZeRO shards over
  dp x cp ranks (Megatron's distributed optimizer and FSDP2 shard over both);
- expert parallelism: experts / ep experts per GPU (passed as `ep` when the memory model takes it and ep divides
  the data-parallel ranks; an EP group drawn from TP x DP, Megatron-Core with expert TP 1, is sized by giving the
  memory model a spec whose MoE layers leave experts / ep experts on a GPU after its TP split);
- fp8 training keeps 16-bit weights and fp32 master weights (Transformer Engine, torchao float8): memory as bf16.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

from llmplan.estimate.layout import Layout
from llmplan.estimate.memory import MemoryConfig, MemoryEstimate, estimate_memory
from llmplan.models.layers import MoE
from llmplan.models.spec import ModelSpec

_HAS_EP = "ep" in MemoryConfig.__dataclass_fields__


def _rounded_layers(spec: ModelSpec, pp: int) -> ModelSpec:
    layers = spec.total_layers
    if layers % pp == 0:
        return spec
    extra = -(-layers // pp) * pp - layers
    if spec.groups:
        last = spec.groups[-1]
        groups = spec.groups[:-1] + (dataclasses.replace(last, count=last.count + extra),)
        return spec.with_(groups=groups, layers=spec.layers + extra)
    return spec.with_(layers=spec.layers + extra)


def _experts_per_rank(spec: ModelSpec, tp: int, ep: int) -> ModelSpec:
    """Without `ep` in the memory model: a spec whose MoE layers, split over tp as the model does, leave
    experts / ep experts on a GPU."""
    def local(moe: MoE) -> MoE:
        return dataclasses.replace(moe, experts=max(moe.top_k, round(moe.experts * tp / ep)))

    if spec.groups:
        groups = tuple(dataclasses.replace(g, ffn=local(g.ffn)) if isinstance(g.ffn, MoE) else g for g in spec.groups)
        return spec.with_(groups=groups)
    if spec.is_moe:
        return spec.with_(experts=max(spec.experts_per_token, round(spec.experts * tp / ep)))
    return spec


@lru_cache(maxsize=8192)
def _memory(spec: ModelSpec, tp: int, pp: int, cp: int, ep: int, dp: int, zero: int, sp: bool, micro_batch: int,
            seq: int, recompute: str, dtype: str) -> MemoryEstimate:
    spec = _rounded_layers(spec, pp)
    kw = {}
    if ep > 1:
        if _HAS_EP and (dp * cp) % ep == 0:
            kw["ep"] = ep
        else:
            spec = _experts_per_rank(spec, tp, ep)
    cfg = MemoryConfig(spec=spec, mode="train", dtype="bf16" if dtype == "fp8" else dtype, batch=micro_batch,
                       seq=max(seq // cp, 1), dp=dp * cp, zero=zero, tp=tp, pp=pp, sp=sp and tp > 1,
                       recompute=recompute, grad_dtype="fp32" if zero < 3 else "auto", **kw)
    return estimate_memory(cfg)


def layout_memory(spec: ModelSpec, gpu, layout: Layout) -> MemoryEstimate:
    t = layout
    return _memory(spec, t.tp, t.pp, t.cp, t.ep, t.dp, t.zero, t.sp, t.micro_batch, t.seq, t.recompute, t.dtype)
