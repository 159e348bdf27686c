"""The system model's device fields: network figures against the datasheets they cite, and --gpu descriptions."""

import json
from pathlib import Path

import pytest

from llmplan.errors import LlmplanError
from llmplan.hardware import get_gpu, load_gpus, parse_gpu
from llmplan.units import parse_bandwidth, parse_flops_rate

GiB = 2**30
CATALOG = Path(__file__).resolve().parents[1] / "llmplan" / "hardware" / "catalog.json"


def test_every_entry_cites_its_sources():
    for g in load_gpus():
        assert g.source.strip(), g.name
        assert g.network_source.strip(), g.name
        assert g.nvlink_domain_gpus >= 1
        for v in (g.scaleup_bandwidth_bytes_per_s, g.scaleout_bandwidth_bytes_per_s, g.pcie_bandwidth_bytes_per_s):
            assert v is None or v > 0, g.name
        # a scale-up rate belongs to a domain of more than one GPU, and the other way round
        assert (g.scaleup_bandwidth_bytes_per_s is not None) <= (g.nvlink_domain_gpus > 1), g.name
        assert g.hbm_bandwidth_bytes_per_s == g.bandwidth_bytes_per_s


def test_every_entry_states_every_network_key():
    # Absent and unknown are different things: each entry says null where no figure is published.
    for e in json.loads(CATALOG.read_text())["gpus"]:
        for key in ("nvlink_domain_gpus", "scaleup_gbs", "scaleout_gbs", "pcie_gbs", "network_source"):
            assert key in e, (e["name"], key)


# (name, domain, scale-up GB/s each way, NIC GB/s each way, PCIe GB/s each way), each from the cited figure:
NETWORK = [
    # H100 datasheet (SXM): NVLink 900 GB/s, PCIe Gen5 128 GB/s, bidirectional; DGX H100: 8x 400 Gb/s ConnectX-7
    ("H100-SXM", 8, 450, 50, 64),
    # H200 datasheet: NVLink 900 GB/s, PCIe Gen5 128 GB/s; DGX H200: 8x 400 Gb/s ConnectX-7
    ("H200", 8, 450, 50, 64),
    # A100 datasheet (SXM): NVLink 600 GB/s, PCIe Gen4 64 GB/s; DGX A100: 8x 200 Gb/s HDR ConnectX-6
    ("A100-80GB", 8, 300, 25, 32),
    # V100 datasheet: NVLink 300 GB/s, PCIe 32 GB/s; DGX-1: 4x 100 Gb/s EDR for 8 GPUs
    ("V100-16GB", 8, 150, 6.25, 16),
    # HGX B200 datasheet: NVLink 1.8 TB/s per GPU, networking 0.8 TB/s over 8 GPUs (both directions)
    ("B200", 8, 900, 50, None),
    # H100 datasheet (PCIe): NVLink bridge 600 GB/s for a pair; L4 datasheet: PCIe Gen4 x16 64 GB/s, no NVLink
    ("H100-PCIe", 2, 300, None, 64), ("L4", 1, None, None, 32),
    # MI300X datasheet: 7 Infinity Fabric links x 128 GB/s (64 each way), 8-GPU platform, PCIe Gen5 x16
    ("MI300X", 8, 448, None, 64),
    # TPU v5e doc: bidirectional ICI 400 GBps per chip, 256-chip pod, DCN 6.4 Tbps per pod
    ("TPU-v5e", 256, 200, 3.125, None),
    # TPU v5p doc: bidirectional ICI 1200 GBps per chip, largest slice 6144 chips, DCN 50 Gbps per chip
    ("TPU-v5p", 6144, 600, 6.25, None),
    # H800 datasheet: NVLink 400 GB/s; DeepSeek-V3 report: IB 50 GB/s per GPU
    ("H800", 8, 200, 50, 64),
    # GB200 NVL72: 130 TB/s NVLink over 72 GPUs, one 400 Gb/s ConnectX-7 per GPU
    ("GB200-NVL72", 72, 900, 50, None),
    # GB300 NVL72: 130 TB/s over 72 GPUs, 72 ConnectX-8 at 800 Gb/s; HGX B300: networking 1.6 TB/s over 8 GPUs
    ("GB300-NVL72", 72, 900, 100, None), ("B300", 8, 900, 100, None),
    # MI355X platform: 7 links of 153.6 GB/s bidirectional, full mesh of 8
    ("MI355X", 8, 537.6, None, 64),
    # Gaudi 3: 21 of 24 200 GbE ports to the 7 peers, 3 to scale-out; PCIe Gen5 x16 128 GB/s bidirectional
    ("Gaudi-3", 8, 525, 75, 64),
    # TPU v6e doc: ICI 800 GBps bidirectional, 256-chip pod, DCN 100 Gbps per chip; TPU7x: ICI 1200, 9216 chips
    ("TPU-v6e", 256, 400, 12.5, None), ("TPU-v7", 9216, 600, 12.5, None),
    # Trn2 doc: 16 chips per instance, NeuronLink-v3 1,024 GB/s per device (halved), EFA 3,200 Gbps per 16 chips
    ("Trainium2", 16, 512, 25, None),
    # GH200: one superchip per server, no scale-up domain until an NVLink-switch system joins them
    ("GH200-96GB", 1, None, None, None),
]


