"""`llmplan compute --profile` with a profile that `llmplan bench` really wrote (a tiny CPU ladder)."""

import pytest

torch = pytest.importorskip("torch")

FAST = ["--quick", "--device", "cpu", "--steps", "2", "--warmup", "1", "--batch", "1", "--seq", "32", "--max-rungs", "1"]


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.mark.slow  # two tiny bench runs: a few seconds
def test_compute_plans_with_the_mfu_the_bench_measured(cli, tmp_path):
    out = tmp_path / "cpu.json"
    bench = cli("bench", *FAST, "--peak-tflops", "1", "--out", str(out), "--json")
    assert bench.code == 0, bench.stderr
    run = bench.json()["runs"][0]
    for where in (str(out), "auto"):
        if where == "auto":  # the default save location, as `llmplan bench` without --out writes it
            assert cli("bench", *FAST, "--peak-tflops", "1").code == 0
        r = cli("compute", "--params", "20M", "--tokens", "1B", "--profile", where, "--json")
        assert r.code == 0, r.stderr
        plan = r.json()
        assert plan["gpu"] == bench.json()["device"]["name"] and plan["dtype"] == "fp32"
        assert plan["mfu_source"].startswith("profile ") and "measured on" in plan["mfu_source"]
        if where != "auto":
            assert plan["mfu"] == pytest.approx(run["mfu"])  # one run, no fit: its MFU, carried to 20M (a note says)
        assert plan["wall_seconds"] == pytest.approx(plan["flops_detailed"] / (1e12 * plan["mfu"]))


def test_a_cpu_profile_without_a_peak_plans_from_its_measured_flops(cli, tmp_path):
    """`bench --quick` on a CPU, then `compute --profile`: the FLOP/s measured there plan it; no MFU without a
    peak."""
    out = tmp_path / "cpu.json"
    bench = cli("bench", *FAST, "--out", str(out), "--json")
    assert bench.code == 0, bench.stderr
    run = bench.json()["runs"][0]
    assert run["mfu"] is None and run["achieved_flops"] > 0
    for where in (str(out), "auto"):
        if where == "auto":
            assert cli("bench", *FAST).code == 0
        r = cli("compute", "--params", "20M", "--tokens", "1B", "--profile", where, "--json")
        assert r.code == 0, r.stderr
        plan = r.json()
        assert plan["gpu"] == bench.json()["device"]["name"] and plan["dtype"] == "fp32"
        assert plan["mfu"] is None and plan["effective_mfu"] is None and plan["peak_flops_per_gpu"] is None
        assert "no datasheet peak" in plan["mfu_source"]
        if where != "auto":  # one run, no fit: its FLOP/s, carried to 20M (a note says)
            assert plan["achieved_flops_per_gpu"] == pytest.approx(run["achieved_flops"])
            assert plan["wall_seconds"] == pytest.approx(plan["flops_detailed"] / run["achieved_flops"])
            assert "carried to 20 M" in r.stderr
    text = cli("compute", "--params", "20M", "--tokens", "1B", "--profile", str(out))
    assert text.code == 0 and "no datasheet peak" in text.stdout and "MFU  " not in text.stdout
    days = cli("compute", "--gpus", "4", "--days", "1", "--profile", str(out), "--json")
    assert days.code == 0 and days.json()["mfu"] is None
    assert days.json()["flops"] == pytest.approx(4 * 86400 * days.json()["achieved_flops_per_gpu"], rel=1e-6)
    mfu = cli("compute", "--params", "20M", "--tokens", "1B", "--profile", str(out), "--mfu", "0.5")
    assert mfu.code == 2 and mfu.stdout == "" and "--mfu is a fraction of a datasheet peak" in mfu.stderr
    other = cli("compute", "--params", "20M", "--tokens", "1B", "--profile", str(out), "--gpu", "h100")
    assert other.code == 2 and "not H100-SXM" in other.stderr


@pytest.mark.slow  # a tiny ladder and a calibration: a few seconds
def test_a_calibrated_cpu_profile_without_a_peak_still_plans_from_its_measured_flops(cli, tmp_path):
    """Kernel curves in the profile take the step-time model only where a peak is known: without one the
    measured training FLOP/s plan the CPU and no MFU is reported."""
    out = tmp_path / "cpu.json"
    assert cli("bench", *FAST, "--out", str(out)).code == 0
    assert cli("bench", "--calibrate", "--quick", "--device", "cpu", "--steps", "2", "--out", str(out)).code == 0
    r = cli("compute", "--params", "20M", "--tokens", "1B", "--profile", str(out), "--json")
    assert r.code == 0, r.stderr
    assert r.json()["mfu"] is None and r.json()["achieved_flops_per_gpu"] > 0
    tp = cli("compute", "--params", "20M", "--tokens", "1B", "--profile", str(out), "--tp", "1")
    assert tp.code == 2 and tp.stdout == "" and "layout options need a device with a peak" in tp.stderr


def test_a_profile_with_neither_peak_nor_runs_says_what_to_do(cli, tmp_path):
    out = tmp_path / "cpu.json"
    assert cli("bench", "--calibrate", "--quick", "--device", "cpu", "--steps", "2", "--out", str(out)).code == 0
    r = cli("compute", "--params", "20M", "--tokens", "1B", "--profile", str(out))
    assert r.code == 2 and r.stdout == "" and "bench --quick" in r.stderr
