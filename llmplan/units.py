"""Quantities: parsing counts and sizes users type, formatting them, and named constants.

Counts (parameters, tokens, FLOPs) are decimal: 7B = 7e9. Memory is either decimal (GB = 1e9 bytes) or binary
(GiB = 2**30 bytes); a printed size always says which.
"""

from __future__ import annotations

import math
import re

from llmplan.errors import LlmplanError

# 1 petaFLOP/s-day = 1e15 FLOP/s x 86,400 s (Brown et al. 2020, GPT-3 paper, Appendix D).
PFLOPS_DAY = 1e15 * 86_400

GB = 10**9
GiB = 2**30

# Bytes per value of each numeric format. int4 packs two values per byte.
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "tf32": 4.0,  # stored as fp32; tf32 is only a matmul mode
    "fp16": 2.0,
    "bf16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "nf4": 0.5,
}

_COUNT_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15}
_BYTE_SUFFIX = {
    "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50,
}
_NUMBER = r"[+-]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_COUNT_RE = re.compile(rf"^\s*({_NUMBER})\s*([a-zA-Z]?)\s*$")
_BYTES_RE = re.compile(rf"^\s*({_NUMBER})\s*([a-zA-Z]*)\s*$")


# The largest value of each option that describes anything physical, with why. Beyond these, results leave
# floating point (inf, nan) or mean nothing; such input is refused with the bound rather than planned with.
CEILINGS: dict[str, tuple[float, str]] = {
    "--gpus": (1e7, "ten million GPUs; the largest clusters hold about 10^5"),
    "--dp": (1e7, "ten million GPUs"),
    "--nproc": (1e4, "ten thousand processes on one machine"),
    "--tp": (1e5, "tensor-parallel groups span a node or two"),
    "--pp": (1e5, "a pipeline stage holds at least one layer"),
    "--batch": (1e8, "a hundred million sequences"),
    "--beams": (1e6, "a million beams"),
    "--seq": (1e9, "a billion-token context"),
    "--prompt-tokens": (1e9, "a billion-token context"),
    "--new-tokens": (1e9, "a billion-token context"),
    "--lora-rank": (1e6, "a rank beyond any hidden size"),
    "--quant-group": (1e9, "a group beyond any weight matrix"),
    "--params": (1e16, "ten quadrillion parameters"),
    "--tokens": (1e18, "10^18 tokens, over a thousand times all text ever written"),
    "--inference-tokens": (1e18, "10^18 tokens"),
    "--unique-tokens": (1e18, "10^18 tokens"),
    "--flops": (1e40, "10^40 FLOPs, beyond all compute there will be this century"),
    "--at-flops": (1e40, "10^40 FLOPs"),
    "--pf-days": (1e40 / PFLOPS_DAY, "10^40 FLOPs"),
    "--headroom": (2**70, "a zebibyte"),
    "--gpu": (2**70, "a zebibyte"),
}
DEFAULT_CEILING = (1e40, "beyond any physical quantity llmplan plans with")


def ceiling(what: str) -> tuple[float, str]:
    """The bound of an option named `what` (its first word), and why."""
    return CEILINGS.get(str(what).split(" ")[0], DEFAULT_CEILING)


