"""`llmplan serve`: plan a deployment: latency, throughput, memory and GPUs for a model under load."""

from __future__ import annotations

import re
from typing import Optional

import typer

from llmplan.cli.app import command_app
from llmplan.cli.common import JSON_OPTION, MODEL_OPTION, PARAMS_OPTION, model_from_options
from llmplan.errors import LlmplanError
from llmplan.hardware import parse_gpu
from llmplan.units import parse_dtype, parse_int_count

WEIGHT_DTYPES = ("bf16", "fp16", "fp8", "int8", "int4", "nvfp4", "mxfp4")
KV_DTYPES = ("bf16", "fp16", "fp8", "int8")
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?\d+)?)\s*(ms|s|us|µs)?\s*$")


def parse_duration(text: str, option: str) -> float:
    """'2s', '50ms', '0.05' (seconds) -> seconds."""
    m = _DURATION.match(str(text))
    if not m or float(m.group(1)) <= 0:
        raise LlmplanError(f"{option} must be a positive duration such as 2s or 50ms, got {text!r}")
    return float(m.group(1)) * {"ms": 1e-3, "us": 1e-6, "µs": 1e-6}.get(m.group(2) or "s", 1.0)


def _positive(value: Optional[float], option: str) -> Optional[float]:
    if value is not None and not (value > 0 and value != float("inf")):
        raise LlmplanError(f"{option} must be a positive number, got {value:g}")
    return value


app = command_app()


