"""Rendering for `llmplan serve`: one JSON object, or rich tables (stdout) with the assumptions."""

from __future__ import annotations

import math

from llmplan.estimate.serve_engines import Engine
from llmplan.estimate.serve_model import ServeEstimate
from llmplan.estimate.serve_step import StepTime
from llmplan.models import ModelSpec
from llmplan.report.output import emit_json, kv_table, note, stdout_console, table
from llmplan.units import format_bytes, format_seconds


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _time(s: float) -> str:
    if not math.isfinite(s):
        return "unbounded"
    return f"{s * 1e3:.3g} ms" if s < 1 else format_seconds(s)


def _step_dict(st: StepTime) -> dict:
    return {"seconds": st.seconds, "gemm_seconds": st.gemm_seconds, "attention_seconds": st.attention_seconds,
            "comm_seconds": st.comm_seconds, "fixed_seconds": st.fixed_seconds,
            "elementwise_seconds": st.elementwise_seconds,
            "weight_bytes_read": st.weight_bytes, "kv_bytes_read": st.kv_bytes}


def estimate_dict(est: ServeEstimate) -> dict:
    m, s = est.memory, est.steady
    return {
        "model": est.model, "gpu": est.gpu, "gpus": est.gpus, "tp": est.tp, "ep": est.ep,
        "attention_dp": est.attention_dp, "replicas": est.replicas,
        "engine": est.engine, "engine_max_batch": est.engine_max_batch, "prefill_chunk": est.prefill_chunk,
        "weights": est.weights, "kv_dtype": est.kv_dtype, "compute_dtype": est.compute_dtype,
        "input_tokens": est.input_tokens, "output_tokens": est.output_tokens, "load": est.load,
        "concurrency": est.concurrency, "rate": est.rate,
        "ttft_seconds": est.ttft_seconds, "tpot_seconds": est.tpot_seconds, "e2e_seconds": est.e2e_seconds,
        "output_tokens_per_second": est.output_tokens_per_second,
        "output_tokens_per_second_per_gpu": est.output_tokens_per_second_per_gpu,
        "requests_per_second": est.requests_per_second, "max_concurrency": est.max_concurrency,
        "overloaded": est.overloaded, "admission_wait_seconds": est.admission_wait_seconds,
        "requests": est.requests, "first_wave_ttft_seconds": est.first_wave_ttft_seconds,
        "later_ttft_seconds": est.later_ttft_seconds,
        "prefill_wait_steps": s.prefill_wait_steps,
        "memory_per_gpu": {"memory_bytes": m.memory_bytes, "weights_bytes": m.weights_bytes,
                           "activation_bytes": m.activation_bytes, "reserve_bytes": m.reserve_bytes,
                           "kv_pool_bytes": m.kv_pool_bytes, "kv_bytes_per_request": m.kv_bytes_per_request,
                           "block_tokens": m.block_tokens, "max_concurrency_per_replica": m.max_concurrency,
                           "rule": m.rule},
        "step": {"decode_tokens": s.decode_batch, "prefill_tokens_per_mixed_step": s.prefill_per_mixed_step,
                 "mixed_steps_per_request": s.mixed_steps / s.concurrency if s.concurrency else 0.0,
                 "steps_per_request": s.steps_per_request,
                 "decode_only": _step_dict(s.decode_only), "mixed": _step_dict(s.mixed)},
        "rates": {"hbm_bytes_per_s": est.rates.hbm_bytes_per_s, "gemm_flops_per_s": est.rates.gemm_flops_per_s,
                  "attention_flops_per_s": est.rates.attention_flops_per_s,
                  "bus_bytes_per_s": est.rates.bus_bytes_per_s, "source": est.rates.source},
        "notes": list(est.notes),
    }