@pytest.mark.parametrize("name,domain,up,nic,pcie", NETWORK)
def test_network_figures_match_the_cited_datasheets(name, domain, up, nic, pcie):
    g = get_gpu(name)
    assert g.nvlink_domain_gpus == domain
    for got, want in ((g.scaleup_bandwidth_bytes_per_s, up), (g.scaleout_bandwidth_bytes_per_s, nic),
                      (g.pcie_bandwidth_bytes_per_s, pcie)):
        assert got == (None if want is None else pytest.approx(want * 1e9, rel=1e-12))


def test_scaleup_is_one_direction_not_the_bidirectional_figure():
    # Datasheets print NVLink as both directions summed: H100 900, A100 600, V100 300, B200 1800 GB/s.
    for name, bidirectional in (("H100-SXM", 900), ("A100-80GB", 600), ("V100-16GB", 300), ("B200", 1800)):
        assert get_gpu(name).scaleup_bandwidth_bytes_per_s == pytest.approx(bidirectional / 2 * 1e9)


@pytest.mark.parametrize("text,value", [
    ("450GB/s", 450e9), ("4.8TB/s", 4.8e12), ("4.8 TB/s", 4.8e12), ("100GBps", 100e9), ("50GiB/s", 50 * GiB),
    ("400Gb/s", 50e9), ("400Gbps", 50e9), ("400Gbit/s", 50e9), ("1.6Tb/s", 200e9), ("3e12", 3e12),
])
def test_bandwidth_parses_bytes_and_bits(text, value):
    assert parse_bandwidth(text) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("text", ["4TB", "fast", "-3GB/s", "0GB/s", "GB/s", "9 XB/s", "4TBs", "nan"])
def test_bandwidth_rejects_what_is_not_a_rate(text):
    with pytest.raises(LlmplanError):
        parse_bandwidth(text)


@pytest.mark.parametrize("text,value", [
    ("989T", 989e12), ("989 TFLOPS", 989e12), ("989TFLOP/s", 989e12), ("2.25P", 2.25e15), ("9.89e14", 9.89e14),
    ("1979TOPS", 1979e12),
])
def test_flops_rate_parses(text, value):
    assert parse_flops_rate(text) == pytest.approx(value, rel=1e-12)


def test_custom_device_round_trip():
    g = parse_gpu("custom:memory=96GiB,bf16=800T,fp8=1600T,hbm=4TB/s,scaleup=450GB/s,nic=400Gb/s,domain=8,"
                  "pcie=64GB/s,power=700W,name=X1")
    assert g.name == "X1" and g.memory_bytes == 96 * GiB
    assert g.peak("bf16") == 800e12 and g.peak("fp16") == 800e12 and g.peak("fp8") == 1600e12
    assert g.hbm_bandwidth_bytes_per_s == 4e12 and g.scaleup_bandwidth_bytes_per_s == 450e9
    assert g.scaleout_bandwidth_bytes_per_s == 50e9 and g.pcie_bandwidth_bytes_per_s == 64e9
    assert g.nvlink_domain_gpus == 8 and g.power_watts == 700


def test_a_catalog_entry_with_figures_replaced():
    base = get_gpu("h100")
    g = parse_gpu("h100:nic=25GB/s,domain=4")
    assert g.scaleout_bandwidth_bytes_per_s == 25e9 and g.nvlink_domain_gpus == 4
    assert g.name == base.name and g.peak_flops == base.peak_flops and g.memory_bytes == base.memory_bytes
    assert base.scaleout_bandwidth_bytes_per_s == 50e9  # the catalog itself is untouched
    assert "nic=25GB/s" in g.source


def test_names_and_sizes_still_resolve():
    assert parse_gpu("NVIDIA H100 80GB HBM3").name == "H100-SXM"
    bare = parse_gpu("48GiB")
    assert bare.memory_bytes == 48 * GiB and not bare.peak_flops


