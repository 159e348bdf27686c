"""`llmplan bench --nproc N` and `llmplan bench` under torchrun: options -> DistConfig -> every rank runs -> rank 0
renders and writes. Called by the bench command; torch is imported only once it runs."""

from __future__ import annotations

import sys
from pathlib import Path

from llmplan.errors import LlmplanError
from llmplan.estimate.shapes import truncated
from llmplan.report.output import emit_json, kv_table, note, stdout_console, table
from llmplan.units import format_bytes, format_count

# Default model without --model: a LLaMA-style ladder shape sized for the device (hidden, layers).
DEFAULT_SHAPE = {("cpu", True): (64, 2), ("cpu", False): (256, 4), ("cuda", True): (256, 2),
                 ("cuda", False): (1024, 8)}


def build_config(model, layers, batch, seq, dtype, device, attention, recompute, quick, steps, warmup,
                 strategy: str):
    """Validate the options exactly as the bench does and describe what every rank trains."""
    from llmplan.bench.distributed import STRATEGIES
    from llmplan.bench.distributed_run import DistConfig
    from llmplan.bench.ladder import ladder_spec
    from llmplan.bench.settings import resolve_settings

    if strategy not in STRATEGIES:
        raise LlmplanError(f"--strategy {strategy!r}: accepted {', '.join(STRATEGIES)}")
    s = resolve_settings(model=model, layers=layers, batch=batch, seq=seq, dtype=dtype, device=device,
                         attention=attention, recompute=recompute, compile_=False, budget_seconds=None, quick=quick,
                         steps=steps, warmup=warmup, max_rungs=None, peak_tflops=None)
    kind = s.device.kind
    if kind not in ("cuda", "cpu"):
        raise LlmplanError(f"a distributed bench runs on CUDA GPUs (NCCL) or CPUs (gloo), not {kind}; "
                           "use --device cuda or --device cpu")
    if s.device.dtype not in ("fp32", "bf16"):
        raise LlmplanError(f"a distributed bench trains in fp32 or bf16, not {s.device.dtype}; give --dtype bf16 or "
                           "--dtype fp32")
    b = s.base
    if s.mode == "model":
        spec = truncated(b.spec.with_(param_count=None), s.layers)
    else:
        hidden, depth = DEFAULT_SHAPE[(kind, quick)]
        spec = ladder_spec(hidden, depth, s.vocab, b.seq)
    cfg = DistConfig(spec=spec, batch=b.batch, seq=b.seq, dtype=s.device.dtype, kind=kind, strategy=strategy,
                     attention=b.attention, recompute=b.recompute, warmup=b.warmup_steps, steps=b.timed_steps)
    return cfg, s.device


def _check_gpus(cfg, nproc: int) -> None:
    if cfg.kind == "cuda":
        import torch

        count = torch.cuda.device_count()
        if nproc > count:
            raise LlmplanError(f"--nproc {nproc}: only {count} GPU(s) visible; give --nproc {count} or less, or "
                               "--device cpu")


