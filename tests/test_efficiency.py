"""Device efficiencies: the default GEMM curve's physics, and a bench profile's measured points replacing it."""

import pytest

from llmplan.hardware import get_gpu
from llmplan.hardware.efficiency import efficiency_for


@pytest.fixture(scope="module")
def h100():
    return efficiency_for(get_gpu("h100"))


def test_small_gemms_are_slower_than_large(h100):
    big = h100.gemm(8192, 8192, 8192, "bf16")
    assert h100.gemm(1024, 1024, 1024, "bf16") < 0.5 * big
    assert h100.gemm(256, 256, 256, "bf16") < h100.gemm(1024, 1024, 1024, "bf16")
    assert big <= h100.peak("bf16") * h100.family.gemm_fraction


def test_skinny_gemm_is_bound_by_hbm(h100):
    # decode-like M=8: bytes dominate; time is at least the weight read over the achievable bandwidth
    m, n, k = 8, 8192, 8192
    t = h100.gemm_seconds(m, n, k, "bf16")
    assert t >= 2 * n * k / h100.hbm_bytes_per_s
    assert h100.gemm(m, n, k, "bf16") < 0.05 * h100.peak("bf16")


def test_the_published_best_shape_reproduces_its_mamf():
    # Bekman, ml-engineering "Maximum Achievable Matmul FLOPS comparison table": A100 SXM 267.9 TFLOP/s bf16 at
    # 6912x16384x2048, H100 SXM 792.1 at 6144x17920x2816
    for name, rate, shape in (("a100", 267.9e12, (6912, 16384, 2048)), ("h100", 792.1e12, (6144, 17920, 2816)),
                              ("mi300x", 781.9e12, (4096, 10240, 4864))):
        assert efficiency_for(get_gpu(name)).gemm(*shape, "bf16") == pytest.approx(rate, rel=1e-6)


def test_defaults_name_their_source(h100):
    assert h100.source.startswith("default:")
    assert 0 < h100.hbm_bytes_per_s < get_gpu("h100").bandwidth_bytes_per_s
    assert h100.collective_bus_bytes_per_s("scaleup") > h100.collective_bus_bytes_per_s("scaleout")


def test_measured_points_replace_the_defaults():
    gpu = get_gpu("a100")
    curve = [{"m": s, "n": s, "k": s, "dtype": "bf16", "flops_per_s": f}
             for s, f in ((512, 20e12), (2048, 150e12), (8192, 250e12))]
    profile = {"gemm_curve": curve, "hbm_bytes_per_s": 1.5e12,
               "attention": [{"kind": "prefill", "seq": 1024, "batch": 1, "heads": 16, "head_dim": 128,
                              "dtype": "bf16", "flops_per_s": 100e12, "bytes_per_s": 1e12}],
               "collectives": [{"op": "all_reduce", "ranks": 8, "bytes": 1 << 28, "bus_bytes_per_s": 200e9}]}
    eff = efficiency_for(gpu, profile)
    for p in curve:
        assert eff.gemm(p["m"], p["n"], p["k"], "bf16") == pytest.approx(p["flops_per_s"], rel=1e-9)
    mid = eff.gemm(4096, 4096, 4096, "bf16")
    assert 150e12 < mid < 250e12
    assert eff.hbm_bytes_per_s == 1.5e12
    assert eff.attention_flops_per_s("bf16", 1024) == pytest.approx(100e12)
    assert eff.collective_bus_bytes_per_s("scaleup", 1 << 28) == pytest.approx(200e9)
    assert eff.source.startswith("measured:")


def test_unknown_device_gets_generic_defaults():
    class Dev:
        name = "Custom-X"
        peak_flops = {"bf16": 100e12}
        bandwidth_bytes_per_s = 1e12

    eff = efficiency_for(Dev())
    assert eff.family.name == "generic"
    assert 0 < eff.gemm(4096, 4096, 4096, "bf16") < 100e12
