"""TTFT at a fixed concurrency as a benchmark of N requests reports it: the first wave, then the staggered regime.

A benchmark client at concurrency C (aiperf / genai-perf `--concurrency`, vLLM `benchmark_serving.py
--max-concurrency`) sends C requests at once, and a new one each time one finishes, until N have been sent; aiperf
waits for its warm-up requests to return before the measured phase starts (aiperf/timing/credit_issuing_strategy.py
`_execute_phases`), so the measured phase starts on an idle engine with C prompts at once. The engine runs
continuous-batching steps (Agrawal et al. 2024, Sarathi-Serve): each step carries one decode token per running
request, then fills what is left of its token budget (max_num_tokens / max_num_batched_tokens, llmplan.estimate.
serve_engines) with prompt chunks in arrival order. So:

- the first wave: request i's first token waits for the prefill of the i - 1 prompts before it, in steps shared
  with the decodes of those already prefilled: about (C + 1) / 2 prefills on average;
- afterwards each replacement is sent when a request finishes; the first wave's requests finish one after another,
  so their replacements come back staggered over the cycle (`later_ttft_seconds`): each prefilled with the prompts
  then arriving (serve_queue.steady_state, staggered), after the rest of the step in progress when it reaches the
  engine (a random point of the cycle: the mean residual E[s^2] / 2 E[s] of its steps; none for one client, whose
  engine is idle), unless prefill is the bottleneck: then the queue persists (C x prefill - decode time);
- the mean TTFT over N requests mixes the two: (C x first wave + (N - C) x later) / N.

`run_benchmark` replays the steps: each timed by llmplan.estimate.serve_step.step_time at its own decode count,
mean context and prompt tokens; runs of identical decode-only steps are taken at once (timed at their middle
context). It gives the first wave (all C prompts at t = 0), and a burst of N requests at once (a request rate of
infinity, as vLLM's benchmark_serving.py --request-rate inf), where at most `slots` run. Replayed for all N
requests, equal requests keep the first wave's convoy (replacements come back one step apart and queue again
behind each other's prefill): benchmarks/serving_validation.py --replay compares it (docs/validation.md).
Limits: every request has the same lengths, routing is uniform, one replica (the caller splits C and N).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from llmplan.errors import LlmplanError
from llmplan.estimate.serve_queue import steady_state
from llmplan.estimate.serve_step import Deployment, step_time


@dataclass(frozen=True)
class Benchmark:
    clients: int                   # concurrency on this replica
    requests: int                  # requests sent (measured)
    ttft_seconds: float            # mean over all requests (the benchmark's reported mean)
    first_wave_ttft_seconds: float  # mean over the first `clients` requests
    later_ttft_seconds: float      # mean over the others (the staggered regime); the first wave's if none
    tpot_seconds: float            # mean over requests of (finish - first token) / (O - 1)
    seconds: float                 # the benchmark's duration
    steps: int


def run_benchmark(dep: Deployment, clients: int, requests: int, input_tokens: int, output_tokens: int,
                  slots: int | None = None, overhead_seconds: float = 0.0) -> Benchmark:
    """Simulate `requests` requests of input_tokens + output_tokens from `clients` closed-loop clients on one
    replica; at most `slots` requests run at once (the engine's batch and KV cap; default: no cap)."""
    if not isinstance(clients, int) or clients < 1:
        raise LlmplanError(f"a benchmark needs at least 1 client, got {clients!r}")
    if not isinstance(requests, int) or requests < clients:
        raise LlmplanError(f"--requests {requests} is fewer than the {clients} requests in flight per replica; "
                           f"send at least {clients}")
    I, O = int(input_tokens), int(output_tokens)
    slots = max(int(slots), 1) if slots else requests
    budget_total = float(dep.prefill_chunk) * (dep.tp if dep.attention_dp else 1)  # one budget per scheduler
    arrivals: deque = deque()        # (engine arrival time, client send time), in time order
    for _ in range(min(clients, requests)):
        arrivals.append((overhead_seconds, 0.0))
    sent = len(arrivals)
    queue: deque = deque()           # [send time, prompt tokens left], in arrival order
    decoders: deque = deque()        # (step of the first token, send time, first token time), oldest first
    sum_first = 0                    # sum of the decoders' first-token steps (their mean context)
    t, n = 0.0, 0                    # time, steps done
    ttfts: list[float] = []
    tpots: list[float] = []

    def admit(until: float, inclusive: bool) -> None:
        while arrivals and (arrivals[0][0] < until or (inclusive and arrivals[0][0] <= until)):
            queue.append([arrivals.popleft()[1], float(I)])

    def finish(at: float, send: float, first: float) -> None:
        nonlocal sent
        tpots.append((at - first) / (O - 1) if O > 1 else 0.0)
        if sent < requests:
            arrivals.append((at + overhead_seconds, at))
            sent += 1

    while True:
        admit(t, inclusive=False)
        if not decoders and not queue:
            if not arrivals:
                break
            t = max(t, arrivals[0][0])  # idle: the engine starts a step as soon as a request arrives
            admit(t, inclusive=True)
        d = len(decoders)
        context = I + float((n + 1) * d - sum_first) / d if d else 0.0
        budget = max(budget_total - d, 0.1 * budget_total)
        p, start_weight, done, room = 0.0, 0.0, 0, slots - d
        for item in queue:
            if p >= budget or done >= room:
                break
            take = min(item[1], budget - p)
            start_weight += take * (I - item[1])
            p += take
            if take >= item[1]:
                done += 1
            else:
                break
        if p > 0:
            st = step_time(dep, float(d), context, p, prefill_start=start_weight / p)
            left = p
            for item in queue:  # take the chunks off the queue
                take = min(item[1], left)
                item[1] -= take
                left -= take
                if left <= 0:
                    break
            k, t = 1, t + st.seconds
        else:
            # decode-only steps until the next request finishes or the next arrival can join
            k = decoders[0][0] + O - 1 - n
            dt = step_time(dep, float(d), context + (k - 1) / 2.0).seconds
            if arrivals and arrivals[0][0] >= t:
                k = max(min(k, math.floor((arrivals[0][0] - t) / dt) + 1), 1)
                dt = step_time(dep, float(d), context + (k - 1) / 2.0).seconds
            t += k * dt
        n += k
        for _ in range(done):
            send = queue.popleft()[0]
            ttfts.append(t - send)
            if O <= 1:
                finish(t, send, t)
            else:
                decoders.append((n, send, t))
                sum_first += n
        while decoders and decoders[0][0] + O - 1 <= n:
            first_step, send, first = decoders.popleft()
            sum_first -= first_step
            finish(t, send, first)
    wave = ttfts[:clients]
    later = ttfts[clients:] or wave
    return Benchmark(clients, requests, sum(ttfts) / len(ttfts), sum(wave) / len(wave), sum(later) / len(later),
                     sum(tpots) / len(tpots), t, n)


def later_ttft_seconds(dep: Deployment, clients: float, input_tokens: int, output_tokens: int) -> float:
    """TTFT once arrivals are staggered over the cycle (engine time, no request overhead): its own prefill with the
    prompts then arriving, the closed-loop bottleneck wait, and the rest of the step in progress at its arrival."""
    s = steady_state(dep, clients, input_tokens, output_tokens, closed_loop=True, staggered=True)
    n_dec = s.steps_per_request - s.mixed_steps
    mean = s.cycle_seconds / s.steps_per_request if s.steps_per_request else 0.0
    square = (s.mixed_steps * s.mixed.seconds ** 2 + n_dec * s.decode_only.seconds ** 2) / s.steps_per_request \
        if s.steps_per_request else 0.0
    residual = square / (2.0 * mean) if mean > 0 else 0.0  # renewal theory: mean residual life of a step
    busy = min(max(clients - 1.0, 0.0), 1.0)  # one client finds its engine idle
    return s.ttft_seconds + busy * residual


def benchmark_ttft_seconds(dep: Deployment, clients: float, requests: int | None, input_tokens: int,
                           output_tokens: int, slots: int) -> tuple[float, float | None, float]:
    """(mean TTFT, first-wave mean or None, later TTFT) at `clients` per replica over `requests` per replica
    (None: an unbounded run, the staggered regime alone); engine time, no request overhead."""
    later = later_ttft_seconds(dep, clients, input_tokens, output_tokens)
    if requests is None:
        return later, None, later
    c = max(int(round(clients)), 1)
    wave = run_benchmark(dep, c, c, input_tokens, output_tokens, slots).first_wave_ttft_seconds
    n = max(int(requests), c)
    return (c * wave + (n - c) * later) / n, wave, later


__all__ = ["Benchmark", "run_benchmark", "later_ttft_seconds", "benchmark_ttft_seconds"]
