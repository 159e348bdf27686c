"""Search training layouts (TP x PP x VP x CP x EP x ZeRO x micro-batch x recompute) for the fastest that fits.

Pure. Every candidate is timed by the step-time model without memory (cheap: layer costs are cached across
candidates that share TP, CP, EP, micro-batch and recompute); candidates are then taken fastest first, and the memory
model keeps those that fit until `top` are found (memory depends on neither VP nor the global batch, and is cached).
Search space (the field's practice: Narayanan et al. 2021 section 3; Llama 3 paper section 3.3.2):
- TP a power of two within one NVLink domain dividing the heads; SP on with TP (Korthikanti et al. 2022);
- CP a power of two with at least 2,048 tokens per rank; PP any divisor of the remaining GPUs up to the layers,
  VP 1-4 where the micro-batches allow interleaving; EP a power of two dividing the experts (MoE only);
- ZeRO 0, 1, 2, 3; micro-batch 1, 2, 4, 8 dividing the per-rank batch; recompute none, selective, full.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmplan.errors import LlmplanError
from llmplan.estimate.layout import Layout, check_layout, model_limits
from llmplan.estimate.steptime import StepEstimate, System, estimate_step

MICRO_BATCHES = (1, 2, 4, 8)
RECOMPUTES = ("none", "selective", "full")
ZEROS = (0, 1, 2, 3)
MIN_CP_TOKENS = 2048


@dataclass(frozen=True)
class PlanResult:
    layouts: tuple[StepEstimate, ...] = field(hash=False)  # fastest first, all fitting
    searched: int                  # candidate layouts timed
    fitting_checked: int           # candidates whose memory was estimated
    fastest_unfitting: StepEstimate | None = None  # the fastest candidate overall, when it does not fit


def _pow2(limit: int) -> list[int]:
    out, v = [], 1
    while v <= limit:
        out.append(v)
        v *= 2
    return out


def candidates(spec, gpus: int, node: int, seq: int, global_batch: int, dtype: str, fixed: dict | None = None):
    """Every legal layout of the search space (fields in `fixed` held at their value)."""
    fixed = fixed or {}
    heads, experts, layers = model_limits(spec)

    def pick(name, values):
        return [fixed[name]] if fixed.get(name) is not None else values

    for tp in pick("tp", [t for t in _pow2(node) if heads % t == 0 and gpus % t == 0]):
        for cp in pick("cp", [c for c in _pow2(gpus // tp) if c == 1 or (seq // c >= MIN_CP_TOKENS
                                                                        and seq % (2 * c) == 0)]):
            rest = gpus // (tp * cp)
            if rest * tp * cp != gpus:
                continue
            for pp in pick("pp", [p for p in range(1, min(rest, layers) + 1) if rest % p == 0]):
                dp = rest // pp
                if global_batch % dp:
                    continue
                for ep in pick("ep", [e for e in _pow2(min(experts, 64)) if experts % e == 0
                                      and (tp * cp * dp) % e == 0] if experts else [1]):
                    for mb in pick("micro_batch", [m for m in MICRO_BATCHES if (global_batch // dp) % m == 0]):
                        m = global_batch // (dp * mb)
                        vps = [1] if pp == 1 else [v for v in (1, 2, 3, 4) if pp * v <= layers
                                                   and (v == 1 or m % pp == 0)]
                        for vp in pick("vp", vps):
                            for zero in pick("zero", list(ZEROS)):
                                for rc in pick("recompute", list(RECOMPUTES)):
                                    yield Layout(tp=tp, pp=pp, vp=vp, cp=cp, ep=ep, dp=dp, zero=zero, sp=tp > 1,
                                                 micro_batch=mb, global_batch=global_batch, seq=seq, recompute=rc,
                                                 dtype=dtype, tp_overlap=bool(fixed.get("tp_overlap")))


def plan_layouts(spec, system: System, seq: int, global_batch: int, dtype: str = "bf16", top: int = 5,
                 fixed: dict | None = None) -> PlanResult:
    """The `top` fastest layouts that fit on `system`, fastest first."""
    timed: list[tuple[float, Layout, StepEstimate]] = []
    for layout in candidates(spec, system.gpus, system.node_gpus, seq, global_batch, dtype, fixed):
        try:
            check_layout(layout, spec)
        except LlmplanError:
            continue
        est = estimate_step(spec, system, layout, memory=False)
        timed.append((est.step_seconds, layout, est))
    if not timed:
        given = {k: v for k, v in (fixed or {}).items() if k in ("tp", "pp", "vp", "cp", "ep", "zero",
                                                                  "micro_batch", "recompute")}
        if given:  # say what is wrong with the layout options held fixed
            from llmplan.estimate.layout import make_layout

            make_layout(system.gpus, spec, seq=seq, global_batch=global_batch, dtype=dtype,
                        **{"tp": 1, "pp": 1, "cp": 1, **given})
        raise LlmplanError(f"no layout of {system.gpus} GPUs can run a global batch of {global_batch} sequences "
                           f"of {spec.name}: the data-parallel ranks must divide the batch; try a batch that is a "
                           "multiple of a power of two")
    timed.sort(key=lambda r: r[0])
    found: list[StepEstimate] = []
    checked = 0
    seen_memory: dict = {}
    for _, layout, _est in timed:
        mkey = (layout.tp, layout.pp, layout.cp, layout.ep, layout.dp, layout.zero, layout.micro_batch,
                layout.recompute)
        if seen_memory.get(mkey) is False:
            continue
        full = estimate_step(spec, system, layout, memory=True)
        checked += 1
        seen_memory[mkey] = bool(full.fits)
        if full.fits:
            found.append(full)
            if len(found) >= top:
                break
    fastest = None if found and found[0].step_seconds <= timed[0][0] else estimate_step(spec, system, timed[0][1])
    return PlanResult(layouts=tuple(found), searched=len(timed), fitting_checked=checked, fastest_unfitting=fastest)
