"""`llmplan serve`'s estimator: a model on GPUs under load -> TTFT, TPOT, throughput, concurrency, memory.

Memory first (llmplan.estimate.serve_memory), then the step time (serve_step), then continuous batching and
queueing (serve_queue). Pure: no printing, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmplan.errors import LlmplanError
from llmplan.estimate.serve_bench import benchmark_ttft_seconds, run_benchmark
from llmplan.estimate.serve_engines import Engine, get_engine
from llmplan.estimate.serve_memory import (KV_FORMATS, WEIGHT_FORMATS, ServeMemory, serve_memory, weight_bytes,
                                           weight_plan)
from llmplan.estimate.serve_queue import Steady, solve_rate, steady_state
from llmplan.estimate.serve_step import Deployment, Rates, compute_dtype_for, step_time
from llmplan.hardware.efficiency import efficiency_for
from llmplan.models import ModelSpec
from llmplan.models.layers import MoE

LOADS = ("concurrency", "rate", "max-throughput", "static")
MAX_REQUESTS = 1_000_000  # a benchmark replayed step by step (serve_bench) stays within a second or so

def rates_for(eff, gpu, tp: int = 1) -> Rates:
    """Achievable rates from llmplan.hardware.efficiency (family defaults, or a bench profile's measurements):
    HBM streaming, flash attention, and the all-reduce bus: NVLink within its domain, the NIC beyond it."""
    sixteen = "bf16" if gpu.peak("bf16") is not None else "fp16"
    tier = "scaleup" if tp <= eff.nvlink_domain_gpus else "scaleout"
    return Rates(float(eff.hbm_bytes_per_s), float(eff.gemm(8192, 8192, 8192, sixteen)),
                 float(eff.attention_flops_per_s(sixteen)), float(eff.collective_bus_bytes_per_s(tier)),
                 str(eff.source))


@dataclass(frozen=True)
class ServeEstimate:
    model: str
    gpu: str
    gpus: int
    tp: int
    ep: int
    replicas: int
    attention_dp: bool
    weights: str
    kv_dtype: str
    compute_dtype: str
    engine: str
    input_tokens: int
    output_tokens: int
    load: str                      # concurrency | rate | max-throughput | static
    concurrency: float             # all replicas
    rate: float | None
    ttft_seconds: float
    tpot_seconds: float
    e2e_seconds: float
    output_tokens_per_second: float
    output_tokens_per_second_per_gpu: float
    requests_per_second: float
    max_concurrency: int           # all replicas: KV-limited, capped by the engine's batch
    overloaded: bool
    admission_wait_seconds: float
    memory: ServeMemory
    steady: Steady
    rates: Rates
    engine_max_batch: int = 0      # the engine's batch cap on this GPU
    prefill_chunk: int = 0         # token budget of one step
    notes: tuple[str, ...] = ()
    requests: int | None = None    # requests the benchmark sends (None: an unbounded run)
    first_wave_ttft_seconds: float | None = None  # mean TTFT of the first wave (all at once), overhead included
    later_ttft_seconds: float | None = None       # TTFT once arrivals are staggered (concurrency), overhead included


def check_layout(spec: ModelSpec, tp: int, ep: int, gpus: int, attention_dp: bool = False) -> list[str]:
    """Raise on a layout the model cannot be split into; return notes on what the engine does instead. With
    attention data parallelism the attention is not split (each rank runs its own requests' attention)."""
    notes = []
    for value, what in ((tp, "--tp"), (ep, "--ep"), (gpus, "--gpus")):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise LlmplanError(f"{what} must be a whole number of at least 1, got {value!r}")
    if gpus % tp:
        raise LlmplanError(f"--gpus {gpus} is not a multiple of --tp {tp}: replicas are whole; use --gpus "
                           f"{tp * max(gpus // tp, 1)} or --tp {math.gcd(gpus, tp)}")
    moe = [g.ffn for g in spec.layer_groups if isinstance(g.ffn, MoE)]
    if ep > 1:
        if not moe:
            raise LlmplanError(f"--ep {ep} splits experts, and {spec.name} has none; drop --ep")
        if tp % ep:
            raise LlmplanError(f"--ep {ep} must divide --tp {tp} (experts are placed within a replica); try "
                               f"--ep {math.gcd(tp, ep)}")
        if any(f.experts % ep for f in moe):
            raise LlmplanError(f"--ep {ep} does not divide the {moe[0].experts} experts")
    for g in spec.layer_groups:
        a = g.attention
        if a is None or (attention_dp and tp > 1):
            continue
        if a.heads % tp:
            ok = [t for t in (1, 2, 4, 8, 16) if a.heads % t == 0]
            raise LlmplanError(f"--tp {tp} does not divide the {a.heads} attention heads; use --tp "
                               f"{' or '.join(map(str, ok[-3:]))}")
        if not a.is_mla and a.kv_heads % tp and tp % a.kv_heads:
            ok = [t for t in (1, 2, 4, 8, 16) if a.kv_heads % t == 0 or t % a.kv_heads == 0]
            raise LlmplanError(f"--tp {tp} neither divides the {a.kv_heads} KV heads nor is a multiple of them; "
                               f"use --tp {' or '.join(map(str, ok[-3:]))}")
        if not a.is_mla and tp > a.kv_heads:
            note = (f"--tp {tp} exceeds the {a.kv_heads} KV heads: each KV head is replicated on {tp // a.kv_heads}"
                    " GPUs (vLLM, TensorRT-LLM and SGLang do so), so the KV cache per GPU does not shrink further")
            if note not in notes:
                notes.append(note)
        if a.is_mla and tp > 1:
            note = (f"MLA keeps one latent per token that every tensor-parallel rank holds in full: the KV cache is "
                    f"duplicated {tp} times (--attention-dp avoids it, as TensorRT-LLM and SGLang do)")
            if note not in notes:
                notes.append(note)
    return notes


def default_kv_dtype(plan, engine: Engine, gpu) -> str:
    if engine.kv_fp8_with_fp8_weights and (plan.linear in ("fp8", "nvfp4") or plan.experts in ("fp8", "nvfp4")):
        return "fp8"
    if plan.linear == "fp16" or gpu.peak("bf16") is None:
        return "fp16"
    return "bf16"


def deployment(spec: ModelSpec, gpu, tp: int = 1, ep: int = 1, dtype: str | None = None,
               kv_dtype: str | None = None, engine: str | Engine | None = None, prefill_chunk: int | None = None,
               profile: dict | None = None, attention_dp: bool = False) -> Deployment:
    eng = (engine if isinstance(engine, Engine) else get_engine(engine)).for_gpu(gpu)
    if not getattr(gpu, "bandwidth_bytes_per_s", 0):
        raise LlmplanError(f"serving is bound by memory bandwidth and {gpu.name} has no figure for it: add hbm=RATE "
                           "to --gpu (e.g. hbm=3.35TB/s)")
    plan = weight_plan(spec, dtype)
    kv = kv_dtype or default_kv_dtype(plan, eng, gpu)
    if kv not in KV_FORMATS:
        raise LlmplanError(f"unknown --kv-dtype {kv!r}; choose one of {', '.join(KV_FORMATS)}")
    chunk = eng.max_num_tokens if prefill_chunk is None else prefill_chunk
    if not isinstance(chunk, int) or chunk < 1:
        raise LlmplanError(f"--prefill-chunk must be a whole number of tokens of at least 1, got {chunk!r}")
    cdt = compute_dtype_for(plan, gpu)
    eff = efficiency_for(gpu, profile)
    sixteen = "bf16" if gpu.peak("bf16") is not None else "fp16"
    return Deployment(spec, gpu, tp, ep, plan, kv, cdt, eng, rates_for(eff, gpu, tp), chunk, eff, sixteen,
                      bool(attention_dp) and tp > 1)


def serve_estimate(spec: ModelSpec, gpu, *, input_tokens: int, output_tokens: int, gpus: int | None = None,
                   tp: int = 1, ep: int = 1, dtype: str | None = None, kv_dtype: str | None = None,
                   concurrency: float | None = None, rate: float | None = None, max_throughput: bool = False,
                   engine: str | Engine | None = None, prefill_chunk: int | None = None,
                   profile: dict | None = None, memory_fraction: float | None = None,
                   static_batch: int | None = None, check_context: bool = True,
                   attention_dp: bool = False, requests: int | None = None) -> ServeEstimate:
    """Serve `spec` on `gpus` GPUs (replicas of `tp`) at one load: a concurrency, a rate, or the maximum.
    `requests`: the requests a benchmark sends; its mean TTFT includes the first wave (llmplan.estimate.
    serve_bench): at a concurrency, C at once then a new one as each finishes; with max_throughput, all at once."""
    if spec.arch != "decoder":
        raise LlmplanError(f"serving models autoregressive decoding; {spec.name} is {spec.arch}")
    if dtype is not None and dtype not in WEIGHT_FORMATS:
        raise LlmplanError(f"unknown --dtype {dtype!r}; choose one of {', '.join(WEIGHT_FORMATS)}")
    for value, what, low in ((input_tokens, "--input-tokens", 1), (output_tokens, "--output-tokens", 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise LlmplanError(f"{what} must be a whole number of at least {low}, got {value!r}")
    if check_context and input_tokens + output_tokens > spec.context:
        raise LlmplanError(f"{input_tokens:,} + {output_tokens:,} tokens exceed {spec.name}'s context of "
                           f"{spec.context:,}; keep --input-tokens + --output-tokens <= {spec.context:,}")
    loads = [concurrency is not None, rate is not None, bool(max_throughput), static_batch is not None]
    if sum(loads) != 1:
        raise LlmplanError("give one load: --concurrency C, --rate R (requests/s) or --max-throughput")
    if requests is not None:
        if not isinstance(requests, int) or isinstance(requests, bool) or not 1 <= requests <= MAX_REQUESTS:
            raise LlmplanError(f"--requests must be a whole number from 1 to {MAX_REQUESTS:,}, got {requests!r}")
        if concurrency is None and not max_throughput:
            raise LlmplanError("--requests sets how many requests a benchmark sends at --concurrency C or all at "
                               "once with --max-throughput; drop it with --rate (Poisson arrivals)")
        if concurrency is not None and requests < concurrency:
            raise LlmplanError(f"--requests {requests:,} is fewer than --concurrency {concurrency:g}: a benchmark "
                               f"keeps C requests in flight; send at least {math.ceil(concurrency):,}")
    gpus = tp if gpus is None else gpus
    notes = check_layout(spec, tp, ep, gpus, attention_dp)
    replicas = gpus // tp
    dep = deployment(spec, gpu, tp, ep, dtype, kv_dtype, engine, prefill_chunk, profile, attention_dp)
    eng = dep.engine
    held = input_tokens + output_tokens if eng.reserves_whole_request else input_tokens + output_tokens / 2
    mem = serve_memory(spec, gpu, dep.plan, dep.kv_dtype, tp, eng, held, memory_fraction, dep.prefill_chunk,
                       dep.attention_dp)
    if mem.max_concurrency < 1:
        need = weight_bytes(spec, dep.plan).total / (0.8 * gpu.memory_bytes)
        bigger = next((t for t in (2, 4, 8, 16, 32, 64) if t >= need and t > tp), None)
        hint = f"--tp {bigger}" if bigger else "more GPUs per replica"
        raise LlmplanError(f"{spec.name} in {dep.plan.label} leaves no room for the KV cache of one "
                           f"{input_tokens + output_tokens:,}-token request on {tp} x {gpu.name}; use {hint}, "
                           "a smaller --dtype or --kv-dtype fp8")
    ranks = tp if dep.attention_dp else 1  # with attention DP each rank schedules its own batch
    cap = min(mem.max_concurrency, eng.max_batch * ranks)
    overloaded, admission = False, 0.0
    engine_ttft, wave, later = None, None, None
    if static_batch is not None:
        state = static_state(dep, static_batch, input_tokens, output_tokens)
        load, per_replica = "static", float(static_batch)
    elif max_throughput:
        load, per_replica = "max-throughput", float(cap)
        state = steady_state(dep, per_replica, input_tokens, output_tokens)
        if requests is not None:  # all at once (a request rate of infinity), at most `cap` running
            n = max(round(requests / replicas), 1)
            engine_ttft = wave = run_benchmark(dep, n, n, input_tokens, output_tokens, cap).ttft_seconds
    elif concurrency is not None:
        if not concurrency > 0 or math.isinf(concurrency):
            raise LlmplanError(f"--concurrency must be a positive number, got {concurrency!r}")
        per_replica = concurrency / replicas
        if per_replica > cap:
            raise LlmplanError(f"--concurrency {concurrency:g} does not fit: at most {cap * replicas:,} requests of "
                               f"{input_tokens:,} + {output_tokens:,} tokens on {gpus} x {gpu.name} (--tp {tp}); "
                               f"lower --concurrency to {cap * replicas:,}, add GPUs or use --kv-dtype fp8")
        load = "concurrency"
        state = steady_state(dep, per_replica, input_tokens, output_tokens)
        engine_ttft, wave, later = benchmark_ttft_seconds(
            dep, per_replica, None if requests is None else requests / replicas, input_tokens, output_tokens, cap)
    else:
        if not rate > 0 or math.isinf(rate):
            raise LlmplanError(f"--rate must be a positive number of requests per second, got {rate!r}")
        load = "rate"
        state, admission, overloaded = solve_rate(dep, rate / replicas, input_tokens, output_tokens, cap)
        per_replica = state.concurrency
        if overloaded:
            most = state.requests_per_second * replicas
            notes.append(f"--rate {rate:g}/s exceeds what this layout serves ({most:.3g} requests/s at its maximum "
                         "concurrency): the queue grows without bound; add replicas (--gpus)")
    if tp > 1 and dep.rates.bus_bytes_per_s < 100e9:
        notes.append(f"tensor parallelism over {dep.rates.bus_bytes_per_s / 1e9:.3g} GB/s (PCIe or across nodes): "
                     "the all-reduces dominate; keep --tp within an NVLink domain")
    tok_s = per_replica * output_tokens / state.cycle_seconds * replicas
    # a static batch is timed inside the engine (no server in front): no request overhead
    overhead = 0.0 if static_batch is not None else eng.request_overhead_seconds
    ttft = (state.ttft_seconds if engine_ttft is None else engine_ttft) + overhead + \
        (admission if not overloaded else 0.0)
    return ServeEstimate(
        model=spec.name, gpu=gpu.name, gpus=gpus, tp=tp, ep=ep, replicas=replicas, attention_dp=dep.attention_dp,
        weights=dep.plan.label,
        kv_dtype=dep.kv_dtype, compute_dtype=dep.compute_dtype, engine=eng.name, input_tokens=input_tokens,
        output_tokens=output_tokens, load=load, concurrency=per_replica * replicas,
        rate=rate, ttft_seconds=math.inf if overloaded else ttft, tpot_seconds=state.tpot_seconds,
        e2e_seconds=math.inf if overloaded else ttft + state.tpot_seconds * state.decode_steps,
        output_tokens_per_second=tok_s, output_tokens_per_second_per_gpu=tok_s / gpus,
        requests_per_second=state.requests_per_second * replicas, max_concurrency=cap * replicas,
        overloaded=overloaded, admission_wait_seconds=admission, memory=mem, steady=state, rates=dep.rates,
        engine_max_batch=eng.max_batch * ranks, prefill_chunk=dep.prefill_chunk * ranks, notes=tuple(notes),
        requests=requests, first_wave_ttft_seconds=None if wave is None else wave + overhead,
        later_ttft_seconds=None if later is None else later + overhead)


def static_state(dep: Deployment, batch: int, input_tokens: int, output_tokens: int) -> Steady:
    """A static batch (no continuous batching: LMDeploy's and TensorRT-LLM's early benchmarks): the whole batch
    prefills in chunks, then decodes together."""
    I, O = input_tokens, output_tokens
    total = batch * I
    chunks = math.ceil(total / dep.prefill_chunk)
    per = total / chunks
    prefill = step_time(dep, 0.0, 0.0, per, prefill_start=max(I - min(per, I), 0) / 2.0)
    decode = step_time(dep, float(batch), I + O / 2.0)
    o1 = max(O - 1, 0)
    ttft = chunks * prefill.seconds
    cycle = ttft + o1 * decode.seconds
    return Steady(float(batch), chunks + o1, chunks, float(batch), per, 0.0, prefill, decode, ttft,
                  decode.seconds if o1 else prefill.seconds, cycle, float(chunks))


__all__ = ["ServeEstimate", "serve_estimate", "deployment", "check_layout", "static_state", "LOADS"]
