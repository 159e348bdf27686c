"""`llmplan bench` across processes with torch.distributed: DDP or FSDP2 full sharding, timings gathered to rank 0.

Launched by torchrun (one node or several) or by `llmplan bench --nproc N`, which starts torchrun itself
(launch.py). Each rank reads RANK, LOCAL_RANK and WORLD_SIZE, joins the process group (NCCL on GPUs, gloo on CPU,
with a timeout so that nobody waits forever), trains the same model on its own batch, and times its steps; rank 0
gathers every rank's timings and peak memory, and alone prints and writes. A rank that fails (out of memory, no GPU
for its LOCAL_RANK, anything) reports one line and leaves at once; torchrun then stops the others, and the process
group's timeout ends any rank still waiting on a collective.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass

from llmplan.errors import LlmplanError, RunError

STRATEGIES = ("ddp", "fsdp")
DEFAULT_TIMEOUT_SECONDS = 300.0  # process-group timeout; LLMPLAN_DIST_TIMEOUT overrides it
ERROR_FILE_ENV = "LLMPLAN_DIST_ERRFILE"  # set by the --nproc launcher: ranks write their failure here, once
FAIL_RANK_ENV = "LLMPLAN_DIST_FAIL_RANK"  # testing aid: this rank raises at its first timed step
# Errors a rank sees because another rank died first (not the root cause).
_SECONDARY = ("connection closed", "connection reset", "broken pipe", "timed out", "timeout", "socket",
              "peer", "nccl communicator was aborted", "process group", "watchdog", "remote process",
              "distbackenderror")


@dataclass(frozen=True)
class DistEnv:
    rank: int
    local_rank: int
    world_size: int
    local_world_size: int


def dist_env(environ=None) -> DistEnv | None:
    """The torchrun environment, or None when this process was not started by a distributed launcher."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return None
    try:
        world = int(env["WORLD_SIZE"])
        rank = int(env["RANK"])
        local = int(env.get("LOCAL_RANK", rank))
        local_world = int(env.get("LOCAL_WORLD_SIZE", world))
    except ValueError:
        raise LlmplanError("RANK, LOCAL_RANK and WORLD_SIZE must be whole numbers (as torchrun sets them)") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise LlmplanError(f"inconsistent torchrun environment: RANK {rank}, LOCAL_RANK {local}, WORLD_SIZE {world}")
    return DistEnv(rank, local, world, local_world)


def pg_timeout_seconds() -> float:
    raw = os.environ.get("LLMPLAN_DIST_TIMEOUT")
    if raw is None:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise LlmplanError(f"LLMPLAN_DIST_TIMEOUT must be a number of seconds greater than zero, got {raw!r}")
    return value


def init_process_group(env: DistEnv, kind: str) -> tuple[str, str]:
    """Join the process group: NCCL with one GPU per local rank, or gloo on CPU. Returns (torch device, backend)."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    if kind == "cuda":
        count = torch.cuda.device_count()
        if env.local_rank >= count:
            raise RunError(f"LOCAL_RANK {env.local_rank} has no GPU: {count} visible on this node; start at most "
                           f"{count} processes per node (--nproc-per-node) or use --device cpu")
        device, backend = f"cuda:{env.local_rank}", "nccl"
        torch.cuda.set_device(env.local_rank)
    else:
        device, backend = "cpu", "gloo"
    if not dist.is_initialized():
        kwargs = {"device_id": torch.device(device)} if backend == "nccl" else {}
        dist.init_process_group(backend, timeout=timedelta(seconds=pg_timeout_seconds()), **kwargs)
    return device, backend


def wrap_model(model, strategy: str, device: str):
    """DistributedDataParallel, or FSDP2 full sharding (torch.distributed.fsdp.fully_shard) of each block then the
    whole model: parameters, gradients and optimizer states sharded over the ranks (ZeRO stage 3)."""
    import torch.distributed as dist

    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        # gradient_as_bucket_view: gradients live in the all-reduce buckets, not in a second copy
        ids = [int(device.split(":")[1])] if device.startswith("cuda") else None
        return DistributedDataParallel(model, device_ids=ids, gradient_as_bucket_view=True)
    if strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cuda" if device.startswith("cuda") else "cpu", (dist.get_world_size(),))
        for block in model.blocks:
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model
    raise LlmplanError(f"unknown --strategy {strategy!r}; accepted: {', '.join(STRATEGIES)}")


def local_bytes(t) -> int:
    """Bytes this rank holds for a tensor: the local shard of a DTensor (FSDP2), else the tensor itself."""
    local = t.to_local() if hasattr(t, "to_local") else t
    return local.numel() * local.element_size()


def model_state_bytes(model, opt) -> dict[str, int]:
    """Weights, gradients and optimizer states held by this rank."""
    import torch

    params = list(model.parameters())
    return {"weights": sum(local_bytes(p) for p in params),
            "gradients": sum(local_bytes(p.grad) for p in params if p.grad is not None),
            "optimizer": sum(local_bytes(t) for s in opt.state.values() for t in s.values() if torch.is_tensor(t))}


def spread(values: list[float]) -> dict[str, float]:
    """min, median and max across ranks."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def aggregate(per_rank: list[dict], single_step_seconds: float | None, tokens_per_rank_step: int) -> dict:
    """Rank 0's summary of every rank's result: step time across ranks, throughput and weak-scaling efficiency.

    Every rank waits for the slowest in the gradient reduction, so the job's step time is the slowest rank's median.
    Scaling efficiency (weak scaling, same micro-batch per rank): t(1 process) / t(N processes); 1.0 is perfect.
    """
    per_rank = sorted(per_rank, key=lambda r: r["rank"])
    medians = [r["step_seconds"] for r in per_rank]
    job = max(medians)
    world = len(per_rank)
    out = {"world_size": world, "step_seconds": spread(medians), "job_step_seconds": job,
           "tokens_per_second": world * tokens_per_rank_step / job, "per_rank": per_rank,
           "single_process_step_seconds": single_step_seconds, "scaling_efficiency": None, "speedup": None}
    if single_step_seconds:
        out["scaling_efficiency"] = single_step_seconds / job
        out["speedup"] = world * single_step_seconds / job
    peaks = [r["peak_bytes"] for r in per_rank if r.get("peak_bytes") is not None]
    if peaks:
        out["peak_bytes"] = spread(peaks)
    return out


