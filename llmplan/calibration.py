"""Calibration profiles: what `llmplan bench` measured on a device, saved as JSON and read back by the planner.

Pure JSON and arithmetic (no torch, numpy or scipy), so `compute --profile` and `memory --profile` stay fast.

A profile holds the device's identity, every measured run, the throughput fit and the measured memory overhead:

    {"schema_version": 1, "kind": "llmplan.profile", "created": ISO date, "device": {name, kind, memory_bytes,
     peak_flops, ...}, "versions": {...}, "runs": [{params, batch, seq, step_seconds, tokens_per_second,
     achieved_flops, mfu, peak_bytes_measured, peak_bytes_predicted, ...}], "fit": {...} | null,
     "overhead_bytes": int | null, "overhead_method": str,
     "gemm_curve": [{m, n, k, dtype, flops_per_s, ...}], "hbm_bytes_per_s": float, "memory_bandwidth": {...},
     "attention": [{kind "prefill"|"decode", seq, batch, heads, head_dim, dtype, flops_per_s, bytes_per_s, ...}],
     "collectives": [{op, ranks, bytes, bus_bytes_per_s, backend, ...}], "calibration": {"kernels": {...}, ...}}

The last group (`llmplan bench --calibrate`, optional, all in base units) calibrates the step-time and serving
models (llmplan/hardware/efficiency.py reads it); a bench that measures one part keeps the others already saved
for the same device (merge_profile).

Profiles are saved to <data dir>/profiles/<device>.json, the data dir being platformdirs.user_data_dir("llmplan")
or $LLMPLAN_DATA_DIR when set.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from llmplan.errors import LlmplanError

PROFILE_KIND = "llmplan.profile"
PROFILE_SCHEMA = 1
FIT_FORMS = ("power", "saturating")
# What `llmplan bench --calibrate` measures; kept when another bench of the same device rewrites the profile.
CALIBRATION_KEYS = ("gemm_curve", "hbm_bytes_per_s", "memory_bandwidth", "attention", "collectives", "calibration")
ATTENTION_KINDS = ("prefill", "decode")
COLLECTIVE_OPS = ("all_reduce", "all_gather", "reduce_scatter")


def data_dir() -> Path:
    """Where llmplan keeps user data: $LLMPLAN_DATA_DIR, else the platform's user data directory."""
    env = os.environ.get("LLMPLAN_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("llmplan"))


def profiles_dir() -> Path:
    return data_dir() / "profiles"


def device_key(name: str) -> str:
    """File-name key of a device: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"


def default_profile_path(device_name: str) -> Path:
    return profiles_dir() / f"{device_key(device_name)}.json"


def evaluate_fit(fit: dict, params: float) -> float:
    """The fitted achieved FLOP/s at `params` parameters.

    power:      F(N) = a * N^b, held at its value at the largest measured size beyond it (no extrapolated growth)
    saturating: F(N) = f_max / (1 + (n_half / N)^c), which levels off at f_max by construction
    Below the smallest measured size both are held at their value there.
    """
    lo, hi = fit["params_range"]
    c = fit["coefficients"]
    if fit["form"] == "power":
        n = min(max(params, lo), hi)
        return c["a"] * n ** c["b"]
    if fit["form"] == "saturating":
        n = max(params, lo)
        t = c["c"] * math.log(c["n_half"] / n)  # (n_half / N)^c in logs: a negative c cannot overflow far out
        return c["f_max"] / (1.0 + math.exp(t)) if t < 700 else 0.0
    raise LlmplanError(f"unknown fit form {fit['form']!r}; accepted: {', '.join(FIT_FORMS)}")


@dataclass(frozen=True)
class Profile:
    path: str
    device_name: str
    device: dict = field(hash=False)
    runs: tuple = field(hash=False)
    fit: dict | None = field(hash=False)
    overhead_bytes: int | None
    overhead_method: str
    created: str
    data: dict = field(hash=False, repr=False)

    @property
    def peak_flops(self) -> float | None:
        return self.device.get("peak_flops")

    @property
    def gemm_curve(self) -> tuple[dict, ...]:
        return tuple(self.data.get("gemm_curve") or ())

    @property
    def hbm_bytes_per_s(self) -> float | None:
        return self.data.get("hbm_bytes_per_s")

    @property
    def attention(self) -> tuple[dict, ...]:
        return tuple(self.data.get("attention") or ())

    @property
    def collectives(self) -> tuple[dict, ...]:
        return tuple(self.data.get("collectives") or ())

    def achieved_flops_at(self, params: float) -> float | None:
        """Model FLOP/s this device reached training a model of `params` parameters: the throughput fit there, or
        the nearest measured run (in log size) when no fit was made; None when no run was measured."""
        if self.fit:
            return evaluate_fit(self.fit, float(params))
        ok = [r for r in self.runs if r.get("status", "ok") == "ok" and r.get("achieved_flops")]
        if not ok:
            return None
        nearest = min(ok, key=lambda r: abs(math.log(max(r["params"], 1) / max(params, 1))))
        return float(nearest["achieved_flops"])

    def mfu_at(self, params: float) -> float | None:
        """Model FLOPs utilisation this device reached for a model of `params` parameters: the fit divided by the
        dense peak, or the nearest measured run when no fit was made. None when the device has no known peak."""
        peak = self.peak_flops
        if not peak:
            return None
        if self.fit:
            return min(max(evaluate_fit(self.fit, float(params)) / peak, 0.0), 1.0)
        ok = [r for r in self.runs if r.get("status", "ok") == "ok" and r.get("mfu")]
        if not ok:
            return None
        nearest = min(ok, key=lambda r: abs(math.log(max(r["params"], 1) / max(params, 1))))
        mfu = float(nearest["mfu"])
        if mfu > 1.0:  # more than the peak: the peak the run was given is wrong, not the device
            raise LlmplanError(f"the profile {self.path} measured an MFU of {mfu:.3g} (over 1) at "
                               f"{nearest['params']:.3g} parameters: its peak FLOP/s is too low; re-run `llmplan "
                               "bench` with the device's dense peak (--peak-tflops)")
        return mfu


def _bad(path, why: str) -> LlmplanError:
    return LlmplanError(f"{path} is not a usable llmplan calibration profile: {why}; "
                        "run `llmplan bench` to make one, or give another --profile PATH")


def profile_from_dict(data: object, path: str) -> Profile:
    """Validate parsed JSON as a profile (corrupt or foreign content -> LlmplanError)."""
    if not isinstance(data, dict):
        raise _bad(path, "not a JSON object")
    if data.get("kind") != PROFILE_KIND:
        raise _bad(path, f"kind is {data.get('kind')!r}, expected {PROFILE_KIND!r}")
    version = data.get("schema_version")
    if version != PROFILE_SCHEMA:
        raise _bad(path, f"schema_version {version!r}; this llmplan reads version {PROFILE_SCHEMA}")
    device = data.get("device")
    if not isinstance(device, dict) or not isinstance(device.get("name"), str):
        raise _bad(path, "no device name")
    peak = device.get("peak_flops")
    if peak is not None and not (isinstance(peak, (int, float)) and peak > 0):
        raise _bad(path, f"device peak_flops {peak!r} is not a positive number")
    runs = data.get("runs")
    if not isinstance(runs, list) or not all(isinstance(r, dict) and "params" in r for r in runs):
        raise _bad(path, "runs must be a list of measurements with params")
    for r in runs:
        for key in ("params", "mfu", "achieved_flops", "step_seconds"):
            value = r.get(key)
            if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                          and math.isfinite(value) and value >= 0):
                raise _bad(path, f"a run's {key} is {value!r}, not a finite number of at least zero")
    fit = data.get("fit")
    if fit is not None:
        try:
            if fit["form"] not in FIT_FORMS:
                raise ValueError(fit["form"])
            lo, hi = (float(x) for x in fit["params_range"])
            evaluate_fit(fit, lo)
            evaluate_fit(fit, hi * 10)
        except (KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
            raise _bad(path, f"its fit is malformed ({type(exc).__name__}: {exc})") from None
    _check_calibration(data, path)
    overhead = data.get("overhead_bytes")
    if overhead is not None and not (isinstance(overhead, int) and overhead >= 0):
        raise _bad(path, f"overhead_bytes {overhead!r} is not a whole number of bytes")
    return Profile(path=str(path), device_name=device["name"], device=device, runs=tuple(runs), fit=fit,
                   overhead_bytes=overhead, overhead_method=str(data.get("overhead_method", "")),
                   created=str(data.get("created", "")), data=data)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_calibration(data: dict, path) -> None:
    """The kernel and collective measurements, where present: lists of records with positive, finite figures."""
    need = {"gemm_curve": (("m", "n", "k"), ("flops_per_s",), ("dtype",)),
            "attention": (("seq", "batch", "heads", "head_dim"), ("flops_per_s", "bytes_per_s"), ("kind", "dtype")),
            "collectives": (("ranks", "bytes"), ("bus_bytes_per_s",), ("op", "backend"))}
    for key, (wholes, numbers, texts) in need.items():
        records = data.get(key)
        if records is None:
            continue
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise _bad(path, f"{key} must be a list of measurements")
        for r in records:
            for name in wholes:
                if not _whole(r.get(name)):
                    raise _bad(path, f"a {key} record's {name} is {r.get(name)!r}, not a whole number above zero")
            for name in numbers:
                if not _number(r.get(name)):
                    raise _bad(path, f"a {key} record's {name} is {r.get(name)!r}, not a finite number above zero")
            for name in texts:
                if not isinstance(r.get(name), str):
                    raise _bad(path, f"a {key} record has no {name}")
        if key == "attention" and any(r["kind"] not in ATTENTION_KINDS for r in records):
            raise _bad(path, f"an attention record's kind is not one of {', '.join(ATTENTION_KINDS)}")
        if key == "collectives" and any(r["op"] not in COLLECTIVE_OPS or r["ranks"] < 2 for r in records):
            raise _bad(path, f"a collective's op is not one of {', '.join(COLLECTIVE_OPS)}, or it has < 2 ranks")
    hbm = data.get("hbm_bytes_per_s")
    if hbm is not None and not _number(hbm):
        raise _bad(path, f"hbm_bytes_per_s {hbm!r} is not a finite number above zero")


def merge_profile(old: dict | None, new: dict) -> dict:
    """The profile to write when `new` replaces `old` for the same device: new's keys, plus what old measured that
    new did not (a ladder keeps the kernel calibration; a calibration keeps the ladder's runs, fit and overhead).
    The per-part notes under "calibration" are merged; the device's facts are new's, old's where new has none
    (a peak given with --peak-tflops to one bench is kept by the next)."""
    if not old:
        return new
    merged = {**old, **new}
    if "device" in old and new.get("device", {}).get("name") == old["device"].get("name"):
        merged["device"] = {**old["device"], **{k: v for k, v in new["device"].items() if v is not None}}
    merged["calibration"] = {**(old.get("calibration") or {}), **(new.get("calibration") or {})}
    return merged


def profile_at(path: str | Path, device_name: str) -> dict | None:
    """The saved profile's data at `path` when it is a readable profile of the same device, else None (nothing
    there, damaged, or another device's: it is then replaced, not merged)."""
    p = Path(path).expanduser()
    if not p.is_file():
        return None
    try:
        prof = read_profile(p)
    except LlmplanError:
        return None
    return prof.data if device_key(prof.device_name) == device_key(device_name) else None


def read_profile(path: str | Path) -> Profile:
    from llmplan.files import check_path_text, read_json

    check_path_text(path, "--profile")
    p = Path(path).expanduser()
    if p.is_dir():
        raise LlmplanError(f"--profile {p} is a folder; give the profile's .json file (or auto)")
    if not p.exists():
        raise LlmplanError(f"no calibration profile at {p}; run `llmplan bench --out {p}` or give another path")
    data = read_json(p, "calibration profile")  # a regular file of bounded size and nesting
    return profile_from_dict(data, str(p))


def _same_device(a: str, b: str) -> bool:
    from llmplan.hardware import match_gpu

    ga, gb = match_gpu(a), match_gpu(b)
    if ga is not None and gb is not None:
        return ga.name == gb.name
    return device_key(a) == device_key(b)


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:  # a dangling link or a link loop: read last, and refused when read
        return 0.0


def load_profile(where: str, gpu: str | None = None, prefer=None) -> Profile:
    """where: "auto" (the profile saved for `gpu` in the data dir; without `gpu`, the only or newest one) or a path.

    With `gpu`, a profile measured on another device is refused: its figures do not describe that GPU. `prefer`
    (a test on a profile's data) picks, under "auto", the newest of that device's profiles that passes it: `bench
    --model` saves a profile of its own beside the device's, and a newer one of those must not hide the calibration
    curves the step-time model needs."""
    if where != "auto":
        profile = read_profile(where)
    else:
        from llmplan.files import check_path_text

        folder = profiles_dir()
        check_path_text(folder, "the data folder ($LLMPLAN_DATA_DIR)")
        found = sorted(folder.glob("*.json"), key=_mtime, reverse=True) if folder.is_dir() else []
        if gpu is not None:
            matches = []
            for p in found:
                try:
                    prof = read_profile(p)
                except LlmplanError:
                    continue  # a damaged file for another device should not hide the right one
                if _same_device(prof.device_name, gpu):
                    matches.append(prof)
            if not matches:
                raise LlmplanError(f"no calibration profile for {gpu} in {folder}; run `llmplan bench` on that GPU "
                                   "or give --profile PATH")
            preferred = [m for m in matches if prefer is not None and prefer(m.data)]
            return (preferred or matches)[0]
        if not found:
            raise LlmplanError(f"no calibration profile in {folder}; run `llmplan bench` first or give --profile PATH")
        profile = None
        for p in found:  # the newest calibration profile; other files there (distributed reports) are passed over
            try:
                profile = read_profile(p)
                break
            except LlmplanError:
                continue
        if profile is None:
            read_profile(found[0])  # none is usable: say what is wrong with the newest
    if gpu is not None and not _same_device(profile.device_name, gpu):
        raise LlmplanError(f"the profile {profile.path} was measured on {profile.device_name}, not {gpu}; "
                           "its figures do not describe that GPU (run `llmplan bench` there)")
    return profile


def save_profile(data: dict, path: str | Path | None = None) -> Path:
    """Validate and write `data` atomically (temp file + os.replace); default path: the device's profile file."""
    from llmplan.report.files import write_json
    from llmplan.report.output import jsonable

    data = jsonable(data)  # non-finite floats become null, tuples lists
    target = Path(path).expanduser() if path else default_profile_path(data["device"]["name"])
    profile_from_dict(data, str(target))  # never write what could not be read back
    return write_json(target, data)
