"""Device detection: the catalog peak for a known GPU and dtype, no invented peak otherwise, dtype defaults.

CUDA is simulated (this suite runs without a GPU): torch.cuda's queries are replaced by a fake device."""

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from llmplan.bench import device as device_mod  # noqa: E402
from llmplan.bench.device import detect_device  # noqa: E402
from llmplan.errors import LlmplanError  # noqa: E402


@pytest.fixture
def fake_gpu(monkeypatch):
    def install(name: str, bf16: bool = True, hip: str | None = None, memory: int = 80 * 2**30, cc=(9, 0)):
        props = SimpleNamespace(total_memory=memory, major=cc[0], minor=cc[1])
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: name)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(torch.version, "hip", hip, raising=False)
        facts = {"driver_version": "550.54", "power_limit_watts": 700.0}
        monkeypatch.setattr(device_mod, "_nvml_facts", lambda i: dict(facts))
    return install


def test_h100_gets_its_dense_bf16_peak_and_bf16_by_default(fake_gpu):
    fake_gpu("NVIDIA H100 80GB HBM3")
    d = detect_device()
    assert (d.kind, d.backend, d.torch_device, d.dtype) == ("cuda", "cuda", "cuda:0", "bf16")
    assert d.catalog_name == "H100-SXM" and d.peak_flops == pytest.approx(989.4e12)
    assert d.versions["driver"] == "550.54" and d.facts["power_limit_watts"] == 700.0
    assert d.compute_capability == "9.0"
    assert detect_device(dtype="fp32").peak_flops == pytest.approx(67e12)  # fp32 without TF32: the CUDA-core peak


def test_pre_ampere_gpu_defaults_to_fp16_and_refuses_bf16(fake_gpu):
    fake_gpu("Tesla V100-SXM2-16GB", bf16=False, memory=16 * 2**30, cc=(7, 0))
    d = detect_device()
    assert d.dtype == "fp16" and d.peak_flops == pytest.approx(125e12)
    with pytest.raises(LlmplanError, match="does not support bf16"):
        detect_device(dtype="bf16")


def test_unknown_gpu_gets_no_invented_peak_unless_given(fake_gpu):
    fake_gpu("NVIDIA Imaginary X9")
    d = detect_device()
    assert d.peak_flops is None and d.catalog_name is None
    assert any("no catalog peak" in n for n in d.notes)
    given = detect_device(peak_tflops=123.0)
    assert given.peak_flops == 123e12 and given.peak_source == "given with --peak-tflops"


def test_rocm_builds_are_cuda_devices_with_a_rocm_backend(fake_gpu):
    fake_gpu("AMD Instinct MI250X", hip="6.0.32830")
    d = detect_device()
    assert d.kind == "cuda" and d.backend == "rocm" and d.peak_flops == pytest.approx(383e12)
    assert d.versions["hip"] == "6.0.32830"


def test_cpu_has_fp32_by_default_and_says_cpu_figures_are_not_gpu_figures():
    d = detect_device("cpu")
    assert d.kind == "cpu" and d.dtype == "fp32" and d.peak_flops is None
    assert d.memory_bytes and d.memory_bytes > 0
    assert any("CPU figures" in n for n in d.notes)
    assert detect_device("cpu", dtype="bfloat16").dtype == "bf16"


def test_energy_meter_is_silent_without_nvml():
    meter = device_mod.EnergyMeter(detect_device("cpu"))
    meter.start()
    assert meter.stop() is None and meter.power_watts() is None
