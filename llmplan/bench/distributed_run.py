"""One rank of a distributed bench: a single-process baseline on rank 0, then the same model under DDP or FSDP2 on
every rank, timings and peak memory gathered to rank 0 beside llmplan's memory prediction for the same dp degree and
ZeRO stage."""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass

from llmplan.bench.distributed import (DistEnv, abort_rank, aggregate, init_process_group, maybe_inject_failure,
                                       model_state_bytes, timed_steps, wrap_model)
from llmplan.errors import LlmplanError
from llmplan.models.spec import ModelSpec

ZERO_STAGE = {"ddp": 0, "fsdp": 3}  # DDP replicates all model states; FSDP full sharding is ZeRO stage 3


@dataclass(frozen=True)
class DistConfig:
    spec: ModelSpec          # the model as built (layers already applied)
    batch: int               # micro-batch per rank
    seq: int
    dtype: str               # "fp32" or "bf16" (autocast)
    kind: str                # "cuda" or "cpu"
    strategy: str            # "ddp" or "fsdp"
    attention: str = "flash"
    recompute: str = "none"
    warmup: int = 2
    steps: int = 5
    seed: int = 0
    baseline: bool = True    # time one process alone first, for the scaling efficiency


def _autocast(cfg: DistConfig):
    import contextlib

    import torch

    if cfg.dtype == "bf16":
        return torch.autocast(device_type=cfg.kind, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _setup(cfg: DistConfig, device: str, rank: int, strategy: str | None):
    import torch

    from llmplan.bench.model import build_model

    torch.manual_seed(cfg.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    model = build_model(cfg.spec, attention=cfg.attention, recompute=cfg.recompute, device=device)
    runner = wrap_model(model, strategy, device) if strategy else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(cfg.seed + 1 + rank)  # each rank its own batch, as data parallelism does
    data = torch.randint(0, cfg.spec.vocab, (cfg.batch, cfg.seq + 1), generator=gen).to(device)
    x, y = data[:, :-1], data[:, 1:]

    def forward():
        with _autocast(cfg):
            return runner(x, y)

    def step():
        forward().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return model, runner, opt, forward, step


def _single_process(cfg: DistConfig, device: str) -> float:
    """Median step time of the same model and micro-batch in one process, no wrapper, no communication."""
    import gc
    import statistics

    import torch

    model, _, opt, _, step = _setup(cfg, device, 0, None)
    times = timed_steps(step, cfg.warmup, cfg.steps, device)
    del model, opt, step
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return statistics.median(times)


def _counted_peak(model, opt, forward) -> tuple[int, dict]:
    """CPU: bytes this rank holds: local weights, gradients and optimizer states, plus the tensors saved for
    backward (all-gathered FSDP weights and parameter views left out: model state, not activations)."""
    from llmplan.bench.saved_tensors import count_saved_tensors

    params = list(model.parameters())
    holder: dict = {}
    saved = count_saved_tensors(lambda: holder.setdefault("loss", forward()), exclude=params)
    holder.pop("loss").backward()
    shapes = {tuple(p.shape) for p in params if p.dim() == 2}
    shapes |= {s[::-1] for s in shapes}  # matmuls save the weight transposed as often as not
    weight_shaped = [(dtype, n) for shape, dtype, n in saved.storages if tuple(shape) in shapes]
    # 16-bit weight-shaped tensors are autocast's casts, held until backward (memory this rank really holds);
    # fp32 ones are FSDP's all-gathered weights, model state already counted in its local shard.
    copies = sum(n for dtype, n in weight_shaped if dtype in ("bfloat16", "float16"))
    counted = model_state_bytes(model, opt)
    counted["activations"] = saved.total_bytes - sum(n for _, n in weight_shaped)
    if copies:
        counted["autocast_weight_copies"] = copies
    opt.zero_grad(set_to_none=True)
    return sum(counted.values()), counted


def _rank_result(cfg: DistConfig, env: DistEnv, device: str) -> dict:
    import statistics

    import torch

    model, runner, opt, forward, step = _setup(cfg, device, env.rank, cfg.strategy)
    cuda = device.startswith("cuda")

    def reset_peak():
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)

    maybe_inject_failure(env)
    times = timed_steps(step, cfg.warmup, cfg.steps, device, before_timing=reset_peak)
    result = {"rank": env.rank, "local_rank": env.local_rank, "host": socket.gethostname(), "device": device,
              "step_seconds": statistics.median(times), "step_seconds_min": min(times),
              "step_seconds_max": max(times)}
    if cuda:
        result.update(peak_bytes=int(torch.cuda.max_memory_allocated(device)),
                      memory_method="torch.cuda.max_memory_allocated over the timed steps")
    else:
        peak, counted = _counted_peak(model, opt, forward)
        result.update(peak_bytes=peak, measured_breakdown=counted,
                      memory_method="counted: this rank's weights, gradients and optimizer states (local shards) "
                                    "+ tensors saved for backward")
    return result


def predicted_memory(cfg: DistConfig, world: int) -> dict | None:
    """llmplan memory for the same model, micro-batch, dp degree and ZeRO stage (None when unavailable)."""
    try:
        from llmplan.estimate.memory import MemoryConfig, estimate_memory
    except ImportError:
        return None
    est = estimate_memory(MemoryConfig(spec=cfg.spec, mode="train", dtype=cfg.dtype, batch=cfg.batch, seq=cfg.seq,
                                       optimizer="adamw", recompute=cfg.recompute, attention=cfg.attention,
                                       dp=world, zero=ZERO_STAGE[cfg.strategy], dropout=False,
                                       impl="pytorch-cuda" if cfg.kind == "cuda" else "pytorch", grad_dtype="fp32",
                                       amp=cfg.dtype != "fp32"))  # autocast: fp32 weights and states
    b = {k: int(est.breakdown[k]) for k in ("weights", "gradients", "optimizer", "activations")}
    if cfg.kind != "cuda":  # counting sees saved tensors only, not the short-lived logits and recompute buffers
        d = est.activation_detail
        b["activations"] -= int(d.get("logits_transient", 0) + d.get("recompute_transient", 0))
    return {"bytes": sum(b.values()), "breakdown": b, "zero_stage": ZERO_STAGE[cfg.strategy], "dp": world}


def _progress(env: DistEnv, phase: str) -> None:
    """Rank 0 says which phase the run is in (one line each, on stderr; the launcher relays it)."""
    if env.rank == 0:
        import time

        print(f"rank 0: {phase} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)


def run_rank(cfg: DistConfig, env: DistEnv) -> dict | None:
    """Run this rank's part. Rank 0 returns the gathered report; the others return None. Any failure on any rank
    ends this process with one reported line (see distributed.abort_rank)."""
    if cfg.strategy not in ZERO_STAGE:
        raise LlmplanError(f"unknown --strategy {cfg.strategy!r}; accepted: {', '.join(ZERO_STAGE)}")
    device = None
    try:
        import torch.distributed as dist

        device, backend = init_process_group(env, cfg.kind)
        single = None
        if cfg.baseline:
            _progress(env, f"the single-process baseline on {device}")
            if env.rank == 0:
                single = _single_process(cfg, device)
            dist.barrier()
        _progress(env, f"{cfg.warmup} warm-up and {cfg.steps} timed steps on each of {env.world_size} ranks "
                       f"({cfg.strategy}, {backend})")
        mine = _rank_result(cfg, env, device)
        gathered: list = [None] * env.world_size
        _progress(env, "gathering every rank's timings and memory")
        dist.all_gather_object(gathered, mine)
        report = None
        if env.rank == 0:
            report = aggregate(gathered, single, cfg.batch * cfg.seq)
            report.update(strategy=cfg.strategy, backend=backend, zero_stage=ZERO_STAGE[cfg.strategy],
                          predicted_memory=predicted_memory(cfg, env.world_size),
                          nodes=len({r["host"] for r in gathered}))
        dist.barrier()
        dist.destroy_process_group()
        return report
    except BaseException as exc:  # noqa: BLE001 - every failure, Ctrl-C included, ends all ranks the same way
        abort_rank(exc, env, device)