def is_secondary(message: str) -> bool:
    """True for errors a rank sees because a peer died first (connection closed, collective timed out)."""
    text = message.lower()
    return any(k in text for k in _SECONDARY)


def describe_failure(exc: BaseException, env: DistEnv, device: str | None) -> str:
    """One line: which rank, what happened, what to do."""
    where = f"rank {env.rank} of {env.world_size}" + (f" ({device})" if device else "")
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "out of memory" in text.lower() or type(exc).__name__ == "OutOfMemoryError":
        return f"{where}: out of memory; lower --batch or --seq, use --strategy fsdp, or more processes"
    if isinstance(exc, (LlmplanError, RunError)):
        return f"{where}: {text}"
    return f"{where}: {type(exc).__name__}: {text[:300]}"


def report_failure(message: str, env: DistEnv) -> None:
    """Record this rank's failure once: in the launcher's error file when there is one, else one stderr line.

    A rank that only saw a peer die stays silent when all ranks share this node (the root cause is printed on the
    same terminal); across nodes it says briefly that it stopped because another rank failed."""
    secondary = is_secondary(message)
    path = os.environ.get(ERROR_FILE_ENV)
    if path:
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(("secondary\t" if secondary else "primary\t") + message + "\n")
            return
        except OSError:
            pass
    if secondary:
        if env.local_world_size == env.world_size:
            return
        message = f"rank {env.rank} of {env.world_size}: stopped because another rank failed ({message[:120]})"
    sys.stderr.write(f"llmplan: error: {message}\n")
    sys.stderr.flush()


def abort_rank(exc: BaseException, env: DistEnv, device: str | None) -> None:
    """Report and leave now: no destructor, no barrier, nothing that could wait on a dead peer."""
    report_failure(describe_failure(exc, env, device), env)
    try:
        import torch.distributed as dist

        if dist.is_initialized() and hasattr(dist, "abort_process_group") and not device == "cpu":
            dist.abort_process_group()  # NCCL: abort pending collectives so that no kernel keeps waiting
    except Exception:  # already torn down: nothing left to abort
        pass
    os._exit(1)


def maybe_inject_failure(env: DistEnv) -> None:
    """Testing aid: LLMPLAN_DIST_FAIL_RANK=R makes rank R fail at its first timed step."""
    target = os.environ.get(FAIL_RANK_ENV)
    if target is not None and target.strip() == str(env.rank):
        raise RunError(f"failure injected for testing ({FAIL_RANK_ENV}={target})")


def timed_steps(step, warmup: int, steps: int, device: str, before_timing=None) -> list[float]:
    """Warm-up steps (untimed), then `steps` steps each timed between device synchronisations."""
    import torch

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    sync()
    if before_timing:
        before_timing()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    return times
