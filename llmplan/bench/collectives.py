"""Collective bus bandwidth across the ranks of a torchrun job (`llmplan bench --calibrate --nproc N`).

All-reduce, all-gather and reduce-scatter of float32 buffers, NCCL on GPUs and gloo on CPUs, timed as nccl-tests
times them and converted with its bus-bandwidth factors (nccl-tests doc/PERFORMANCE.md): algbw = S / t, with S the
buffer size for all-reduce and the total (gathered or reduced) array for all-gather and reduce-scatter; busbw =
algbw x 2(n-1)/n for all-reduce and x (n-1)/n for all-gather and reduce-scatter, so that the figure compares with
one GPU's link bandwidth whatever the number of ranks. Each sample starts after a barrier and times a fixed number
of calls (the same on every rank); a sample's time is the slowest rank's, and the median over samples is reported.
"""

from __future__ import annotations

import math
import statistics
import time

OPS = ("all_reduce", "all_gather", "reduce_scatter")


def bus_factor(op: str, ranks: int) -> float:
    """nccl-tests bus-bandwidth factor: all-reduce 2(n-1)/n; all-gather and reduce-scatter (n-1)/n."""
    return (2.0 if op == "all_reduce" else 1.0) * (ranks - 1) / ranks


def sizes_for(kind: str, quick: bool) -> tuple[int, ...]:
    """Total bytes S per operation: a latency-bound small size up to a bandwidth-bound large one."""
    if kind == "cuda":
        return (1 << 20, 1 << 24, 1 << 27) if quick else (1 << 20, 1 << 23, 1 << 26, 1 << 28, 1 << 30)
    return (1 << 16, 1 << 20, 1 << 22) if quick else (1 << 16, 1 << 20, 1 << 23, 1 << 25)


def measure_collectives(device: str, backend: str, sizes: tuple[int, ...], warmup: int = 2, repeats: int = 5,
                        sample_seconds: float = 0.01) -> tuple[list[dict], list[str]]:
    """Every op at every size on this process group (already joined); the same list on every rank, and notes for
    what the backend does not support."""
    import torch
    import torch.distributed as dist

    n = dist.get_world_size()
    cuda = device.startswith("cuda")

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    def slowest(values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.tolist()

    records, notes = [], []
    for op in OPS:
        for size in sizes:
            elements = max(size // 4 // n, 1) * n  # divisible by the ranks, as the sharded ops need
            total = elements * 4
            if op == "all_reduce":
                buf = torch.ones(elements, device=device)
                fn = lambda buf=buf: dist.all_reduce(buf)  # noqa: E731
            elif op == "all_gather":
                send = torch.ones(elements // n, device=device)
                out = torch.empty(elements, device=device)
                fn = lambda out=out, send=send: dist.all_gather_into_tensor(out, send)  # noqa: E731
            else:
                inp = torch.ones(elements, device=device)
                out = torch.empty(elements // n, device=device)
                fn = lambda out=out, inp=inp: dist.reduce_scatter_tensor(out, inp)  # noqa: E731
            try:
                for _ in range(max(warmup, 1)):
                    fn()
                sync()
            except (RuntimeError, NotImplementedError, ValueError) as exc:
                notes.append(f"{op} not measured: {backend} does not support it here ({str(exc).splitlines()[0][:80]})")
                break
            dist.barrier()
            t = time.perf_counter()
            fn()
            sync()
            once = slowest([time.perf_counter() - t])[0]
            inner = max(1, min(1000, math.ceil(sample_seconds / max(once, 1e-7))))
            inner = int(slowest([float(inner)])[0])  # every rank runs the same number of calls
            samples = []
            for _ in range(repeats):
                dist.barrier()
                t = time.perf_counter()
                for _ in range(inner):
                    fn()
                sync()
                samples.append((time.perf_counter() - t) / inner)
            samples = slowest(samples)
            median = statistics.median(samples)
            q = statistics.quantiles(samples, n=4, method="inclusive") if len(samples) > 1 else [median] * 3
            algbw = total / median
            records.append({"op": op, "ranks": n, "bytes": total, "seconds": median,
                            "spread_pct": (q[2] - q[0]) / median * 100.0, "alg_bytes_per_s": algbw,
                            "bus_bytes_per_s": algbw * bus_factor(op, n), "backend": backend, "dtype": "fp32",
                            "repeats": repeats, "calls_per_sample": inner})
    return records, notes
