"""Which device the bench runs on, what it is, and how fast the catalog says it can go.

CUDA covers NVIDIA and AMD ROCm builds of PyTorch (torch.version.hip is set on ROCm); then Apple MPS; else the CPU.
Facts come from pynvml where present (NVIDIA only) and from torch otherwise. A device the catalog does not know gets
no invented peak: MFU is left out unless the user gives --peak-tflops.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings
from dataclasses import dataclass, field

from llmplan.errors import LlmplanError

DEVICES = ("auto", "cuda", "mps", "cpu")
BENCH_DTYPES = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class DeviceInfo:
    kind: str                   # "cuda" | "mps" | "cpu" (ROCm GPUs are "cuda" to torch)
    backend: str                # "cuda" | "rocm" | "mps" | "cpu"
    name: str                   # as the driver reports it
    torch_device: str           # "cuda:0", "mps", "cpu"
    memory_bytes: int | None    # total device memory (system RAM for the CPU)
    dtype: str                  # compute dtype of the run: fp32, bf16 (autocast) or fp16 (autocast + loss scaling)
    peak_flops: float | None    # dense peak FLOP/s for dtype; None when unknown
    peak_source: str            # where the peak comes from, or why there is none
    catalog_name: str | None    # the matching llmplan hardware catalog entry
    compute_capability: str | None
    versions: dict = field(hash=False)  # python, torch, cuda, hip, cudnn, driver
    facts: dict = field(hash=False)     # pynvml: power limit, clocks, ...
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "backend": self.backend, "torch_device": self.torch_device,
                "memory_bytes": self.memory_bytes, "peak_flops": self.peak_flops, "peak_source": self.peak_source,
                "catalog_name": self.catalog_name, "dtype": self.dtype,
                "compute_capability": self.compute_capability, "facts": dict(self.facts), "notes": list(self.notes)}


def _nvml():
    """pynvml, initialised, or None (not installed, no NVIDIA driver, ROCm)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pynvml
        pynvml.nvmlInit()
        return pynvml
    except Exception:  # ImportError, NVMLError_LibraryNotFound, driver not loaded: no NVML facts
        return None


def nvml_handle(index: int):
    """(pynvml, handle) for torch's CUDA device `index`, matched by PCI bus id; (None, None) without NVML."""
    nv = _nvml()
    if nv is None:
        return None, None
    try:
        import torch

        props = torch.cuda.get_device_properties(index)
        bus = getattr(props, "pci_bus_id", None)
        if bus is not None:
            domain = getattr(props, "pci_domain_id", 0)
            dev = getattr(props, "pci_device_id", 0)
            return nv, nv.nvmlDeviceGetHandleByPciBusId(f"{domain:08x}:{bus:02x}:{dev:02x}.0".encode())
        return nv, nv.nvmlDeviceGetHandleByIndex(index)
    except Exception:
        try:
            return nv, nv.nvmlDeviceGetHandleByIndex(index)
        except Exception:
            return None, None


def _nvml_facts(index: int) -> dict:
    nv, h = nvml_handle(index)
    if h is None:
        return {}
    facts: dict = {}

    def put(key, fn, scale=1.0):
        try:
            value = fn()
            facts[key] = value.decode() if isinstance(value, bytes) else value * scale if scale != 1.0 else value
        except Exception:  # a query this driver or board does not support
            pass

    put("driver_version", nv.nvmlSystemGetDriverVersion)
    put("power_limit_watts", lambda: nv.nvmlDeviceGetEnforcedPowerLimit(h), 1e-3)  # reported in mW
    put("power_draw_watts", lambda: nv.nvmlDeviceGetPowerUsage(h), 1e-3)
    put("sm_clock_max_mhz", lambda: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM))
    put("memory_clock_max_mhz", lambda: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_MEM))
    put("sm_clock_mhz", lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM))
    put("temperature_c", lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))
    put("nvml_memory_total_bytes", lambda: nv.nvmlDeviceGetMemoryInfo(h).total)
    return facts


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return f"CPU: {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine() or 'unknown'}"


def _system_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _mps_bf16_ok(torch) -> bool:
    try:
        a = torch.ones(2, 2, device="mps", dtype=torch.bfloat16)
        (a @ a).cpu()
        return True
    except Exception:  # older macOS: no bf16 on MPS
        return False


