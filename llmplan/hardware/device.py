"""What `--gpu` means, for every command that takes it: a catalog name, a bare memory size, or a device described
on the command line.

    --gpu h100                                   a catalog entry (loose names, see `llmplan hardware`)
    --gpu 48GiB                                  a card known only by its memory (fits, no times)
    --gpu "custom:memory=96GiB,bf16=800T,fp8=1600T,hbm=4TB/s,scaleup=450GB/s,nic=50GB/s,domain=8"
    --gpu "h100:nic=25GB/s,domain=4"             a catalog entry with some figures replaced

Rates are per GPU and in one direction (the catalog's convention): nic=400Gb/s is 50 GB/s.
"""

from __future__ import annotations

import dataclasses
import re

from llmplan.errors import LlmplanError
from llmplan.hardware.catalog import GPU, load_gpus, match_gpu
from llmplan.units import parse_bandwidth, parse_bytes, parse_count, parse_flops_rate, parse_int_count

PEAK_KEYS = ("fp32", "tf32", "bf16", "fp16", "fp8", "fp4", "int8")
_RATE_KEYS = {"hbm": "bandwidth_bytes_per_s", "scaleup": "scaleup_bandwidth_bytes_per_s",
              "nic": "scaleout_bandwidth_bytes_per_s", "pcie": "pcie_bandwidth_bytes_per_s"}
_SYNONYMS = {"mem": "memory", "bandwidth": "hbm", "nvlink": "scaleup", "scaleout": "nic"}
KEYS = ("name", "memory", *PEAK_KEYS, *_RATE_KEYS, "domain", "power")
_SIZE = re.compile(r"\s*(\d+(\.\d*)?|\.\d+)\s*[kmgtp]i?b\s*", re.IGNORECASE)


def card_bytes(text: str, option: str = "--gpu") -> int:
    """A card's memory size: "48GB" is 48 GiB, as the catalog's cards (A40, L40S: 48 GiB) and nvidia-smi count it
    (vendors print binary HBM/GDDR capacities as "GB"); "48GiB" says the same explicitly."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp])b\s*", text, re.IGNORECASE)
    if m:
        return parse_bytes(f"{m.group(1)}{m.group(2)}iB", option)
    return parse_bytes(text, option)


def parse_gpu(text: str, option: str = "--gpu") -> GPU:
    """The device `text` names or describes; a one-line LlmplanError naming what is wrong otherwise."""
    raw = str(text).strip()
    if not raw:
        raise LlmplanError(f"{option} is empty: give a GPU name (see `llmplan hardware`), a memory size such as "
                           "48GiB, or custom:memory=SIZE,bf16=PEAK,...")
    if ":" in raw:
        base_text, _, spec = raw.partition(":")
        return _described(base_text.strip(), spec, raw, option)
    found = match_gpu(raw)
    if found is not None:
        return found
    if _SIZE.fullmatch(raw):
        return GPU(name=f"a {raw} GPU", vendor="", memory_bytes=card_bytes(raw, option), peak_flops={},
                   bandwidth_bytes_per_s=0.0, power_watts=None,
                   source=f"memory size given with {option}" + ("" if "i" in raw.lower() else
                                                                 "; GB as on GPU cards = GiB"))
    raise LlmplanError(f"unknown GPU {raw!r}: give a memory size such as 48GiB, custom:memory=SIZE,bf16=PEAK,... "
                       f"or one of {', '.join(g.name for g in load_gpus())} (see `llmplan hardware`)")


def _described(base_text: str, spec: str, raw: str, option: str) -> GPU:
    custom = base_text.lower() == "custom"
    if custom:
        base = GPU(name="custom", vendor="", memory_bytes=0, peak_flops={}, bandwidth_bytes_per_s=0.0,
                   power_watts=None, source=f"described with {option} {raw}")
    else:
        found = match_gpu(base_text) if base_text else None
        if found is None:
            raise LlmplanError(f"{option} {raw!r}: {base_text!r} is not a catalog GPU; start from 'custom:' to "
                               "describe one, or see `llmplan hardware` for the names")
        base = dataclasses.replace(found, source=f"{found.source}; changed with {option} {raw}")
    values = _pairs(spec, raw, option)
    if custom and "memory" not in values:
        raise LlmplanError(f"{option} {raw!r}: a custom device needs memory=SIZE (e.g. custom:memory=96GiB,"
                           "bf16=800T,hbm=4TB/s)")
    changes: dict = {}
    peaks = dict(base.peak_flops)
    for key, value in values.items():
        what = f"{option} {key}"
        if key == "name":
            changes["name"] = value
        elif key == "memory":
            changes["memory_bytes"] = card_bytes(value, what)
        elif key in PEAK_KEYS:
            peaks[key] = parse_flops_rate(value, what)
        elif key in _RATE_KEYS:
            changes[_RATE_KEYS[key]] = parse_bandwidth(value, what)
        elif key == "domain":
            changes["nvlink_domain_gpus"] = parse_int_count(value, what)
        elif key == "power":
            changes["power_watts"] = parse_count(re.sub(r"\s*[wW]\s*$", "", value), f"{what} (watts)")
    return dataclasses.replace(base, peak_flops=peaks, **changes)


def _pairs(spec: str, raw: str, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq or not value:
            raise LlmplanError(f"{option} {raw!r}: {item!r} is not key=value (keys: {', '.join(KEYS)})")
        key = _SYNONYMS.get(key.lower(), key.lower())
        if key not in KEYS:
            raise LlmplanError(f"{option} {raw!r}: unknown key {item.partition('=')[0].strip()!r}; accepted keys: "
                               f"{', '.join(KEYS)}")
        if key in out:
            raise LlmplanError(f"{option} {raw!r}: {key} is given twice")
        out[key] = value
    if not out:
        raise LlmplanError(f"{option} {raw!r}: nothing after ':'; give key=value pairs ({', '.join(KEYS)})")
    return out
