"""Collective communication time: latency + bytes x bus factor / (achievable bus bandwidth), on the tier a group spans.

Bus factors are nccl-tests' (github:NVIDIA/nccl-tests doc/PERFORMANCE.md): a collective over n ranks of an S-byte
tensor moves S x factor through each rank's bottleneck link, factor 2(n-1)/n for all-reduce, (n-1)/n for
reduce-scatter, all-gather and all-to-all, 1 for a point-to-point send. Ranks are laid out TP innermost, then CP,
then DP (EP carved from TP x CP x DP), then PP (Megatron-LM's order; Llama 3 paper section 3.3.2: innermost is the
highest bandwidth). A group of `size` ranks `stride` apart stays inside one NVLink domain when size x stride fits in
it; otherwise it crosses the NIC, whose per-GPU links the group's members in one node use side by side (a ring over
k members per node crosses nodes on k NICs at once: NCCL runs one ring per NIC).

All-reduce, reduce-scatter and all-gather take NCCL's own cost model (src/graph/tuning.cc, ncclTopoTuneModel, NCCL
2.18-2.21): each algorithm (ring; tree for a multi-node all-reduce) and protocol (LL, LL128, Simple) has a latency of
a base plus one hop latency per step, NVLink hops inside a node and network hops between nodes, and a share of the
bus bandwidth; NCCL runs the fastest for each size, and so does this model. A ring's steps grow with its ranks
(n - 1 for reduce-scatter and all-gather, 2 (n - 1) for all-reduce), so a collective over a thousand GPUs pays
milliseconds of latency that one over eight does not. An all-reduce inside an NVSwitch domain of Hopper or later may
also take NVLS (the switch reduces): 25 us + bytes / (measured NVLS bandwidth), when that is faster.
benchmarks/collectives_check.py compares all of it with 1,008 measured nccl-tests runs (docs/validation.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from llmplan.hardware.efficiency import Efficiency

BUS_FACTOR = {
    "all_reduce": lambda n: 2.0 * (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "all_to_all": lambda n: (n - 1) / n,
    "p2p": lambda n: 1.0,
}


PROTOCOLS = ("ll", "ll128", "simple")
# NCCL src/graph/tuning.cc (NCCL 2.18-2.21): baseLat and hwLat in microseconds, per algorithm and protocol
NCCL_BASE_US = {"ring": {"ll": 6.6, "ll128": 14.0, "simple": 8.4}, "tree": {"ll": 6.8, "ll128": 14.0, "simple": 0.0}}
NCCL_HOP_US = {"nvlink": {"ring": {"ll": 0.6, "ll128": 1.9, "simple": 3.4}, "tree": {"ll": 0.6, "ll128": 1.25,
                                                                                   "simple": 28.0}},
               "net": {"ring": {"ll": 2.7, "ll128": 4.0, "simple": 14.0}, "tree": {"ll": 5.0, "ll128": 8.5,
                                                                                 "simple": 28.0}}}
NVLS_LATENCY_SECONDS = 25e-6  # tuning.cc hwLat[NVLINK][NVLS][Simple]
NCCL_NET_OVERHEAD_US = 1.0  # getNetOverhead on x86: each step of an inter-node ring posts to the proxy (x3 for Simple)


def _ring_share(proto: str, op: str, nodes: int) -> float:
    """The share of the Simple protocol's bus bandwidth a ring reaches with `proto` (tuning.cc's refinements)."""
    if proto == "ll":
        return 1 / 4 if nodes > 1 or op == "all_reduce" else 1 / 3
    return 0.92 if proto == "ll128" else 1.0


def nccl_latency_seconds(algo: str, proto: str, op: str, ranks: int, nodes: int) -> float:
    """NCCL's latency of one collective: base + hops (tuning.cc: ring steps, inter-node steps; tree depth)."""
    base = NCCL_BASE_US[algo][proto]
    intra, inter = NCCL_HOP_US["nvlink"][algo][proto], NCCL_HOP_US["net"][algo][proto]
    if algo == "tree":  # up and down the tree: the GPUs of a node in a chain, the nodes in a binary tree
        return 1e-6 * (base + 2 * ((ranks / nodes - 1) * intra + math.floor(math.log2(nodes)) * inter))
    steps = 2 * (ranks - 1) if op == "all_reduce" else ranks - 1
    inter_steps = (2 * nodes if nodes > 1 else 0) if op == "all_reduce" else nodes - 1
    if nodes > 1:
        intra = max(intra, NCCL_NET_OVERHEAD_US * (3 if proto == "simple" else 1))
    return 1e-6 * (base + (steps - inter_steps) * intra + inter_steps * inter)