def show_estimate(spec: ModelSpec, est: ServeEstimate, as_json: bool) -> None:
    if as_json:
        emit_json({"command": "serve", **estimate_dict(est)})
        return
    con = stdout_console()
    m, s = est.memory, est.steady
    layout = f"TP {est.tp}" + (f", EP {est.ep}" if est.ep > 1 else "") + (", attention DP" if est.attention_dp
                                                                           else "") + \
        f", {est.replicas} replica" + ("s" if est.replicas > 1 else "")
    if est.load == "rate":
        load = f"{est.rate:g} requests/s ({est.concurrency:,.1f} in flight)"
    elif est.load == "max-throughput":
        load = f"max throughput ({est.concurrency:,.0f} in flight)"
    else:
        load = f"{est.concurrency:g} requests in flight"
    ttft_label = ("TTFT (time to first token)" if est.requests is None else
                  f"TTFT, mean of {est.requests:,} sent at once" if est.load == "max-throughput" else
                  f"TTFT, mean of {est.requests:,} requests")
    rows = [("load", load), (ttft_label, _time(est.ttft_seconds))]
    if est.first_wave_ttft_seconds is not None and est.later_ttft_seconds is not None:
        rows += [("  first wave (all at once)", _time(est.first_wave_ttft_seconds)),
                 ("  afterwards (staggered)", _time(est.later_ttft_seconds))]
    rows += [("TPOT (time per output token)", _time(est.tpot_seconds)),
             ("end-to-end latency", _time(est.e2e_seconds)),
             ("output tokens/s (all GPUs)", _num(est.output_tokens_per_second)),
             ("output tokens/s per GPU", _num(est.output_tokens_per_second_per_gpu)),
             ("requests/s", f"{est.requests_per_second:.3g}"),
             ("max concurrency (KV cache, batch cap)", f"{est.max_concurrency:,}")]
    con.print(kv_table(f"{est.model} on {est.gpus} x {est.gpu} ({layout}); {est.input_tokens:,} in, "
                       f"{est.output_tokens:,} out", rows))
    con.print(kv_table("Memory per GPU", [
        ("GPU memory", format_bytes(m.memory_bytes)), (f"weights ({est.weights})", format_bytes(m.weights_bytes)),
        ("activations (one step)", format_bytes(m.activation_bytes)),
        ("runtime reserve", format_bytes(m.reserve_bytes)),
        (f"KV pool ({est.kv_dtype}, pages of {m.block_tokens})", format_bytes(m.kv_pool_bytes)),
        ("KV per request", format_bytes(m.kv_bytes_per_request)),
    ]))
    parts = [("GEMMs (weights)", "gemm_seconds"), ("attention (KV)", "attention_seconds"),
             ("norms, activation", "elementwise_seconds"), ("all-reduce", "comm_seconds"),
             ("fixed per layer", "fixed_seconds"), ("step", "seconds")]
    con.print(table("Step time on one GPU",
                    ["part", f"decode ({s.decode_batch:.3g} tok)", f"mixed (+{s.prefill_per_mixed_step:,.0f})"],
                    [[label, _time(getattr(s.decode_only, key)), _time(getattr(s.mixed, key))]
                     for label, key in parts]))
    for n in est.notes:
        note(n)
    note(f"rates: {est.rates.source}")
    note(f"engine {est.engine}: KV pool {m.rule}; at most {est.engine_max_batch:,} sequences and "
         f"{est.prefill_chunk:,} tokens a step; sources in docs/methodology.md, Serving")


SHOWN = 10  # layouts in the table


