"""The GPU check's calibration phases (benchmarks/gpu_check.py), each a function of the device that returns plain data:

1. Kernels (`llmplan.bench.kernels`, what `llmplan bench --calibrate` measures): the GEMM curve in bf16 and fp32,
   HBM streaming bandwidth, attention prefill and decode; stored in the GPU's profile under the keys the step-time
   model reads (llmplan/hardware/efficiency.py).
2. The step-time model against measured single-GPU steps for three shapes (GPT-3 XL as the MFU run measured it, a
   Llama-2-7B slice of 2 layers at its full width, and GPT-2 small), predicted with the catalog's default
   efficiencies and with the profile just measured; judged within 5%. Guarded: when this checkout's
   `llmplan.estimate` has no step-time model (`llmplan.estimate.steptime.estimate_step`), it says "not available".
   Then one GEMM of a training shape (Llama-3-70B's MLP up-projection at TP 8 on a 16k-token micro-batch, bf16)
   back to back for SUSTAINED_SECONDS, its rate per half-second window beside NVML's SM clock and board power:
   whether the rate of a short benchmark holds over a run, the first question the step-time model's optimism
   raises (docs/validation.md, "Where the step-time model misses").
3. Memory of an MLA block (DeepSeek-V2-Lite's attention, Liu et al. 2024) and a MoE block (Mixtral 8x7B's, Jiang et
   al. 2024): the uncompiled run's llmplan prediction against torch.cuda.max_memory_allocated, within 5%. Guarded:
   a block the bench cannot build exactly (its parameter count differs from llmplan's count of the same shape) is
   "not available".
"""

from __future__ import annotations

import time
from dataclasses import replace

STEP_TOLERANCE_PCT = 5.0
MEMORY_TOLERANCE_PCT = 5.0
# Device seconds each phase is planned at on one H200 (compiled runs dominate: one block shape each).
SUSTAINED_SECONDS = 15.0
KERNEL_SECONDS = 45.0 + SUSTAINED_SECONDS
STEP_SECONDS = 100.0
BLOCK_SECONDS = 45.0


def kernels(device, dry: bool, log) -> dict:
    """The kernel calibration: a short CPU plan in a dry run, the full GPU plan otherwise."""
    from llmplan.bench.kernels import measure_kernels, plan_for

    plan = plan_for(device, quick=dry)
    if dry:
        plan = replace(plan, repeats=3, sample_seconds=0.002)
    log(f"calibration: {len(plan.gemm_shapes) * len(plan.dtypes)} GEMMs, memory bandwidth, "
        f"{len(plan.prefill) + len(plan.decode)} attention kernels")
    measured = measure_kernels(device, plan, on_step=lambda what: None)
    measured["sustained"] = sustained_gemm(device, dry, log)
    return measured


def sustained_gemm(device, dry: bool, log, seconds: float | None = None) -> dict:
    """A training-shaped GEMM back to back: TFLOP/s per window with the SM clock (MHz) and power (W) NVML reports
    then; the first and last windows' rates and the drop between them (a CPU dry run: tiny fp32, no NVML)."""
    import torch

    from llmplan.bench.device import nvml_handle
    from llmplan.bench.kernels import _sync

    m, n, k = (64, 64, 64) if dry else (16384, 3584, 8192)  # Llama-3-70B: 28,672 / 8 up-projection columns
    dtype = torch.float32 if dry or device.kind == "cpu" else torch.bfloat16
    seconds = (0.3 if dry else SUSTAINED_SECONDS) if seconds is None else seconds
    window = seconds / 30
    a = torch.randn(m, k, device=device.torch_device, dtype=dtype)
    b = torch.randn(k, n, device=device.torch_device, dtype=dtype)
    out = torch.empty(m, n, device=device.torch_device, dtype=dtype)
    nv, h = nvml_handle(int(device.torch_device.split(":")[1])) if device.kind == "cuda" else (None, None)

    def probe(what):
        try:
            return what() if nv is not None and h is not None else None
        except Exception:  # an NVML query the driver refuses: that figure is left out
            return None

    torch.matmul(a, b, out=out)
    _sync(device)
    windows, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds:
        t, calls = time.perf_counter(), 0
        while time.perf_counter() - t < window:
            for _ in range(4):
                torch.matmul(a, b, out=out)
            calls += 4
            _sync(device)
        elapsed = time.perf_counter() - t
        windows.append({"t": round(time.perf_counter() - start, 3), "flops_per_s": 2.0 * m * n * k * calls / elapsed,
                        "sm_clock_mhz": probe(lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)),
                        "power_w": probe(lambda: nv.nvmlDeviceGetPowerUsage(h) / 1000.0)})
    first, last = windows[0]["flops_per_s"], windows[-1]["flops_per_s"]
    log(f"sustained GEMM {m} x {n} x {k}: {first / 1e12:.4g} -> {last / 1e12:.4g} TFLOP/s over {seconds:g} s")
    return {"m": m, "n": n, "k": k, "dtype": str(dtype).replace("torch.", ""), "seconds": seconds,
            "windows": windows, "first_flops_per_s": first, "last_flops_per_s": last,
            "drop_pct": 100.0 * (1 - last / first)}


