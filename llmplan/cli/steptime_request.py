"""From command-line choices to a step-time prediction or a layout search (shared by `plan` and `compute`)."""

from __future__ import annotations

from llmplan.errors import LlmplanError
from llmplan.estimate.layout import STEP_DTYPES, make_layout
from llmplan.estimate.steptime import StepEstimate, System, estimate_step, make_system

CALIBRATION_KEYS = ("gemm_curve", "hbm_bytes_per_s", "attention", "collectives")


def profile_data(profile: str | None, gpu) -> object | None:
    """The bench profile for the efficiencies (None without --profile)."""
    if profile is None:
        return None
    from llmplan.calibration import load_profile

    return load_profile(profile, gpu=getattr(gpu, "name", None), prefer=_calibrated)


def _calibrated(data: dict) -> bool:
    return any(data.get(k) for k in CALIBRATION_KEYS)


def has_calibration(prof) -> bool:
    return _calibrated(getattr(prof, "data", None) or {})


def system_for(gpu, n_gpus: int, node: int, prof=None) -> System:
    if not getattr(gpu, "peak_flops", None):
        raise LlmplanError(f"{gpu.name} has no peak FLOP/s: describe the device, e.g. --gpu "
                           "'custom:memory=80GiB,bf16=900T,hbm=3TB/s,scaleup=450GB/s,nic=50GB/s,domain=8'")
    return make_system(gpu, n_gpus, node, prof)


def step_dtype(dtype: str) -> str:
    if dtype not in STEP_DTYPES:
        raise LlmplanError(f"--dtype {dtype}: the step-time model trains in {', '.join(STEP_DTYPES)}; give --mfu "
                           "to plan other formats")
    return dtype


def predict(spec, system: System, seq: int, dtype: str, fields: dict, recompute: str,
            tp_overlap: bool = False) -> StepEstimate:
    """The step time of the layout in `fields` (unset fields: tp, pp, vp, cp, ep 1; ZeRO 0; micro-batch 1;
    SP on with TP)."""
    from llmplan.cli.layout_options import default_global_batch

    kw = {"tp": 1, "pp": 1, "vp": 1, "cp": 1, "ep": 1, "zero": 0, "micro_batch": 1, **fields}
    kw.setdefault("sp", kw["tp"] > 1)
    kw.setdefault("global_batch", default_global_batch(seq))
    layout = make_layout(system.gpus, spec, seq=seq, dtype=dtype, recompute=recompute, tp_overlap=tp_overlap, **kw)
    return estimate_step(spec, system, layout)


def search(spec, system: System, seq: int, dtype: str, fields: dict, recompute: str | None, top: int,
           tp_overlap: bool = False, allow_unfit: bool = False):
    """plan's search; with `allow_unfit`, when nothing fits, the layout needing the least memory (fits False)."""
    from llmplan.cli.layout_options import default_global_batch
    from llmplan.estimate.plan import plan_layouts

    fixed = dict(fields)
    gb = fixed.pop("global_batch", None) or default_global_batch(seq)
    if recompute is not None:
        fixed["recompute"] = recompute
    fixed["tp_overlap"] = tp_overlap
    result = plan_layouts(spec, system, seq, gb, dtype, top, fixed)
    if not result.layouts and allow_unfit:
        from dataclasses import replace

        from llmplan.estimate.plan import candidates
        from llmplan.estimate.layout import check_layout

        least = None
        for layout in candidates(spec, system.gpus, system.node_gpus, seq, gb, dtype, fixed):
            try:
                check_layout(layout, spec)
            except LlmplanError:
                continue
            est = estimate_step(spec, system, layout)
            if least is None or (est.memory_bytes, est.step_seconds) < (least.memory_bytes, least.step_seconds):
                least = est
        return replace(result, layouts=(least,))
    if not result.layouts:
        best = result.fastest_unfitting
        raise LlmplanError(f"none of the {result.searched:,} layouts of {spec.name} on {system.gpus} x "
                           f"{system.gpu.name} fits in memory (the fastest needs "
                           f"{(best.memory_bytes or 0) / 2**30:,.1f} GiB per GPU); add GPUs or shorten --seq")
    return result
