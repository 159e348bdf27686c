"""Which layouts meet a latency target: TP x EP x replicas on the given GPUs, ranked by throughput per GPU, and the
fewest GPUs that serve a target rate within them (at most --gpus when given: a budget, not a hint).

For one replica layout (tp, ep) the largest concurrency whose steady state keeps TTFT <= slo_ttft and
TPOT <= slo_tpot is found by bisection (both grow with the concurrency); its throughput is the layout's goodput
(DistServe, Zhong et al. 2024: requests served per second within the latency targets). A target rate R then needs
ceil(R / goodput) replicas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmplan.errors import LlmplanError
from llmplan.estimate.serve_model import check_layout, deployment, serve_estimate
from llmplan.estimate.serve_engines import Engine, get_engine
from llmplan.estimate.serve_queue import solve_rate, steady_state
from llmplan.models import ModelSpec
from llmplan.models.layers import MoE

TP_CHOICES = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Layout:
    tp: int
    ep: int
    replicas: int
    gpus: int
    concurrency: float               # all replicas, at the SLO
    ttft_seconds: float
    tpot_seconds: float
    output_tokens_per_second: float  # all replicas
    output_tokens_per_second_per_gpu: float
    requests_per_second: float       # all replicas
    max_concurrency: int             # all replicas, KV-limited
    attention_dp: bool = False


def widest_tp(gpus: int) -> int:
    """The widest TP choice on at most `gpus` GPUs; every narrower choice divides it (powers of two)."""
    return max((t for t in TP_CHOICES if t <= gpus), default=1)


def candidate_layouts(spec: ModelSpec, gpus: int, attention_dp: bool = False) -> list[tuple[int, int, bool]]:
    """(tp, ep, attention_dp) that split the model and divide `gpus`; with `attention_dp`, also the layouts that
    run attention data parallel (mixture-of-experts models, tp > 1)."""
    out = []
    moe = any(isinstance(g.ffn, MoE) for g in spec.layer_groups)
    for tp in TP_CHOICES:
        if tp > gpus or gpus % tp:
            continue
        for ep in ([e for e in TP_CHOICES if e <= tp and tp % e == 0] if moe else [1]):
            for adp in ((False, True) if attention_dp and moe and tp > 1 else (False,)):
                try:
                    check_layout(spec, tp, ep, gpus, adp)
                except LlmplanError:
                    continue
                out.append((tp, ep, adp))
    return out


def overhead_of(kw: dict) -> float:
    engine = kw.get("engine")
    return (engine if isinstance(engine, Engine) else get_engine(engine)).request_overhead_seconds


def _deployment(spec, gpu, tp, ep, adp, kw):
    return deployment(spec, gpu, tp, ep, kw.get("dtype"), kw.get("kv_dtype"), kw.get("engine"),
                      kw.get("prefill_chunk"), kw.get("profile"), adp)


def _replica_at_slo(spec, gpu, tp, ep, adp, I, O, slo_ttft, slo_tpot, **kw):
    """(per-replica concurrency, steady state, KV-limited cap) at the largest load within the targets, or None."""
    try:
        est = serve_estimate(spec, gpu, input_tokens=I, output_tokens=O, gpus=tp, tp=tp, ep=ep,
                             max_throughput=True, attention_dp=adp, **kw)
    except LlmplanError:
        return None
    dep = _deployment(spec, gpu, tp, ep, adp, kw)
    cap = est.max_concurrency

    overhead = dep.engine.request_overhead_seconds

    def ok(c: float):
        s = steady_state(dep, c, I, O, closed_loop=False)
        good = ((slo_ttft is None or s.ttft_seconds + overhead <= slo_ttft)
                and (slo_tpot is None or s.tpot_seconds <= slo_tpot))
        return good, s

    good, s = ok(cap)
    if good:
        return float(cap), s, cap
    good, s = ok(1.0)
    if not good:
        return None
    lo, hi = 1.0, float(cap)
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        if ok(mid)[0]:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1.01:
            break
    return lo, ok(lo)[1], cap


def layouts_at_slo(spec: ModelSpec, gpu, gpus: int, input_tokens: int, output_tokens: int,
                   slo_ttft: float | None, slo_tpot: float | None, attention_dp: bool = False,
                   **kw) -> list[Layout]:
    """Every layout on `gpus` GPUs that meets the targets, best throughput per GPU first."""
    out = []
    for tp, ep, adp in candidate_layouts(spec, gpus, attention_dp):
        r = _replica_at_slo(spec, gpu, tp, ep, adp, input_tokens, output_tokens, slo_ttft, slo_tpot, **kw)
        if r is None:
            continue
        c, s, cap = r
        n = gpus // tp
        tok = c * output_tokens / s.cycle_seconds * n
        out.append(Layout(tp, ep, n, gpus, c * n, s.ttft_seconds + overhead_of(kw), s.tpot_seconds, tok,
                          tok / gpus, s.requests_per_second * n, cap * n, adp))
    return sorted(out, key=lambda x: -x.output_tokens_per_second_per_gpu)


def fewest_gpus_for_rate(spec: ModelSpec, gpu, rate: float, input_tokens: int, output_tokens: int,
                         slo_ttft: float | None, slo_tpot: float | None, max_tp: int = 64,
                         attention_dp: bool = False, max_gpus: int | None = None, **kw) -> list[Layout]:
    """For each replica layout, the replicas that serve `rate` requests/s within the targets; fewest GPUs first.
    With `max_gpus` only the layouts on at most that many GPUs; when every layout that meets the targets needs
    more, LlmplanError names the fewest GPUs that would."""
    out = []
    for tp, ep, adp in candidate_layouts(spec, widest_tp(max_tp), attention_dp):
        r = _replica_at_slo(spec, gpu, tp, ep, adp, input_tokens, output_tokens, slo_ttft, slo_tpot, **kw)
        if r is None:
            continue
        c, s, cap = r
        n = max(math.ceil(rate / s.requests_per_second - 1e-9), 1)
        # the n replicas share the rate: each runs its steady state at rate / n (Little's law), within the targets
        at, wait, _ = solve_rate(_deployment(spec, gpu, tp, ep, adp, kw), rate / n, input_tokens, output_tokens, cap)
        tok = rate * output_tokens
        out.append(Layout(tp, ep, n, n * tp, at.concurrency * n, at.ttft_seconds + wait + overhead_of(kw),
                          at.tpot_seconds, tok, tok / (n * tp), rate, cap * n, adp))
    out.sort(key=lambda x: (x.gpus, -x.output_tokens_per_second_per_gpu))
    if max_gpus is not None and out and out[0].gpus > max_gpus:
        b = out[0]
        raise LlmplanError(f"{rate:g} requests/s within the targets needs {b.gpus} x {gpu.name} "
                           f"({b.replicas} x TP {b.tp}), more than --gpus {max_gpus}; raise --gpus to {b.gpus} "
                           "or lower --rate")
    return [x for x in out if max_gpus is None or x.gpus <= max_gpus]