def profile_keys(measured: dict | None) -> dict:
    """What the kernels add to the GPU's profile (llmplan.calibration keys)."""
    if not measured or not measured.get("gemm_curve"):
        return {}
    out = {k: measured[k] for k in ("gemm_curve", "attention", "memory_bandwidth")}
    if measured.get("hbm_bytes_per_s"):
        out["hbm_bytes_per_s"] = measured["hbm_bytes_per_s"]
    out["calibration"] = {"kernels": {"seconds": measured["seconds"], "settings": measured["settings"],
                                      "notes": measured["notes"], "by": "benchmarks/gpu_check.py"}}
    return out


def step_model():
    """(estimate_step, make_system, make_layout) of this checkout, or the reason there is none."""
    try:
        from llmplan.estimate.layout import make_layout
        from llmplan.estimate.steptime import estimate_step, make_system
    except ImportError as exc:
        return None, f"not available: this checkout has no step-time model ({exc})"
    return (estimate_step, make_system, make_layout), ""


def _planned_device(device, measured: dict | None):
    """The catalog GPU the step-time model plans (a dry run on a CPU: the CPU, as its measured figures describe it)."""
    from llmplan.hardware import GPU, match_gpu

    gpu = match_gpu(device.name) if device.kind == "cuda" else None
    if gpu is not None:
        return gpu
    best = max((g["flops_per_s"] for g in (measured or {}).get("gemm_curve", [])), default=1e11)
    return GPU(name=device.name, vendor=device.kind, memory_bytes=int(device.memory_bytes or 0),
               peak_flops={"bf16": best, "fp16": best, "fp32": best},
               bandwidth_bytes_per_s=float((measured or {}).get("hbm_bytes_per_s") or 1e10), power_watts=None,
               source="dry run: this CPU's measured figures")


def step_shapes(xl_spec, dry: bool):
    """(label, spec, layers, batch, seq): three shapes the step-time model is checked on."""
    from llmplan.models import get_preset

    if dry:
        tiny = xl_spec.with_(name="dry-run-block", layers=2, hidden=64, heads=4, ffn=256, vocab=512, context=128)
        return [("dry run, tiny", tiny, 2, 2, 64), ("dry run, tiny x2 depth", tiny, 4, 2, 64)]
    return [("Llama-2-7B, 2 of 32 layers", get_preset("llama-2-7b"), 2, 4, 2048),
            ("GPT-2 small (124M)", get_preset("gpt2"), None, 16, 1024)]


def predict_step(model, gpu, spec, layers: int, batch: int, seq: int, dtype: str, profile: dict | None) -> dict:
    """The step-time model for one GPU running one micro-batch per optimizer step."""
    estimate_step, make_system, make_layout = model
    built = spec.with_(layers=layers, param_count=None)
    layout = make_layout(1, built, micro_batch=batch, global_batch=batch, seq=seq, dtype=dtype, recompute="none")
    est = estimate_step(built, make_system(gpu, 1, profile=profile), layout, memory=False)
    return {"step_seconds": est.step_seconds, "mfu": est.mfu, "breakdown": est.step_breakdown,
            "efficiency_source": est.efficiency_source}