def _check(value: float, text: str, what: str, allow_zero: bool) -> float:
    if value == math.inf and _COUNT_RE.match(str(text)) or _BYTES_RE.match(str(text)) and value == math.inf:
        value = math.nextafter(math.inf, 0)  # a number typed too large for floating point: beyond every ceiling
    if not math.isfinite(value):
        raise LlmplanError(f"{what} must be a finite number, got {_short(text)!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "greater than zero"
        raise LlmplanError(f"{what} must be {bound}, got {_short(text)!r}")
    top, why = ceiling(what)
    if value > top:
        raise LlmplanError(f"{what} {_short(text)} is beyond what llmplan plans with: at most {top:g} ({why})")
    return value


def _short(text) -> str:
    text = str(text)
    return text if len(text) <= 40 else f"{text[:12]}...{text[-6:]} ({len(text)} characters)"


def parse_count(text: str | float | int, what: str = "count", allow_zero: bool = False) -> float:
    """Parse '7B', '6.7e9', '1.4T', '300B', '175_000_000_000', '125M', '10k' into a float."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return _check(float(text), str(text), what, allow_zero)
    raw = str(text)
    if raw.strip().lower() in {"nan", "inf", "+inf", "-inf", "infinity", "-infinity"}:
        raise LlmplanError(f"{what} must be a finite number, got {raw!r}")
    m = _COUNT_RE.match(raw)
    if not m or m.group(2).lower() not in _COUNT_SUFFIX:
        raise LlmplanError(
            f"cannot read {what} {raw!r}: use a number with an optional suffix k, M, B, T "
            "(e.g. 7B, 1.4T, 6.7e9, 175_000_000_000)"
        )
    value = _float(m.group(1), raw, what) * _COUNT_SUFFIX[m.group(2).lower()]
    return _check(value, raw, what, allow_zero)


def _float(digits: str, raw: str, what: str) -> float:
    try:
        return float(digits.replace("_", ""))
    except OverflowError:  # pragma: no cover (float() of a string gives inf, not an error)
        raise LlmplanError(f"{what} must be a finite number, got {_short(raw)!r}") from None


def parse_seq(text: str | float | int, what: str = "--seq") -> int:
    """A context or sequence length: '32k' is 32,768 tokens and '1M' 1,048,576, as "32k context" means in the
    field (model cards: 4k, 8k, 32k, 128k = 131,072); a plain number is exact ('32000' is 32,000)."""
    raw = str(text)
    m = _COUNT_RE.match(raw)
    if m and m.group(2).lower() in ("k", "m"):
        scale = 1024 if m.group(2).lower() == "k" else 1024 ** 2
        value = _float(m.group(1), raw, what) * scale
        _check(value, raw, what, False)
        if abs(value - round(value)) > 1e-9 * value:
            raise LlmplanError(f"{what} must be a whole number of tokens, got {raw!r}")
        return int(round(value))
    return parse_int_count(text, what)


def parse_int_count(text: str | float | int, what: str = "count", allow_zero: bool = False) -> int:
    """A count that must be a whole number (layers, GPUs, tokens given exactly): 1.5k is 1500, 2.5 is an error."""
    value = parse_count(text, what, allow_zero)
    whole = round(value)
    if abs(value - whole) > 1e-9 * max(1.0, abs(value)):  # 1.1k is 1100.0000000000002 in floating point
        raise LlmplanError(f"{what} must be a whole number, got {text!r}")
    return int(whole)


def parse_bytes(text: str | float | int, what: str = "memory", allow_zero: bool = False) -> int:
    """Parse '80GB' (decimal) or '80GiB' (binary) into bytes. A bare number is bytes."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(_check(float(text), str(text), what, allow_zero))
    raw = str(text)
    m = _BYTES_RE.match(raw)
    unit = m.group(2).lower() if m else None
    if m and unit == "":
        unit = "b"
    if not m or unit not in _BYTE_SUFFIX:
        raise LlmplanError(
            f"cannot read {what} {raw!r}: use a number with a unit, GB/TB (decimal) or GiB/TiB (binary), e.g. 80GB"
        )
    value = _float(m.group(1), raw, what) * _BYTE_SUFFIX[unit]
    return int(_check(value, raw, what, allow_zero))


_RATE_RE = re.compile(rf"^\s*({_NUMBER})\s*(?:([a-zA-Z]+?)\s*(?:/\s*s|ps))?\s*$")
_BIT_PREFIX = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15}