def run_distributed(options: dict, strategy: str | None, nproc: int | None, out: Path | None, as_json: bool,
                    argv: list[str]) -> None:
    """--nproc: validate here, then start torchrun on this command less --nproc. Under torchrun: run this rank."""
    from llmplan.bench.distributed import dist_env

    env = dist_env()
    strategy = strategy or "ddp"
    if out is not None and (out.expanduser().is_dir() or out.suffix.lower() != ".json"):
        raise LlmplanError(f"--out {out}: give a file name ending in .json for the distributed profile")
    cfg, device = build_config(strategy=strategy, **options)
    if nproc is not None:
        if env is not None:
            raise LlmplanError("--nproc starts torchrun itself; under torchrun leave --nproc out")
        if not 1 <= nproc <= 1024:
            shown = nproc if abs(nproc) < 10**12 else f"a number of {len(str(abs(nproc)))} digits"
            raise LlmplanError(f"--nproc must be from 1 to 1024 (processes on this machine), got {shown}")
        _check_gpus(cfg, nproc)
        from llmplan.bench.launch import launch, strip_option

        if "bench" not in argv:  # the ranks rerun this very command line; it must be the process's own
            raise LlmplanError("--nproc relaunches the command line of this process, which is not `llmplan bench`; "
                               "run it from a shell")
        note(f"starting torchrun: {nproc} processes on this node, {strategy}, {cfg.kind}")
        launch(nproc, strip_option(argv[argv.index("bench"):], "--nproc"))
        return
    if env is None:
        raise LlmplanError("--strategy needs several processes: add --nproc N, or start llmplan under torchrun "
                           "(torchrun --nproc-per-node N -m llmplan bench ...)")
    if env.rank != 0:  # the other ranks stay quiet: no warnings, no output
        import warnings

        warnings.simplefilter("ignore")
    from llmplan.bench.distributed_run import run_rank

    report = run_rank(cfg, env)
    if env.rank != 0 or report is None:
        return
    from llmplan.bench.model import built_params

    report.update(model={"name": cfg.spec.name, "params": built_params(cfg.spec), "layers": cfg.spec.layers,
                         "hidden": cfg.spec.hidden}, batch_per_rank=cfg.batch, seq=cfg.seq, dtype=cfg.dtype,
                  device=device.name, steps=cfg.steps, warmup=cfg.warmup, argv=list(argv))
    report["profile_path"] = str(_write_report(report, out, device.name))
    if as_json:
        emit_json(report)
    else:
        render(report)


def _write_report(report: dict, out: Path | None, device_name: str) -> Path:
    from llmplan.calibration import data_dir, device_key
    from llmplan.report.files import write_json
    from llmplan.report.output import jsonable

    target = out.expanduser() if out else (data_dir() / "profiles" /
                                           f"distributed-{device_key(device_name)}-{report['strategy']}-"
                                           f"x{report['world_size']}.json")
    return write_json(target, {"schema_version": 1, "kind": "llmplan.bench.distributed", **jsonable(report)})


def render(r: dict) -> None:
    console = stdout_console()
    s = r["step_seconds"]
    eff = r["scaling_efficiency"]
    m = r["model"]
    console.print(kv_table(f"Distributed bench: {r['world_size']} processes, {r['strategy']} ({r['backend']})", [
        ("device", f"{r['device']} x {r['world_size']} on {r['nodes']} node(s)"),
        ("model", f"{m['name']}: {format_count(m['params'])} params, {m['layers']} layers"),
        ("per rank", f"batch {r['batch_per_rank']} x seq {r['seq']}, {r['dtype']}"),
        ("step time across ranks", f"min {s['min']:.4g} s, median {s['median']:.4g} s, max {s['max']:.4g} s"),
        ("throughput", f"{format_count(r['tokens_per_second'])} tokens/s"),
        ("one process alone", "not measured" if r["single_process_step_seconds"] is None
         else f"{r['single_process_step_seconds']:.4g} s per step"),
        ("scaling efficiency", "-" if eff is None else f"{eff:.1%} (speed-up {r['speedup']:.2f}x)")]))
    pred = r.get("predicted_memory")
    rows = []
    for rank in r["per_rank"]:
        predicted = format_bytes(pred["bytes"]) if pred else "-"
        error = (f"{(pred['bytes'] - rank['peak_bytes']) / rank['peak_bytes']:+.1%}"
                 if pred and rank.get("peak_bytes") else "-")
        rows.append([str(rank["rank"]), rank["host"], f"{rank['step_seconds']:.4g} s",
                     format_bytes(rank["peak_bytes"]) if rank.get("peak_bytes") is not None else "-", predicted,
                     error])
    stage = f"ZeRO stage {r['zero_stage']}, dp {r['world_size']}"
    console.print(table(f"Per rank: peak memory beside llmplan memory ({stage})",
                        ["rank", "host", "step (median)", "peak measured", "predicted", "error"], rows, 2))
    if r["per_rank"]:
        note(f"memory measured as {r['per_rank'][0].get('memory_method', '')}")
    print(f"wrote {r['profile_path']}", file=sys.stderr)