@dataclass(frozen=True)
class Group:
    """A communicator: `size` ranks, `stride` apart in the rank order, on nodes (NVLink domains) of `node` GPUs."""

    size: int
    stride: int
    node: int

    @property
    def inside_node(self) -> bool:
        return self.size * self.stride <= self.node

    @property
    def members_per_node(self) -> int:
        if self.inside_node:
            return self.size
        return max(1, self.node // self.stride) if self.stride < self.node else 1

    @property
    def nodes(self) -> int:
        """Nodes (NVLink domains) the group's ranks are spread over."""
        return max(1, math.ceil(self.size / self.members_per_node))

    @property
    def tier(self) -> str:
        return "scaleup" if self.inside_node else "scaleout"


def bus_bytes_per_s(eff: Efficiency, group: Group, nbytes: float) -> float:
    """Achievable bus bandwidth of `group`: NVLink inside a node; across nodes the NIC of each member in a node."""
    up = eff.collective_bus_bytes_per_s("scaleup", nbytes)
    if group.inside_node:
        return up
    return min(up, group.members_per_node * eff.collective_bus_bytes_per_s("scaleout", nbytes))


@lru_cache(maxsize=65536)  # a layout search asks for the same collectives of many layouts
def collective_seconds(eff: Efficiency, op: str, nbytes: float, group: Group) -> float:
    """Seconds of one collective `op` on an `nbytes` tensor (the full, unsharded size) over `group`."""
    n = group.size
    if n <= 1 or nbytes <= 0:
        return 0.0
    latency = eff.collective_latency_seconds(group.tier)
    if op == "all_to_all" and not group.inside_node:
        # the share for ranks in other nodes leaves on this rank's NIC; the share for its node mates on NVLink
        k = group.members_per_node
        off = nbytes * (n - k) / n / eff.collective_bus_bytes_per_s("scaleout", nbytes)
        on = nbytes * (k - 1) / n / eff.collective_bus_bytes_per_s("scaleup", nbytes)
        return latency + max(off, on)
    if op == "p2p":
        tier_bw = eff.collective_bus_bytes_per_s(group.tier, nbytes)
        return latency + nbytes / tier_bw
    if op == "all_to_all":  # n - 1 sends at once (NCCL groups them): one latency
        return latency + nbytes * BUS_FACTOR[op](n) / bus_bytes_per_s(eff, group, nbytes)
    best = _nccl_seconds(op, nbytes, n, group.nodes, bus_bytes_per_s(eff, group, nbytes))
    if op == "all_reduce" and group.inside_node and eff.family.nvls_fraction and \
            not eff.collectives_measured.get("scaleup"):  # a measured curve already holds what NCCL chose
        # NVLS (NVLink SHARP, Hopper and later NVSwitches): the switch reduces, each GPU sends and receives the
        # tensor once; NCCL's tuning.cc charges it a 25 us NVLink latency (Simple)
        nvls = NVLS_LATENCY_SECONDS + nbytes / (eff.family.nvls_fraction * eff.link_bytes_per_s["scaleup"])
        best = min(best, nvls)
    return best


def _nccl_seconds(op: str, nbytes: float, n: int, nodes: int, bus: float) -> float:
    """The fastest of NCCL's algorithms and protocols for this size, as NCCL's tuner picks (ncclTopoGetAlgoTime:
    latency + bytes / algorithm bandwidth, here bytes x bus factor / bus bandwidth)."""
    moved = nbytes * BUS_FACTOR[op](n)
    best = min(nccl_latency_seconds("ring", p, op, n, nodes) + moved / (bus * _ring_share(p, op, nodes))
               for p in PROTOCOLS)
    if op == "all_reduce" and nodes > 1:  # tree: algorithm bandwidth half the bus bandwidth, 0.92 of it reached
        tree_share = {"ll": 0.92 / 3.8, "ll128": 0.92 * 120 / 128, "simple": 0.92}
        best = min(best, min(nccl_latency_seconds("tree", p, op, n, nodes) + 2 * nbytes / (bus * tree_share[p])
                             for p in PROTOCOLS))
    return best
