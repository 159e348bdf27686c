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


def test_each_format_reproduces_its_published_best_rate():
    # AIConfigurator's measured GEMM tables (TensorRT-LLM 1.3.0rc20), best rate of each format; the cast is apart
    for name, dtype, rate, shape in (("h100", "fp8", 1507e12, (1025, 65536, 12288)),
                                     ("b200", "bf16", 1716e12, (3072, 51200, 3584)),
                                     ("b200", "fp8", 3151e12, (4096, 65536, 6144)),
                                     ("b200", "fp4", 4547e12, (4352, 51200, 16384))):
        eff = efficiency_for(get_gpu(name))
        assert 2.0 * shape[0] * shape[1] * shape[2] / eff.gemm_seconds(*shape, dtype, quantize=False) == \
            pytest.approx(rate, rel=1e-6)
    # a sibling takes the same fraction of its own peak: GB200's bf16 peak is 2,500 against B200's 2,250
    gb200 = efficiency_for(get_gpu("gb200"))
    shape = (3072, 51200, 3584)
    assert 2.0 * shape[0] * shape[1] * shape[2] / gb200.gemm_seconds(*shape, "bf16") == \
        pytest.approx(1716e12 * 2500 / 2250, rel=1e-6)


def test_fp8_gemm_pays_its_activation_cast(h100):
    m, n, k = 4096, 8192, 8192
    cast = h100.gemm_seconds(m, n, k, "fp8") - h100.gemm_seconds(m, n, k, "fp8", quantize=False)
    # amax pass (read 2 bytes) + cast (read 2, write 1) of the m x k input, two launches
    assert cast == pytest.approx(m * k * 5 / h100.hbm_bytes_per_s + 2 * 4e-6)
    assert h100.gemm_seconds(m, n, k, "bf16") == h100.gemm_seconds(m, n, k, "bf16", quantize=False)
    # at decode sizes the cast's launches make a small fp8 GEMM slower than bf16, although it reads half the bytes
    # (AIConfigurator measured 18.5 us against 16.6 at 1 x 4096 x 4096); a large one is nearly twice as fast
    assert 1.0 < h100.gemm_seconds(1, 4096, 4096, "fp8") / h100.gemm_seconds(1, 4096, 4096, "bf16") < 1.3
    assert 0.5 < h100.gemm_seconds(1, 65536, 8192, "fp8") / h100.gemm_seconds(1, 65536, 8192, "bf16") < 0.6


def test_fp4_operands_are_half_a_byte_plus_scales():
    b200 = efficiency_for(get_gpu("b200"))
    m, n, k = 1, 16384, 16384  # memory-bound: the weight read sets the time
    weights = n * k * (0.5 + 1 / 16) / b200.hbm_bytes_per_s
    assert b200.gemm_seconds(m, n, k, "fp4", quantize=False) == pytest.approx(weights, rel=0.02, abs=5e-6)


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
