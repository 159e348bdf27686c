"""Collective communication time: latency + bytes x bus factor / (achievable bus bandwidth), on the tier a group spans.

Bus factors are nccl-tests' (github:NVIDIA/nccl-tests doc/PERFORMANCE.md): a collective over n ranks of an S-byte
tensor moves S x factor through each rank's bottleneck link, factor 2(n-1)/n for all-reduce, (n-1)/n for
reduce-scatter, all-gather and all-to-all, 1 for a point-to-point send. Ranks are laid out TP innermost, then CP,
then DP (EP carved from TP x CP x DP), then PP (Megatron-LM's order; Llama 3 paper section 3.3.2: innermost is the
highest bandwidth). A group of `size` ranks `stride` apart stays inside one NVLink domain when size x stride fits in
it; otherwise it crosses the NIC, whose per-GPU links the group's members in one node use side by side (a ring over
k members per node crosses nodes on k NICs at once: NCCL runs one ring per NIC).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.hardware.efficiency import Efficiency

BUS_FACTOR = {
    "all_reduce": lambda n: 2.0 * (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "all_to_all": lambda n: (n - 1) / n,
    "p2p": lambda n: 1.0,
}


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
    def tier(self) -> str:
        return "scaleup" if self.inside_node else "scaleout"


def bus_bytes_per_s(eff: Efficiency, group: Group, nbytes: float) -> float:
    """Achievable bus bandwidth of `group`: NVLink inside a node; across nodes the NIC of each member in a node."""
    up = eff.collective_bus_bytes_per_s("scaleup", nbytes)
    if group.inside_node:
        return up
    return min(up, group.members_per_node * eff.collective_bus_bytes_per_s("scaleout", nbytes))


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
    return latency + nbytes * BUS_FACTOR[op](n) / bus_bytes_per_s(eff, group, nbytes)
