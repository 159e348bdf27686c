"""Loose GPU names as drivers and people write them: the right entry, or none (never a wrong guess)."""

import pytest

from llmplan.hardware import get_gpu, load_gpus, match_gpu

GiB = 2**30


@pytest.mark.parametrize("text,name", [
    ("h100", "H100-SXM"), ("H100-80GB", "H100-SXM"), ("NVIDIA H100 80GB HBM3", "H100-SXM"),
    ("NVIDIA H200", "H200"), ("NVIDIA H200 NVL", "H200-NVL"), ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
    ("NVIDIA A100 80GB PCIe", "A100-80GB-PCIe"), ("Tesla V100-SXM2-16GB", "V100-16GB"),
    # a memory size in the device string decides between the sizes of one family
    ("Tesla V100-PCIE-32GB", "V100-32GB"), ("NVIDIA A100-PCIE-40GB", "A100-40GB"),
    ("NVIDIA GeForce RTX 4090", "RTX-4090"), ("NVIDIA RTX A6000", "RTX-A6000"), ("NVIDIA L40S", "L40S"),
    ("NVIDIA A40", "A40"), ("NVIDIA A10G", "A10G"), ("AMD Instinct MI300X", "MI300X"),
])
def test_loose_names(text, name):
    assert get_gpu(text).name == name


def test_a_longer_name_is_not_taken_for_a_shorter_one():
    # GH200 is not an H200 (96 or 144 GB, another power envelope). nvidia-smi names the 96 GB HBM3 part after the
    # Grace CPU's 480 GB of LPDDR5X; it is its own entry now, never the H200.
    assert match_gpu("NVIDIA GH200 480GB").name == "GH200-96GB"
    assert match_gpu("NVIDIA GH200 144G HBM3e").name == "GH200-144GB"
    assert match_gpu("NVIDIA H200").name == "H200" and match_gpu("gh200").name != "H200"


@pytest.mark.parametrize("text,name", [
    ("h800", "H800"), ("NVIDIA H20", "H20"), ("b300", "B300"), ("gb200", "GB200-NVL72"), ("GB300", "GB300-NVL72"),
    ("AMD Instinct MI325X", "MI325X"), ("mi355x", "MI355X"), ("Intel Gaudi 3", "Gaudi-3"), ("gaudi3", "Gaudi-3"),
    ("v6e", "TPU-v6e"), ("trillium", "TPU-v6e"), ("tpu7x", "TPU-v7"), ("ironwood", "TPU-v7"), ("trn2", "Trainium2"),
    ("NVIDIA GeForce RTX 5090", "RTX-5090"),
])
def test_new_devices_by_the_names_people_use(text, name):
    assert get_gpu(text).name == name


def test_48gb_cards_from_their_datasheets():
    # RTX A6000 (GA102 whitepaper), A40 and L40S datasheets: dense 16-bit tensor rates, half the sparse figures.
    for name, bf16, sparse in (("RTX-A6000", 154.8, 309.7), ("A40", 149.7, 299.4), ("L40S", 362.05, 733)):
        g = get_gpu(name)
        assert g.memory_bytes == 48 * GiB
        assert g.peak("bf16") == pytest.approx(bf16 * 1e12) and g.peak("bf16") < 0.6 * sparse * 1e12


def test_listing_shows_every_name_whole(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    r = cli("hardware")
    assert r.code == 0
    for g in load_gpus():
        assert g.name in r.stdout, g.name
    assert "1979" in r.stdout and "125*" in r.stdout  # H100 fp8 to four digits; V100's fp16-only rate starred
    one = cli("hardware", "l40s")
    assert "733 TOPS" in one.stdout and "362.05 TFLOP/s" in one.stdout