def step_checks(device, xl, xl_spec, measured: dict | None, dry: bool, log, run) -> dict:
    """Measured single-GPU steps beside the step-time model's prediction, with the default efficiencies and with
    this GPU's profile. `xl` is the GPT-3 XL run already measured; `run(cfg, what)` measures one more."""
    from llmplan.bench.runner import BenchConfig

    model, why = step_model()
    if model is None:
        log(f"step-time model: {why}")
        return {"available": False, "why": why, "shapes": []}
    gpu = _planned_device(device, measured)
    profile = profile_keys(measured) or None
    dtype = "bf16" if device.dtype in ("bf16", "fp32") else device.dtype  # the dry run's fp32 is planned as bf16
    shapes = []
    cases = []
    if xl is not None and xl.status == "ok":
        cases.append(("GPT-3 XL (the MFU run)", xl_spec, xl.layers, xl.batch, xl.seq, xl))
    for label, spec, layers, batch, seq in step_shapes(xl_spec, dry):
        cases.append((label, spec, layers or spec.layers, batch, seq, None))
    for label, spec, layers, batch, seq, result in cases:
        t = time.monotonic()
        if result is None:
            cfg = BenchConfig(spec, layers=layers, batch=batch, seq=min(seq, spec.context), compile=not dry,
                              warmup_steps=1 if dry else 3, timed_steps=2 if dry else 5, count_memory=False)
            result = run(cfg, label)
        row = {"shape": label, "model": spec.name, "layers": layers, "batch": result.batch, "seq": result.seq,
               "compiled": result.compiled, "status": result.status, "measured_step_seconds": result.step_seconds}
        if result.status == "ok":
            try:
                default = predict_step(model, gpu, spec, layers, result.batch, result.seq, dtype, None)
                calibrated = predict_step(model, gpu, spec, layers, result.batch, result.seq, dtype, profile)
            except Exception as exc:  # the model's interface differs from the one this script was written for
                row.update(error=f"step-time model failed: {type(exc).__name__}: {str(exc)[:200]}")
            else:
                m = result.step_seconds
                row.update(predicted_default_seconds=default["step_seconds"],
                           predicted_seconds=calibrated["step_seconds"],
                           error_default_pct=(default["step_seconds"] - m) / m * 100,
                           error_pct=(calibrated["step_seconds"] - m) / m * 100,
                           breakdown=calibrated["breakdown"], efficiency_source=calibrated["efficiency_source"])
        row["seconds"] = round(time.monotonic() - t, 1)
        log(f"step time {label}: measured {row['measured_step_seconds']}, predicted {row.get('predicted_seconds')}")
        shapes.append(row)
    return {"available": True, "why": "", "gpu": gpu.name, "dtype": dtype, "shapes": shapes}


def mla_spec():
    """One DeepSeek-V2-Lite-shaped layer (Liu et al. 2024, DeepSeek-V2, Appendix B.1 and the released config
    deepseek-ai/DeepSeek-V2-Lite): hidden 2048, 16 heads, kv_lora_rank 512, qk_nope 128 + qk_rope 64, v 128, no q
    compression; a dense SwiGLU of 10944 (its first layer)."""
    from llmplan.models.layers import Attention, Dense, LayerGroup
    from llmplan.models.spec import ModelSpec

    attn = Attention(heads=16, kv_heads=16, head_dim=192, v_head_dim=128, kv_lora_rank=512, qk_rope_head_dim=64)
    return ModelSpec.from_groups(groups=(LayerGroup(1, attn, Dense(10944)),), name="deepseek-v2-lite-mla-block",
                                 arch="decoder", hidden=2048, vocab=102400, context=4096)


def block_cases(dry: bool):
    """(label, spec, layers, batch, seq) of the architecture blocks whose memory is checked."""
    from llmplan.models import get_preset

    mixtral = get_preset("mixtral-8x7b")
    mla = mla_spec()
    if dry:
        return [("MLA block (dry run)", mla.with_(vocab=512), 1, 1, 64),
                ("MoE block (dry run)", mixtral.with_(hidden=64, heads=4, kv_heads=2, ffn=128, vocab=512), 1, 1, 64)]
    return [("MLA block, DeepSeek-V2-Lite layer", mla, 1, 4, 2048),
            ("MoE block, Mixtral 8x7B layer", mixtral, 1, 2, 2048)]


def bench_builds(spec, layers: int) -> str:
    """'' when the bench builds this shape exactly (parameters counted on the meta device equal llmplan's count),
    else why not."""
    import torch

    from llmplan.bench.model import build_model, built_params

    try:
        with torch.device("meta"):
            model = build_model(spec, layers=layers, device="meta")
        built = sum(p.numel() for p in model.parameters())
    except Exception as exc:
        return f"the bench cannot build it ({type(exc).__name__}: {str(exc)[:160]})"
    want = built_params(spec, layers)
    if built != want:
        return (f"the bench builds {built:,} parameters for it, llmplan counts {want:,}: the bench does not build "
                "this architecture yet")
    return ""