def detect_device(requested: str = "auto", dtype: str | None = None, peak_tflops: float | None = None,
                  index: int = 0) -> DeviceInfo:
    """The device to bench: CUDA (NVIDIA or ROCm), else MPS, else CPU; or the one `requested`."""
    with warnings.catch_warnings():  # torch.cuda imports the deprecated pynvml shim with a FutureWarning
        warnings.simplefilter("ignore", FutureWarning)
        import torch

    from llmplan.hardware import match_gpu
    from llmplan.units import parse_dtype

    if requested not in DEVICES:
        raise LlmplanError(f"unknown device {requested!r}; accepted: {', '.join(DEVICES)}")
    has_cuda = torch.cuda.is_available()
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    kind = requested
    if requested == "auto":
        kind = "cuda" if has_cuda else "mps" if has_mps else "cpu"
    elif requested == "cuda" and not has_cuda:
        raise LlmplanError("--device cuda: no CUDA or ROCm GPU is visible to PyTorch; use --device cpu or auto")
    elif requested == "mps" and not has_mps:
        raise LlmplanError("--device mps: Apple MPS is not available here; use --device cpu or auto")
    if peak_tflops is not None and not peak_tflops > 0:
        raise LlmplanError(f"--peak-tflops must be greater than zero, got {peak_tflops}")

    versions = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
                "hip": getattr(torch.version, "hip", None)}
    notes: list[str] = []
    facts: dict = {}
    capability = None
    if kind == "cuda":
        if index >= torch.cuda.device_count():
            raise LlmplanError(f"GPU index {index} does not exist; {torch.cuda.device_count()} visible")
        props = torch.cuda.get_device_properties(index)
        name, memory, torch_device = torch.cuda.get_device_name(index), int(props.total_memory), f"cuda:{index}"
        backend = "rocm" if versions["hip"] else "cuda"
        capability = f"{props.major}.{props.minor}"
        versions["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        bf16 = torch.cuda.is_bf16_supported()
        default = "bf16" if bf16 else "fp16"  # pre-Ampere NVIDIA: fp16 with loss scaling
        if backend == "cuda":
            facts = _nvml_facts(index)
            versions["driver"] = facts.pop("driver_version", None)
    elif kind == "mps":
        name, torch_device, backend = f"Apple MPS ({platform.machine()})", "mps", "mps"
        rec = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)
        memory = int(rec()) if rec else _system_memory()
        bf16 = _mps_bf16_ok(torch)
        default = "bf16" if bf16 else "fp32"
    else:
        name, memory, torch_device, backend = _cpu_name(), _system_memory(), "cpu", "cpu"
        bf16, default = True, "fp32"
        notes.append("CPU figures describe this CPU only, not any GPU; they calibrate nothing for a GPU plan")

    chosen = parse_dtype(dtype, BENCH_DTYPES) if dtype else default
    if chosen == "bf16" and not bf16:
        raise LlmplanError(f"{name} does not support bf16; use --dtype fp16 or fp32")

    gpu = match_gpu(name) if kind == "cuda" else None
    if peak_tflops is not None:
        peak, source = peak_tflops * 1e12, "given with --peak-tflops"
    elif gpu is not None and gpu.peak(chosen) is not None:
        peak, source = gpu.peak(chosen), f"catalog {gpu.name} dense {chosen} peak ({gpu.source})"
    else:
        peak = None
        what = "the CPU" if kind == "cpu" else "Apple MPS" if kind == "mps" else f"{name} ({chosen})"
        source = f"no catalog peak for {what}; MFU is not reported (give --peak-tflops to set one)"
        notes.append(source)
    return DeviceInfo(kind=kind, backend=backend, name=name, torch_device=torch_device, memory_bytes=memory,
                      dtype=chosen, peak_flops=peak, peak_source=source, catalog_name=gpu.name if gpu else None,
                      compute_capability=capability, versions=versions, facts=facts, notes=tuple(notes))


class EnergyMeter:
    """Joules spent by a CUDA device between start() and stop(), from NVML's energy counter (Volta and later);
    None where NVML or the counter is missing."""

    def __init__(self, device: DeviceInfo):
        self.nv = self.handle = None
        self.start_mj = None
        if device.backend == "cuda":
            self.nv, self.handle = nvml_handle(int(device.torch_device.split(":")[1]))

    def _read(self):
        if self.handle is None:
            return None
        try:
            return self.nv.nvmlDeviceGetTotalEnergyConsumption(self.handle)  # millijoules since driver load
        except Exception:
            return None

    def start(self) -> None:
        self.start_mj = self._read()

    def stop(self) -> float | None:
        end = self._read()
        if end is None or self.start_mj is None:
            return None
        return (end - self.start_mj) / 1000.0

    def power_watts(self) -> float | None:
        if self.handle is None:
            return None
        try:
            return self.nv.nvmlDeviceGetPowerUsage(self.handle) / 1000.0
        except Exception:
            return None


def cuda_context_bytes(device: DeviceInfo) -> int | None:
    """Device memory in use that PyTorch's allocator does not hold: the CUDA context, kernels, cuBLAS workspace,
    and any other process on the GPU (total - free - reserved, from cudaMemGetInfo)."""
    if device.kind != "cuda":
        return None
    import torch

    idx = int(device.torch_device.split(":")[1])
    free, total = torch.cuda.mem_get_info(idx)
    return max(int(total - free - torch.cuda.memory_reserved(idx)), 0)