def show_layouts(spec: ModelSpec, gpu, found, I: int, O: int, slo_ttft, slo_tpot, rate, engine: Engine,
                 as_json: bool, max_gpus: int | None = None) -> None:
    if as_json:
        emit_json({"command": "serve", "model": spec.name, "gpu": gpu.name, "engine": engine.name,
                   "input_tokens": I, "output_tokens": O, "slo_ttft_seconds": slo_ttft,
                   "slo_tpot_seconds": slo_tpot, "rate": rate,
                   "fewest_gpus": found[0].gpus if rate is not None else None,
                   "max_gpus": max_gpus if rate is not None else found[0].gpus,
                   "layouts": [dict(tp=x.tp, ep=x.ep, attention_dp=x.attention_dp, replicas=x.replicas,
                                    gpus=x.gpus, concurrency=x.concurrency,
                                    ttft_seconds=x.ttft_seconds, tpot_seconds=x.tpot_seconds,
                                    output_tokens_per_second=x.output_tokens_per_second,
                                    output_tokens_per_second_per_gpu=x.output_tokens_per_second_per_gpu,
                                    requests_per_second=x.requests_per_second, max_concurrency=x.max_concurrency)
                               for x in found]})
        return
    con = stdout_console()
    targets = ", ".join(t for t in (f"TTFT <= {_time(slo_ttft)}" if slo_ttft else "",
                                    f"TPOT <= {_time(slo_tpot)}" if slo_tpot else "") if t)
    title = (f"Fewest {gpu.name} for {rate:g} requests/s" if rate is not None
             else f"Layouts on {found[0].gpus} x {gpu.name}") + f" ({targets})"
    cols = ["TP", "EP", "replicas", "GPUs", "in flight", "TTFT", "TPOT", "tok/s/GPU"]
    shown = found[:SHOWN]
    con.print(table(title, cols, [[str(x.tp) + (" DP" if x.attention_dp else ""), str(x.ep), str(x.replicas),
                                   str(x.gpus), f"{x.concurrency:,.0f}",
                                   _time(x.ttft_seconds), _time(x.tpot_seconds),
                                   _num(x.output_tokens_per_second_per_gpu)] for x in shown]))
    if len(found) > SHOWN:
        note(f"{len(found) - SHOWN} more layouts meet the targets (--json lists them all)")
    if rate is not None:
        b = found[0]
        note(f"layouts on at most {max_gpus} GPUs (--gpus)" if max_gpus else
             "layouts on any number of GPUs (--gpus N bounds them)")
        note(f"fewest GPUs: {b.gpus} ({b.replicas} x TP {b.tp}" + (f", EP {b.ep}" if b.ep > 1 else "")
             + (", attention DP" if b.attention_dp else "") + ")")
    if any(x.attention_dp for x in found):
        note("TP n DP: attention data parallel over the n GPUs (--attention-dp), the MLP/MoE split over them")
    if rate is None:
        note(f"each layout at the largest load that keeps the targets ({I:,} in, {O:,} out; engine {engine.name})")
    else:
        note(f"each layout with the replicas the rate needs, at its share of the rate ({I:,} in, {O:,} out; "
             f"engine {engine.name})")


def relax_hint(spec: ModelSpec, gpu, I: int, O: int, slo_ttft, slo_tpot, common: dict, gpus: int = 8) -> str:
    """What would work: the best single-request latency on the widest layout."""
    from llmplan.errors import LlmplanError
    from llmplan.estimate.serve_layouts import candidate_layouts, widest_tp
    from llmplan.estimate.serve_model import serve_estimate

    best = None
    for tp, ep, adp in candidate_layouts(spec, widest_tp(gpus), True):
        try:
            e = serve_estimate(spec, gpu, input_tokens=I, output_tokens=O, tp=tp, ep=ep, concurrency=1,
                               attention_dp=adp, **common)
        except LlmplanError:
            continue
        if best is None or e.tpot_seconds < best.tpot_seconds:
            best = e
    if best is None:
        return f"the model does not fit on {gpus} of these GPUs; add GPUs, use a larger GPU or a smaller --dtype"
    return (f"the best on up to {gpus} GPUs, one request at a time on --tp {best.tp}, is TTFT "
            f"{_time(best.ttft_seconds)} and TPOT {_time(best.tpot_seconds)}; relax the targets, add GPUs or use a "
            "faster GPU")