@app.command("serve")
def serve(
    model: Optional[str] = MODEL_OPTION,
    params: Optional[str] = PARAMS_OPTION,
    gpu_name: str = typer.Option(..., "--gpu", "-g", help="Accelerator (see `llmplan hardware`), or a device "
                                 "described as custom:memory=..,bf16=..,hbm=.."),
    gpus: Optional[str] = typer.Option(None, "--gpus", "-n", help="GPUs in all (default: --tp); replicas = "
                                       "GPUs / --tp. With --slo-*: the GPUs the layouts are searched on; with "
                                       "--rate, the most GPUs the answer may use (default: any number)."),
    tp: int = typer.Option(1, "--tp", help="Tensor-parallel GPUs per replica."),
    ep: int = typer.Option(1, "--ep", help="Expert-parallel GPUs within a replica (MoE; divides --tp)."),
    attention_dp: bool = typer.Option(False, "--attention-dp", help="Attention data parallel over the --tp GPUs "
                                      "(each runs its own requests' attention; MLP/MoE stay split), as "
                                      "TensorRT-LLM's enable_attention_dp and SGLang's --enable-dp-attention; "
                                      "with --slo-*: search those layouts too (MoE models)."),
    input_tokens: str = typer.Option(..., "--input-tokens", "-i", help="Prompt tokens per request (ISL)."),
    output_tokens: str = typer.Option(..., "--output-tokens", "-o", help="Generated tokens per request (OSL)."),
    concurrency: Optional[float] = typer.Option(None, "--concurrency", "-c", help="Requests in flight (all "
                                                "replicas), as a benchmark's concurrency."),
    rate: Optional[float] = typer.Option(None, "--rate", "-r", help="Arriving requests per second (Poisson); "
                                         "with --slo-*: the rate to serve on the fewest GPUs (at most --gpus)."),
    max_throughput: bool = typer.Option(False, "--max-throughput", help="As many requests as the KV cache and "
                                        "the engine's batch hold (offline throughput)."),
    requests: Optional[str] = typer.Option(None, "--requests", help="Requests a benchmark sends: TTFT is then "
                                           "its mean, first wave included (with -c: C at once, then one as each "
                                           "finishes; with --max-throughput: all at once). Default: none, the "
                                           "long-run TTFT; AIConfigurator's aiperf scripts send 20 x C."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="Weight format: bf16, fp16, fp8, int8, int4, nvfp4, "
                                        "mxfp4 (default: the checkpoint's, else bf16)."),
    kv_dtype: Optional[str] = typer.Option(None, "--kv-dtype", help="KV-cache format: bf16, fp16, fp8, int8 "
                                           "(default: the engine's rule)."),
    prefill_chunk: Optional[str] = typer.Option(None, "--prefill-chunk", help="Token budget of one step "
                                                "(max_num_tokens / max_num_batched_tokens; default 8192)."),
    engine: Optional[str] = typer.Option(None, "--engine", help="vllm, trtllm or sglang: its memory rule, page "
                                         "size, batch limits and fitted fixed costs (default: generic)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="A `llmplan bench` profile (PATH or 'auto'): "
                                          "its measured bandwidth and GEMM rates replace the defaults."),
    slo_ttft: Optional[str] = typer.Option(None, "--slo-ttft", help="Target time to first token (2s, 500ms)."),
    slo_tpot: Optional[str] = typer.Option(None, "--slo-tpot", help="Target time per output token (50ms)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Plan a deployment: TTFT, TPOT, throughput, concurrency and memory for a model under load.

    Memory first: weights per GPU and the engine's KV pool in pages, so the largest concurrency.

    Then each continuous-batching step: weights, KV and GEMMs at achievable rates, per-layer costs, all-reduces.

    Prompts are prefilled in chunks that share steps with the decodes; --rate adds the queueing delay.

    With --slo-ttft / --slo-tpot: the layouts (TP x EP x replicas) that meet them, best per GPU first.

    Examples:

      llmplan serve -m llama-3.1-70b -g h100 --tp 4 -i 1000 -o 500 -c 64

      llmplan serve -m llama-3.1-70b -g h100 --tp 4 -i 8000 -o 1000 -c 32 --requests 640

      llmplan serve -m llama-3.1-8b -g h200 --dtype fp8 -i 1000 -o 1000 --max-throughput

      llmplan serve -m mixtral-8x7b -g h100 --gpus 8 --tp 2 -i 2000 -o 200 -r 20 --engine vllm

      llmplan serve -m llama-3.1-70b -g h100 --gpus 8 -i 2000 -o 500 --max-throughput --slo-tpot 50ms

      llmplan serve -m llama-3.1-70b -g h100 -i 2000 -o 500 --rate 10 --slo-ttft 2s --slo-tpot 50ms --json

      llmplan serve -m llama-3.1-70b -g h100 --gpus 16 -i 2000 -o 500 --rate 10 --slo-tpot 50ms --dtype fp8
    """
    from llmplan.cli import serve_views as views
    from llmplan.estimate.serve_model import serve_estimate

    I = parse_int_count(input_tokens, "--input-tokens")
    O = parse_int_count(output_tokens, "--output-tokens")
    _positive(concurrency, "--concurrency")
    _positive(rate, "--rate")
    dt = parse_dtype(dtype, WEIGHT_DTYPES) if dtype is not None else None
    kv = parse_dtype(kv_dtype, KV_DTYPES) if kv_dtype is not None else None
    chunk = parse_int_count(prefill_chunk, "--prefill-chunk") if prefill_chunk is not None else None
    ttft_target = parse_duration(slo_ttft, "--slo-ttft") if slo_ttft is not None else None
    tpot_target = parse_duration(slo_tpot, "--slo-tpot") if slo_tpot is not None else None
    n_gpus = parse_int_count(gpus, "--gpus") if gpus is not None else None
    n_requests = parse_int_count(requests, "--requests") if requests is not None else None
    gpu = parse_gpu(gpu_name)
    if not gpu.peak_flops:
        raise LlmplanError(f"--gpu {gpu_name!r} gives only a memory size; serving also needs a peak and the memory "
                           f"bandwidth, e.g. --gpu 'custom:memory={gpu_name.strip()},bf16=300T,hbm=1TB/s'")
    spec = model_from_options(model, params)
    prof = None
    if profile is not None:
        from llmplan.cli.steptime_request import profile_data

        prof = profile_data(profile, gpu)
    from llmplan.estimate.serve_engines import get_engine

    eng = get_engine(engine)
    common = dict(dtype=dt, kv_dtype=kv, engine=eng, prefill_chunk=chunk, profile=prof)

    if ttft_target is not None or tpot_target is not None:
        from llmplan.estimate.serve_layouts import fewest_gpus_for_rate, layouts_at_slo

        if concurrency is not None or n_requests is not None:
            raise LlmplanError("--slo-* searches the load: give --max-throughput (layouts on --gpus) or --rate R "
                               "(the fewest GPUs for R), not --concurrency or --requests")
        if I + O > spec.context:
            raise LlmplanError(f"{I:,} + {O:,} tokens exceed {spec.name}'s context of {spec.context:,}")
        if rate is not None:
            found = fewest_gpus_for_rate(spec, gpu, rate, I, O, ttft_target, tpot_target,
                                         attention_dp=attention_dp, max_gpus=n_gpus, **common)
            what = f"{rate:g} requests/s" + (f" on at most {n_gpus} GPUs" if n_gpus else "")
        else:
            total = n_gpus or tp
            found = layouts_at_slo(spec, gpu, total, I, O, ttft_target, tpot_target, attention_dp=attention_dp,
                                   **common)
            what = f"{total} x {gpu.name}"
        if not found:
            slo = " and ".join(s for s in (f"TTFT <= {slo_ttft}" if slo_ttft else "",
                                            f"TPOT <= {slo_tpot}" if slo_tpot else "") if s)
            raise LlmplanError(f"no layout of {spec.name} on {what} meets {slo} for {I:,} + {O:,} tokens; "
                               f"{views.relax_hint(spec, gpu, I, O, ttft_target, tpot_target, common, n_gpus or 8)}")
        views.show_layouts(spec, gpu, found, I, O, ttft_target, tpot_target, rate, eng, as_json, n_gpus)
        return

    est = serve_estimate(spec, gpu, input_tokens=I, output_tokens=O, gpus=n_gpus, tp=tp, ep=ep,
                         concurrency=concurrency, rate=rate, max_throughput=max_throughput,
                         attention_dp=attention_dp, requests=n_requests, **common)
    views.show_estimate(spec, est, as_json)