@pytest.mark.parametrize("text,words", [
    ("custom:memory=96GiB,hmb=4TB/s", ["unknown key 'hmb'", "accepted keys", "hbm"]),
    ("custom:bf16=800T", ["needs memory="]),
    ("custom:memory=96GiB,hbm=4TB", ["hbm", "4TB", "rate"]),
    ("custom:memory=96GiB,bf16=fast", ["bf16", "fast"]),
    ("custom:memory=96GiB,domain=0", ["domain"]),
    ("custom:memory=96GiB,domain=2.5", ["domain", "whole number"]),
    ("custom:memory=96GiB,memory=80GB", ["memory is given twice"]),
    ("custom:memory", ["not key=value"]),
    ("custom:", ["nothing after ':'"]),
    ("zz9000:nic=25GB/s", ["'zz9000' is not a catalog GPU"]),
])
def test_bad_descriptions_name_the_problem(text, words):
    with pytest.raises(LlmplanError) as e:
        parse_gpu(text)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


@pytest.mark.parametrize("command", [
    ["memory", "--model", "llama-2-7b", "--gpu"],
    ["compute", "--model", "llama-2-7b", "--tokens", "1T", "--gpu"],
])
def test_bad_custom_strings_exit_2_with_one_line(cli, command):
    r = cli(*command, "custom:memory=96GiB,hmb=4TB/s")
    assert r.code == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "hmb" in r.stderr


def test_memory_and_compute_take_a_custom_device(cli):
    gpu = "custom:memory=96GiB,bf16=800T,hbm=4TB/s,name=X1"
    m = cli("memory", "--model", "llama-2-7b", "--mode", "infer", "--gpu", gpu, "--json").json()
    assert m["gpu"] == "X1" and m["gpu_memory_bytes"] == 96 * GiB
    c = cli("compute", "--model", "llama-2-7b", "--tokens", "1T", "--gpu", gpu, "--gpus", "8", "--mfu", "0.5",
            "--json")
    assert c.code == 0, c.stderr
    h = cli("compute", "--model", "llama-2-7b", "--tokens", "1T", "--gpu", "h100", "--gpus", "8", "--mfu", "0.5",
            "--json")
    # the same FLOPs at 800 instead of 989.4 TFLOP/s take 989.4/800 times as long
    assert c.json()["gpu_hours"] == pytest.approx(h.json()["gpu_hours"] * 989.4 / 800, rel=1e-9)


def test_hardware_json_has_the_new_fields_with_units(cli):
    d = cli("hardware", "h100", "--json").json()
    assert d["scaleup_bandwidth_bytes_per_s"] == 450e9 and d["scaleout_bandwidth_bytes_per_s"] == 50e9
    assert d["nvlink_domain_gpus"] == 8 and d["hbm_bandwidth_bytes_per_s"] == d["bandwidth_bytes_per_s"] == 3.35e12
    assert d["pcie_bandwidth_bytes_per_s"] == 64e9 and d["network_source"]
    every = cli("hardware", "--json").json()
    assert all("scaleout_bandwidth_bytes_per_s" in g for g in every["gpus"])
    custom = cli("hardware", "custom:memory=96GiB,nic=400Gb/s", "--json").json()
    assert custom["scaleout_bandwidth_bytes_per_s"] == 50e9 and custom["memory_bytes"] == 96 * GiB


def test_one_entry_view_shows_the_network(cli):
    r = cli("hardware", "h100")
    assert r.code == 0
    assert "450 GB/s per GPU, each way" in r.stdout and "(400 Gb/s)" in r.stdout and "8 GPUs" in r.stdout


def test_compute_says_what_a_bare_size_or_a_missing_bandwidth_lacks(cli):
    r = cli("compute", "--model", "llama-2-7b", "--tokens", "1T", "--gpu", "48GiB")
    assert r.code == 2 and "custom:memory=48GiB,bf16=" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("serve", "--model", "llama-2-7b", "--gpu", "custom:memory=80GiB,bf16=1P", "-i", "100", "-o", "10",
            "--concurrency", "1")
    assert r.code == 2 and "hbm=RATE" in r.stderr


def test_a_cards_gb_is_gib_in_every_command():
    # issue 15: --gpu 48GB follows the catalog's cards (A40, L40S: 48 GiB), whichever command parses it
    from llmplan.hardware import parse_gpu
    from llmplan.units import GiB

    assert parse_gpu("48GB").memory_bytes == parse_gpu("48GiB").memory_bytes == 48 * GiB
    assert parse_gpu("custom:memory=80GB,bf16=900T,hbm=3TB/s").memory_bytes == 80 * GiB