def block_checks(device, dry: bool, log, run) -> list[dict]:
    """The memory prediction of each architecture block against what the uncompiled run allocated."""
    from llmplan.bench.runner import BenchConfig

    rows = []
    for label, spec, layers, batch, seq in block_cases(dry):
        why = bench_builds(spec, layers)
        if why:
            log(f"{label}: not available: {why}")
            rows.append({"block": label, "available": False, "why": why})
            continue
        cfg = BenchConfig(spec, layers=layers, batch=batch, seq=seq, compile=False, warmup_steps=1, timed_steps=2)
        r = run(cfg, label)
        rows.append({"block": label, "available": True, "status": r.status, "params": r.params, "batch": r.batch,
                     "seq": r.seq, "peak_bytes_measured": r.peak_bytes_measured,
                     "peak_bytes_predicted": r.peak_bytes_predicted, "memory_error_pct": r.memory_error_pct,
                     "memory_method": r.memory_method})
    return rows


def check_rows(state: dict, dry: bool) -> list[dict]:
    """The table rows of the calibration phases (passed None in a dry run: a CPU proves nothing about a GPU)."""
    rows = []
    k = state.get("kernels")
    if k is not None:
        bf16 = [g["flops_per_s"] for g in k["gemm_curve"] if g["dtype"] != "fp32"]
        best = max(bf16 or [g["flops_per_s"] for g in k["gemm_curve"]], default=None)
        hbm = k.get("hbm_bytes_per_s")
        rows.append({"check": "calibration: GEMM curve, HBM, attention (saved in profile.json)",
                     "target": "measured",
                     "measured": f"{len(k['gemm_curve'])} GEMMs (best {best / 1e12:.3g} TFLOP/s), HBM "
                     f"{hbm / 1e12:.3g} TB/s, {len(k['attention'])} attention kernels"
                     if best and hbm else "incomplete", "passed": None})
        sus = k.get("sustained")
        if sus:
            clocks = [w["sm_clock_mhz"] for w in sus["windows"] if w["sm_clock_mhz"]]
            rows.append({"check": f"sustained GEMM {sus['m']} x {sus['n']} x {sus['k']} {sus['dtype']}, "
                                  f"{sus['seconds']:g} s", "target": "measured",
                         "measured": f"{sus['first_flops_per_s'] / 1e12:.4g} -> {sus['last_flops_per_s'] / 1e12:.4g}"
                                     f" TFLOP/s ({sus['drop_pct']:+.1f}% drop)"
                                     + (f", SM clock {min(clocks)}-{max(clocks)} MHz" if clocks else ""),
                         "passed": None})
    steps = state.get("steps")
    if steps is not None and not steps["available"]:
        rows.append({"check": "step-time model vs measured steps", "target": f"within {STEP_TOLERANCE_PCT:g}%",
                     "measured": steps["why"], "passed": None})
    for s in (steps or {}).get("shapes", []):
        err = s.get("error_pct")
        measured = s.get("error") or ("did not run" if s["status"] != "ok" else
                                      f"measured {s['measured_step_seconds'] * 1e3:.1f} ms, predicted "
                                      f"{s['predicted_seconds'] * 1e3:.1f} ms ({err:+.1f}%; default efficiencies "
                                      f"{s['error_default_pct']:+.1f}%)")
        rows.append({"check": f"step time: {s['shape']}, batch {s['batch']} x seq {s['seq']}",
                     "target": f"within {STEP_TOLERANCE_PCT:g}%", "measured": measured,
                     "passed": None if dry else (err is not None and abs(err) <= STEP_TOLERANCE_PCT)})
    for b in state.get("blocks") or []:
        if not b["available"]:
            rows.append({"check": f"memory: {b['block']}", "target": f"within {MEMORY_TOLERANCE_PCT:g}%",
                         "measured": f"not available: {b['why']}", "passed": None})
            continue
        err = b["memory_error_pct"]
        rows.append({"check": f"memory: {b['block']} vs max_memory_allocated",
                     "target": f"within {MEMORY_TOLERANCE_PCT:g}%",
                     "measured": "did not fit" if b["status"] != "ok" or err is None else
                     f"predicted {b['peak_bytes_predicted'] / 2**30:.2f} GiB, measured "
                     f"{b['peak_bytes_measured'] / 2**30:.2f} GiB ({err:+.1f}%)",
                     "passed": None if dry else (err is not None and abs(err) <= MEMORY_TOLERANCE_PCT)})
    return rows


