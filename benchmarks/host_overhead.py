"""Host (CPU) time per PyTorch operator, forward and autograd backward: the dispatch floor of the step-time model.

A chain of n operators (layer norm, matmul, GELU, add, in turn) on 4 x 4 tensors, so that the kernels themselves
cost next to nothing and what is timed is Python, the dispatcher, the autograd record and the backward engine.
The per-operator time is the slope between n = 40 and n = 400 (the fixed costs of a call cancel), the minimum over
7 repeats of 20 runs each (the least disturbed by other jobs on a shared machine). llmplan.estimate.opcosts uses the
result as HOST_FWD_OP_SECONDS (forward) and HOST_BWD_OP_SECONDS (forward + backward minus forward).

Usage: python benchmarks/host_overhead.py   (needs torch; CPU only)
"""

import statistics
import time

import torch


def _chain(x0, w, n):
    y = x0
    for i in range(n):
        op = i % 4
        if op == 0:
            y = torch.nn.functional.layer_norm(y, (4,))
        elif op == 1:
            y = y @ w
        elif op == 2:
            y = torch.nn.functional.gelu(y)
        else:
            y = y + x0
    return y.sum()


def _run(x0, w, n, backward, repeat=20):
    t = time.perf_counter()
    for _ in range(repeat):
        loss = _chain(x0, w, n)
        if backward:
            loss.backward()
    return (time.perf_counter() - t) / repeat


def main() -> None:
    torch.set_num_threads(1)
    x0 = torch.ones(4, 4, requires_grad=True)
    w = torch.ones(4, 4, requires_grad=True)
    out = {}
    for backward in (False, True):
        per_op = [(_run(x0, w, 400, backward) - _run(x0, w, 40, backward)) / 360 for _ in range(7)]
        out[backward] = min(per_op)
        label = "forward + backward" if backward else "forward"
        print(f"{label}: {min(per_op) * 1e6:.1f} us per operator (median {statistics.median(per_op) * 1e6:.1f})")
    print(f"backward alone: {(out[True] - out[False]) * 1e6:.1f} us per operator; torch {torch.__version__}")


if __name__ == "__main__":
    main()