def parse_bandwidth(text: str | float | int, what: str = "bandwidth") -> float:
    """Bytes per second from '450GB/s', '4.8TB/s', '50GiB/s' or, in bits as NICs are sold, '400Gb/s', '400Gbps',
    '400Gbit/s' (a lower-case b after the prefix means bits: 400 Gb/s = 50 GB/s). A bare number is bytes/s."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return _check(float(text), str(text), what, False)
    raw = str(text)
    m = _RATE_RE.match(raw)
    hint = (f"cannot read {what} {raw!r}: use a rate such as 450GB/s, 4.8TB/s (bytes, decimal), 50GiB/s (binary) "
            "or 400Gb/s, 400Gbps (bits)")
    if not m:
        raise LlmplanError(hint)
    unit = m.group(2) or ""
    bits = re.fullmatch(r"([kKmMgGtTpP]?)(?:b|bit|bits)", unit)
    if bits and unit != "B":  # 'Gb', 'Gbit': bits; 'GB', 'GiB': bytes
        scale = _BIT_PREFIX[bits.group(1).lower()] / 8
    elif unit.lower() in _BYTE_SUFFIX or unit == "":
        scale = _BYTE_SUFFIX[unit.lower() or "b"]
    else:
        raise LlmplanError(hint)
    return _check(float(m.group(1).replace("_", "")) * scale, raw, what, False)


_FLOPS_RE = re.compile(rf"^\s*({_NUMBER})\s*([kKmMgGtTpP]?)\s*(?:flop/s|flops|flop|ops)?\s*$", re.IGNORECASE)


def parse_flops_rate(text: str | float | int, what: str = "peak") -> float:
    """FLOP/s from '989T', '989 TFLOPS', '989TFLOP/s', '2.25P', '9.89e14' (also 'TOPS' for integer peaks)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return _check(float(text), str(text), what, False)
    raw = str(text)
    m = _FLOPS_RE.match(raw)
    if not m:
        raise LlmplanError(f"cannot read {what} {raw!r}: use FLOP/s with a prefix, e.g. 989T, 989TFLOPS, 2.25P, "
                           "9.89e14")
    return _check(float(m.group(1).replace("_", "")) * _COUNT_SUFFIX[m.group(2).lower()], raw, what, False)


def parse_dtype(text: str, allowed: tuple[str, ...] | None = None) -> str:
    """Normalise a dtype name ('BF16', 'float16', 'fp8') and check it is one of `allowed`."""
    aliases = {"float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16", "float": "fp32",
               "f32": "fp32", "f16": "fp16", "float8": "fp8", "e4m3": "fp8"}
    key = str(text).strip().lower()
    key = aliases.get(key, key)
    choices = allowed or tuple(DTYPE_BYTES)
    if key not in choices:
        raise LlmplanError(f"unknown dtype {text!r}: choose one of {', '.join(choices)}")
    return key


def format_count(n: float, digits: int = 3) -> str:
    """Decimal count with a suffix: 7241732096 -> '7.24 B', 125e6 -> '125 M'."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{_sig(n / scale, digits)} {suffix}"
    return _sig(n, digits)


def format_flops(x: float, digits: int = 3) -> str:
    """FLOPs in scientific notation: 3.14e23."""
    if x == 0:
        return "0"
    return f"{x:.{digits - 1}e}".replace("e+", "e")


def format_bytes(n: float, decimal: bool = False, digits: int = 3) -> str:
    """Memory with an explicit unit: GiB family by default, GB family when decimal=True."""
    units = ("B", "KB", "MB", "GB", "TB", "PB") if decimal else ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    base = 1000.0 if decimal else 1024.0
    value, i = float(n), 0
    while abs(value) >= base and i < len(units) - 1:
        value /= base
        i += 1
    return f"{_sig(value, digits)} {units[i]}"


def format_seconds(s: float) -> str:
    """A duration a person reads: '42 s', '3.5 h', '12.3 days', '2.1 years'."""
    if s < 120:
        return f"{_sig(s, 3)} s"
    if s < 7200:
        return f"{_sig(s / 60, 3)} min"
    if s < 3 * 86_400:
        return f"{_sig(s / 3600, 3)} h"
    if s < 2 * 365.25 * 86_400:
        return f"{_sig(s / 86_400, 3)} days"
    return f"{_sig(s / (365.25 * 86_400), 3)} years"


def _sig(x: float, digits: int) -> str:
    """x with `digits` significant figures, no exponent for ordinary magnitudes, no trailing zeros."""
    if x == 0 or not math.isfinite(x):
        return str(x) if x else "0"
    decimals = max(digits - 1 - int(math.floor(math.log10(abs(x)))), 0)
    text = f"{x:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