def _time(seconds: float) -> str:
    return f"{seconds * 1e6:.3g} µs" if seconds < 1e-3 else f"{seconds * 1e3:.3g} ms"


def markdown(report: dict, device: dict) -> list[str]:
    """Markdown lines for docs/validation.md: the GEMM curve, the attention kernels, the step-time shapes."""
    k = report.get("kernels")
    lines: list[str] = []
    if k and k.get("gemm_curve"):
        from llmplan.hardware import match_gpu

        gpu = match_gpu(device["name"]) if device.get("kind") == "cuda" else None
        lines += ["", "| GEMM m x n x k | dtype | time | TFLOP/s | of dense peak |", "|---|---|---|---|---|"]
        for g in k["gemm_curve"]:
            peak = gpu.peak(g["dtype"]) if gpu is not None else None
            share = f"{g['flops_per_s'] / peak:.0%}" if peak else "-"
            lines.append(f"| {g['m']} x {g['n']} x {g['k']} | {g['dtype']} | {_time(g['seconds'])} "
                         f"±{g['spread_pct']:.0f}% | {g['flops_per_s'] / 1e12:.4g} | {share} |")
        mb = k.get("memory_bandwidth")
        if mb:
            lines += ["", f"Memory bandwidth: {mb['bytes_per_s'] / 1e9:.4g} GB/s ±{mb['spread_pct']:.0f}% "
                          f"(copy of {mb['buffer_bytes'] / 2**30:.3g} GiB, read + write counted)."]
        sus = k.get("sustained")
        if sus:
            lines += ["", f"Sustained GEMM {sus['m']} x {sus['n']} x {sus['k']} {sus['dtype']}, back to back for "
                          f"{sus['seconds']:g} s: {sus['first_flops_per_s'] / 1e12:.4g} TFLOP/s in the first "
                          f"window, {sus['last_flops_per_s'] / 1e12:.4g} in the last ({sus['drop_pct']:+.1f}%).", "",
                      "| t (s) | TFLOP/s | SM clock (MHz) | power (W) |", "|---|---|---|---|"]
            for w in sus["windows"][::max(1, len(sus["windows"]) // 10)]:
                power = "-" if w["power_w"] is None else f"{w['power_w']:.0f}"
                lines.append(f"| {w['t']:.1f} | {w['flops_per_s'] / 1e12:.4g} | {w['sm_clock_mhz'] or '-'} | "
                             f"{power} |")
        if k.get("attention"):
            lines += ["", "| attention | batch | heads (q/kv) | seq | head dim | dtype | TFLOP/s | GB/s |",
                      "|---|---|---|---|---|---|---|---|"]
            for a in k["attention"]:
                lines.append(f"| {a['kind']} | {a['batch']} | {a['heads']}/{a['kv_heads']} | {a['seq']} | "
                             f"{a['head_dim']} | {a['dtype']} | {a['flops_per_s'] / 1e12:.4g} | "
                             f"{a['bytes_per_s'] / 1e9:.4g} |")
    steps = report.get("step_time") or {}
    if steps.get("shapes"):
        lines += ["", f"Step-time model ({steps.get('dtype')}, one GPU, one micro-batch per step):", "",
                  "| shape | batch x seq | measured | predicted (profile) | error | predicted (defaults) | error |",
                  "|---|---|---|---|---|---|---|"]
        for r in steps["shapes"]:
            if r.get("predicted_seconds") is None:
                lines.append(f"| {r['shape']} | {r['batch']} x {r['seq']} | {r['status']} | "
                             f"{r.get('error', '-')} | - | - | - |")
                continue
            lines.append(f"| {r['shape']} | {r['batch']} x {r['seq']} | {r['measured_step_seconds'] * 1e3:.4g} ms | "
                         f"{r['predicted_seconds'] * 1e3:.4g} ms | {r['error_pct']:+.1f}% | "
                         f"{r['predicted_default_seconds'] * 1e3:.4g} ms | {r['error_default_pct']:+.1f}% |")
    return lines
