"""The accelerator catalog: memory, dense peak FLOP/s per dtype, HBM and network bandwidths, power; each entry
cites its datasheet (`source`) and, for the network figures, its reference system (`network_source`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from llmplan.errors import LlmplanError
from llmplan.units import GiB

# Formats that share a peak: fp16 and bf16 run at the same tensor-core rate on every chip listed.
_PEAK_FALLBACK = {"bf16": "fp16", "fp16": "bf16", "tf32": "fp32", "int4": "int8"}


@dataclass(frozen=True)
class GPU:
    """One accelerator. Bandwidths are bytes/s, per GPU, in one direction (a link sold as '900 GB/s' bidirectional
    is 450e9 here); peaks are dense FLOP/s per dtype; None means the vendor publishes no such figure."""

    name: str
    vendor: str
    memory_bytes: int
    peak_flops: dict[str, float] = field(hash=False)  # dtype -> dense FLOP/s (never 2:4-sparse figures)
    bandwidth_bytes_per_s: float  # HBM (device memory) bandwidth; also read as hbm_bandwidth_bytes_per_s
    power_watts: float | None
    source: str
    aliases: tuple[str, ...] = ()
    nvlink_domain_gpus: int = 1  # GPUs in one scale-up domain (NVLink/NVSwitch, Infinity Fabric, ICI); 1 = none
    scaleup_bandwidth_bytes_per_s: float | None = None  # per GPU, one direction, inside the scale-up domain
    scaleout_bandwidth_bytes_per_s: float | None = None  # per GPU NIC, one direction, of the reference system
    pcie_bandwidth_bytes_per_s: float | None = None  # host link (PCIe x16), one direction
    network_source: str = ""

    @property
    def hbm_bandwidth_bytes_per_s(self) -> float:
        return self.bandwidth_bytes_per_s

    def peak(self, dtype: str) -> float | None:
        """Dense peak FLOP/s for `dtype`, or None when the chip has no such mode (a V100 has no bf16)."""
        if dtype in self.peak_flops:
            return self.peak_flops[dtype]
        if dtype == "bf16" and self.vendor == "NVIDIA" and "bf16" not in self.peak_flops:
            return None  # pre-Ampere NVIDIA: no bf16 tensor cores
        alt = _PEAK_FALLBACK.get(dtype)
        return self.peak_flops.get(alt) if alt else None


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_VENDOR_WORDS = re.compile(r"nvidia|geforce|tesla|amd|instinct|google|cloud")


def _gbs(value: float | None) -> float | None:
    return None if value is None else value * 1e9


def _entry(g: dict) -> GPU:
    return GPU(name=g["name"], vendor=g["vendor"], memory_bytes=int(g["memory_gib"] * GiB),
               peak_flops={k: v * 1e12 for k, v in g["peak_tflops"].items() if v is not None},
               bandwidth_bytes_per_s=g["bandwidth_gbs"] * 1e9, power_watts=g["power_w"], source=g["source"],
               aliases=tuple(g.get("aliases", ())), nvlink_domain_gpus=int(g.get("nvlink_domain_gpus", 1)),
               scaleup_bandwidth_bytes_per_s=_gbs(g.get("scaleup_gbs")),
               scaleout_bandwidth_bytes_per_s=_gbs(g.get("scaleout_gbs")),
               pcie_bandwidth_bytes_per_s=_gbs(g.get("pcie_gbs")), network_source=g.get("network_source", ""))


@lru_cache(maxsize=1)
def load_gpus() -> tuple[GPU, ...]:
    raw = json.loads(Path(__file__).with_name("catalog.json").read_text(encoding="utf-8"))
    return tuple(_entry(g) for g in raw["gpus"])


def _tokens(name: str) -> list[str]:
    """'Tesla V100-PCIE-32GB' -> ['tesla', 'v100', 'pcie', '32gb']."""
    return re.findall(r"[a-z0-9]+", name.lower())


def _contains(tokens: list[str], alias: list[str]) -> bool:
    n = len(alias)
    return any(tokens[i:i + n] == alias for i in range(len(tokens) - n + 1))


def match_gpu(name: str) -> GPU | None:
    """Loose lookup: 'h100', 'H100-80GB', 'NVIDIA H100 80GB HBM3', 'NVIDIA H200' all find their entry.

    A longer device string (a driver's full name) matches the longest alias it contains as whole words, so that
    'NVIDIA GH200 480GB' does not pass for an H200; a memory size in it ('Tesla V100-PCIE-32GB') must agree with
    the entry's, or the entry of the same family with that memory is taken. No agreement: no match, never a guess."""
    key = _key(name)
    if not key:
        return None
    names: dict[str, GPU] = {}
    for gpu in load_gpus():
        for alias in (gpu.name, *gpu.aliases):
            names[_key(alias)] = gpu
    for candidate in (key, _VENDOR_WORDS.sub("", key)):
        if candidate in names:
            return names[candidate]
    tokens = [t for t in _tokens(name) if not _VENDOR_WORDS.fullmatch(t)]
    hits = [(len(_key(alias)), alias, gpu) for gpu in load_gpus() for alias in (gpu.name, *gpu.aliases)
            if len(_key(alias)) >= 3 and _contains(tokens, [t for t in _tokens(alias)
                                                          if not _VENDOR_WORDS.fullmatch(t)])]
    if not hits:
        return None
    size = re.search(r"(?<![0-9])(\d+)\s*gb", name.lower())
    if size is None:
        return max(hits, key=lambda t: t[0])[2]
    gib = int(size.group(1))
    same = [h for h in hits if round(h[2].memory_bytes / GiB) == gib]
    if same:
        return max(same, key=lambda t: t[0])[2]
    family = _tokens(max(hits, key=lambda t: t[0])[1])[0]  # 'a100' of 'a100-pcie'
    kin = [g for g in load_gpus() if round(g.memory_bytes / GiB) == gib
           and any(_tokens(a)[:1] == [family] for a in (g.name, *g.aliases))]
    return kin[0] if kin else None


def get_gpu(name: str) -> GPU:
    gpu = match_gpu(name)
    if gpu is None:
        known = ", ".join(g.name for g in load_gpus())
        raise LlmplanError(f"unknown GPU {name!r}; known: {known} (see `llmplan hardware`)")
    return gpu
