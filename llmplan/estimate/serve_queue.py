"""Continuous batching in steady state: from step times to TTFT, TPOT and throughput at a concurrency or a rate.

Mean-field, as AIConfigurator's aggregated-serving model (sdk/backends/base_backend.py `run_agg`): a request lives
N = k_p + (O - 1) steps, k_p of them waiting for and running its prefill, O - 1 decoding one token per step. Each
step schedules the running decodes first and fills the rest of its token budget (`max_num_tokens`, vLLM's
max_num_batched_tokens) with prefill chunks (Agrawal et al. 2024, Sarathi-Serve: chunked prefills, stall-free
batching). Over one cycle of N steps the C running requests bring C x I prompt tokens, spread over
n_mix = C x I / budget mixed steps; the other steps decode only. Then

  TPOT = (n_mix x t_mix + (N - n_mix) x t_decode) / N          (a request decodes through both kinds of steps)
  TTFT = (own chunks + queueing) x t_mix
  output tokens/s = C x O / (N x TPOT)

Queueing for the prefill budget at a rate: an M/D/1 queue (Poisson arrivals, deterministic service of
ceil(I / budget) steps; Pollaczek-Khinchine mean wait rho / (2 (1 - rho)) x service) with rho the share of time
the steps spend with prefill work. At a fixed concurrency (a closed loop of C equal clients) the requests that finish
together come back together and share mixed steps; they wait only when the prompts need more mixed steps than a
cycle has (the closed-loop bottleneck: then TTFT = C x prefill time - decode time, the machine-repairman limit).
`staggered`: the closed loop with its arrivals spread over the cycle, as after a benchmark's first wave
(llmplan.estimate.serve_bench): C x k_p / N prompts in prefill at a time (at least the one), the same deterministic
bottleneck rule, no random wait. At a rate R (open loop) the concurrency solves Little's law C = R x E2E(C); once C
nears the KV-limited maximum c, requests also wait for a KV slot: M/D/c, Sakasegawa's approximation (1977)
Lq = rho^sqrt(2 (c + 1)) / (1 - rho) x (1 + 0) / 2, Wq = Lq / R. Limits: every request has the same lengths,
routing is uniform, the steps of one cycle are averaged (no burst at start-up), and the queueing formulas assume
Poisson arrivals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmplan.estimate.serve_step import Deployment, StepTime, step_time


@dataclass(frozen=True)
class Steady:
    concurrency: float
    steps_per_request: float   # N
    mixed_steps: float         # n_mix per cycle
    decode_batch: float        # decode tokens per step
    prefill_per_mixed_step: float
    prefill_wait_steps: float
    mixed: StepTime
    decode_only: StepTime
    ttft_seconds: float
    tpot_seconds: float
    cycle_seconds: float       # N x TPOT: one request's life, and the time C requests take to complete
    prefill_steps: float       # k_p: steps a request spends waiting for and running its prefill

    @property
    def requests_per_second(self) -> float:
        return self.concurrency / self.cycle_seconds

    @property
    def decode_steps(self) -> float:
        return self.steps_per_request - self.prefill_steps

    @property
    def e2e_seconds(self) -> float:
        return self.ttft_seconds + self.tpot_seconds * self.decode_steps


def steady_state(dep: Deployment, concurrency: float, input_tokens: int, output_tokens: int,
                 closed_loop: bool = True, staggered: bool = False) -> Steady:
    """The steady state of `concurrency` requests of input_tokens + output_tokens under continuous batching."""
    C, I, O = float(concurrency), float(input_tokens), float(output_tokens)
    o1 = max(O - 1.0, 0.0)
    budget_total = float(dep.prefill_chunk) * (dep.tp if dep.attention_dp else 1)  # one budget per scheduler
    context = I + O / 2.0  # mean context of a decoding request
    k_p = math.ceil(I / budget_total) if I else 0.0

    def shape(k_p: float) -> tuple[float, float, float, float, float]:
        """decode tokens per step, own prefill steps, mixed steps per cycle, prefill tokens per mixed step."""
        N = o1 + k_p
        d = C * o1 / N if N else 0.0
        budget = max(budget_total - d, 0.1 * budget_total)
        own = math.ceil(I / budget) if I else 0.0
        if closed_loop and not staggered:
            # equal requests in a closed loop arrive in groups that fill the budget (those that finished together)
            in_prefill = max(min(C, budget / I if I else 1.0), 1.0)
        else:
            # arrivals spread over the cycle: a mixed step holds the prompts then in prefill (at least the one)
            in_prefill = max(C * k_p / N if N else 1.0, 1.0)
        p_mix = min(budget, I * in_prefill) if I else 0.0
        needed = C * I / p_mix if p_mix else 0.0  # mixed steps the cycle's prompts need
        return N, d, own, needed, p_mix

    def settle(k_p: float, longer: float) -> tuple[float, float]:
        """k_p and the wait (steps) at the fixed point; `longer` = t_mix / t_decode weighs the busy share by time."""
        wait = 0.0
        for _ in range(200):
            N, d, own, needed, p_mix = shape(k_p)
            if closed_loop:
                # deterministic: when the prompts need more steps than a cycle has, requests wait for the budget
                new = max(own, needed - o1)
                wait = new - own
            else:
                busy = min(needed, N) * longer
                rho = min(busy / (busy + max(N - needed, 0.0)), 0.999) if N else 0.0  # share of time prefilling
                wait = rho / (2.0 * (1.0 - rho)) * own
                new = own + wait
            if abs(new - k_p) < 1e-6 * max(new, 1.0):
                return new, wait
            k_p = 0.5 * (k_p + new)
        return k_p, wait

    k_p, wait = settle(k_p, 1.0)
    if not closed_loop:  # once more, with the busy share measured in time rather than in steps
        N, d, own, needed, p_mix = shape(k_p)
        t_mix = step_time(dep, d, context, p_mix, prefill_start=max(I - min(p_mix, I), 0.0) / 2.0).seconds
        t_dec = step_time(dep, d, context).seconds
        k_p, wait = settle(k_p, t_mix / t_dec if t_dec > 0 else 1.0)
    N, d, own, needed, p_mix = shape(k_p)
    n_mix = min(N, needed)
    mixed = step_time(dep, d, context, p_mix, prefill_start=max(I - min(p_mix, I), 0.0) / 2.0)
    decode_only = step_time(dep, d, context)
    cycle = n_mix * mixed.seconds + (N - n_mix) * decode_only.seconds
    tpot = cycle / N if N else mixed.seconds
    # its own chunks: full ones at the mixed step, the remainder (if any) in one more, lighter step
    budget = max(budget_total - d, 0.1 * budget_total)
    full, rem = (math.floor(I / budget), I - math.floor(I / budget) * budget) if I > budget else (0, 0.0)
    if full:
        own_seconds = full * mixed.seconds + (step_time(dep, d, context, rem, prefill_start=I - rem).seconds
                                              if rem > 0 else 0.0)
    else:
        own_seconds = mixed.seconds
    ttft = wait * mixed.seconds + own_seconds
    return Steady(C, N, n_mix, d, p_mix, wait, mixed, decode_only, ttft, tpot, cycle, k_p)


def admission_wait_seconds(rate: float, concurrency: float, slots: int) -> float:
    """Mean wait for one of `slots` KV slots (M/D/c, Sakasegawa 1977), occupancy concurrency / slots."""
    if slots < 1 or rate <= 0:
        return 0.0
    rho = min(concurrency / slots, 0.999)
    lq = rho ** math.sqrt(2.0 * (slots + 1)) / (1.0 - rho) * 0.5
    return lq / rate


def solve_rate(dep: Deployment, rate: float, input_tokens: int, output_tokens: int,
               max_concurrency: int) -> tuple[Steady, float, bool]:
    """The steady state at `rate` requests/s (Little: C = R x E2E(C)); returns it, the admission wait and
    whether the rate exceeds what max_concurrency can serve (then the state at max_concurrency)."""
    top = steady_state(dep, max_concurrency, input_tokens, output_tokens, closed_loop=False)
    if top.requests_per_second <= rate:
        return top, math.inf, True
    lo, hi = 1e-6, float(max_concurrency)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        s = steady_state(dep, mid, input_tokens, output_tokens, closed_loop=False)
        if s.requests_per_second < rate:
            lo = mid
        else:
            hi = mid
    s = steady_state(dep, hi, input_tokens, output_tokens, closed_loop=False)
    return s, admission_wait_seconds(rate, s.concurrency, max_concurrency), False
