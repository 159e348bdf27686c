"""The accelerator catalog against vendor datasheets: dense peaks only, the figures MFU and time estimates rest on."""

import pytest

from llmplan.hardware import get_gpu, load_gpus

# 2:4-sparse figures printed on the datasheets (TFLOP/s or TOPS). A dense peak must never equal one of them.
SPARSE_DATASHEET = {
    "A100-40GB": {"bf16": 624, "fp16": 624, "tf32": 312, "int8": 1248},
    "A100-80GB": {"bf16": 624, "fp16": 624, "tf32": 312, "int8": 1248},
    "A100-80GB-PCIe": {"bf16": 624, "fp16": 624, "tf32": 312, "int8": 1248},
    "H100-SXM": {"bf16": 1979, "fp16": 1979, "tf32": 989, "fp8": 3958, "int8": 3958},
    "H100-PCIe": {"bf16": 1513, "fp16": 1513, "tf32": 756, "fp8": 3026, "int8": 3026},
    "H100-NVL": {"bf16": 1671, "fp16": 1671, "tf32": 835, "fp8": 3341},
    "H200": {"bf16": 1979, "fp16": 1979, "tf32": 989, "fp8": 3958, "int8": 3958},
    "L4": {"bf16": 242, "fp16": 242, "tf32": 120, "fp8": 485, "int8": 485},
    "A10": {"bf16": 250, "fp16": 250, "tf32": 125, "int8": 500},
    "A10G": {"bf16": 140, "fp16": 140, "int8": 280},
    "RTX-3090": {"bf16": 142, "fp16": 142},
    "RTX-4090": {"bf16": 330.4, "fp16": 330.4, "fp8": 660.6, "int8": 1321.2},
    "MI300X": {"bf16": 2614.9, "fp16": 2614.9, "fp8": 5229.8},
    "MI325X": {"bf16": 2614.9, "fp8": 5229.8},
    "H800": {"bf16": 1979, "fp8": 3958},
    # HGX B300 and B200 datasheets, per GPU (fp4 144 PFLOPS sparse over 8 GPUs). Blackwell Ultra's dense fp4 is
    # 105/144 of its sparse figure, not half, so B300 and GB300 fp4 are checked against the dense figure instead.
    "B200": {"bf16": 4500, "fp16": 4500, "tf32": 2200, "fp8": 9000, "int8": 9000, "fp4": 18000},
    "B300": {"bf16": 4500, "fp8": 9000},
    # GB200 / GB300 NVL72 datasheets, per GPU: rack figures with sparsity over 72 GPUs
    "GB200-NVL72": {"bf16": 5000, "fp8": 10000, "fp4": 20000},
    "GB300-NVL72": {"bf16": 5000, "fp8": 10000},
    "MI355X": {"bf16": 5033.2, "fp8": 10066.4},
    "Trainium2": {"bf16": 2563, "fp8": 2563},
    "RTX-5090": {"bf16": 838, "fp4": 3352},
}


@pytest.mark.parametrize("name", sorted(SPARSE_DATASHEET))
def test_no_peak_is_a_sparse_figure(name):
    gpu = get_gpu(name)
    for dtype, sparse in SPARSE_DATASHEET[name].items():
        dense = gpu.peak_flops[dtype] / 1e12
        assert dense < 0.6 * sparse, f"{name} {dtype}: {dense} TFLOP/s looks like the sparse figure {sparse}"


# Dense peaks from the datasheets / whitepapers (TFLOP/s), the numbers the reference material quotes.
DENSE = [
    ("V100-16GB", "fp16", 125), ("A100-80GB", "bf16", 312), ("A100-40GB", "bf16", 312),
    ("H100-SXM", "bf16", 989.4), ("H100-SXM", "fp8", 1978.9), ("H100-SXM", "tf32", 494.7),
    ("H200", "bf16", 989.4), ("MI300X", "bf16", 1307.4), ("B200", "bf16", 2250), ("L4", "bf16", 121),
    ("A10", "bf16", 125), ("A10G", "bf16", 70), ("TPU-v4", "bf16", 275), ("TPU-v5e", "bf16", 197),
    ("TPU-v5p", "bf16", 459),
    # new devices, each the dense figure its source states (or its sparse figure halved, as stated there)
    ("H800", "bf16", 989.4), ("H20", "bf16", 148), ("H20", "fp8", 296), ("GH200-96GB", "fp8", 1978.9),
    ("B200", "fp4", 9000),  # HGX B200: 72 PFLOPS dense fp4 over 8 GPUs
    ("B300", "fp4", 13125),  # HGX B300: 105 PFLOPS dense fp4 over 8 GPUs
    ("GB200-NVL72", "bf16", 2500), ("GB200-NVL72", "fp4", 10000),  # 360 and 1,440 PFLOPS sparse over 72
    ("GB300-NVL72", "fp4", 15000),  # 1,080 PFLOPS dense fp4 over 72
    ("MI325X", "fp8", 2614.9), ("MI355X", "fp8", 5033.2), ("MI355X", "fp4", 10066.3),
    ("Gaudi-3", "bf16", 1835), ("Gaudi-3", "fp8", 1835), ("TPU-v6e", "bf16", 918), ("TPU-v7", "bf16", 2307),
    ("TPU-v7", "fp8", 4614), ("Trainium2", "bf16", 667), ("Trainium2", "fp8", 1299), ("RTX-5090", "bf16", 209.5),
    ("RTX-5090", "fp4", 1676),
]


@pytest.mark.parametrize("name,dtype,tflops", DENSE)
def test_dense_peaks_match_datasheets(name, dtype, tflops):
    assert get_gpu(name).peak(dtype) == pytest.approx(tflops * 1e12, rel=1e-9)


def test_v100_has_no_bf16():
    assert get_gpu("v100").peak("bf16") is None


def test_h200_memory_and_bandwidth():
    # NVIDIA H200 datasheet: 141 GB HBM3e at 4.8 TB/s; the same compute as the H100 SXM.
    h200, h100 = get_gpu("h200"), get_gpu("h100")
    assert h200.bandwidth_bytes_per_s == 4.8e12
    assert h200.memory_bytes == 141 * 2**30
    assert h200.peak_flops == h100.peak_flops


def test_a10g_is_not_the_a10():
    # AWS's A10G has about half the A10's tensor throughput, the same memory and bandwidth.
    a10, a10g = get_gpu("a10"), get_gpu("a10g")
    assert a10g.peak("bf16") < 0.6 * a10.peak("bf16")
    assert a10g.bandwidth_bytes_per_s == a10.bandwidth_bytes_per_s == 600e9


def test_nvidia_tensor_ratios_hold():
    # On Ampere/Hopper/Blackwell datacenter parts tf32 runs at half the bf16 rate and fp8 at twice it.
    for name in ("A100-80GB", "H100-SXM", "H100-PCIe", "H200", "L4"):
        g = get_gpu(name)
        assert g.peak("tf32") == pytest.approx(g.peak("bf16") / 2, rel=0.01), name
        if "fp8" in g.peak_flops:
            assert g.peak("fp8") == pytest.approx(2 * g.peak("bf16"), rel=0.01), name


def test_every_entry_is_complete():
    for g in load_gpus():
        assert g.source and g.memory_bytes > 0 and g.bandwidth_bytes_per_s > 0
        assert g.peak_flops and all(v > 0 for v in g.peak_flops.values())
        assert g.power_watts is None or g.power_watts > 0
