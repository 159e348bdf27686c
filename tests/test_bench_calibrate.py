"""`llmplan bench --calibrate`: kernel measurements (GEMM curve, memory bandwidth, attention) and collectives,
stored under the calibration profile's keys and kept when another bench of the same device rewrites the profile."""

import json
import os
import subprocess
import sys

import pytest

from llmplan.calibration import PROFILE_KIND, load_profile, merge_profile, profile_from_dict, save_profile
from llmplan.errors import LlmplanError

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def tiny_plan():
    from llmplan.bench.kernels import KernelPlan

    return KernelPlan(gemm_shapes=((32, 32, 32), (1, 64, 64)), dtypes=("fp32",), stream_bytes=1 << 20,
                      prefill=((1, 2, 32, 16),), decode=((1, 4, 2, 128, 16),), attention_dtype="fp32", warmup=1,
                      repeats=3, sample_seconds=0.001)


def cpu():
    from llmplan.bench.device import detect_device

    return detect_device("cpu")


def test_the_kernels_are_measured_with_their_flop_and_byte_counts():
    from llmplan.bench.kernels import measure_kernels

    plan = tiny_plan()
    steps = []
    r = measure_kernels(cpu(), plan, on_step=steps.append)
    assert len(steps) == plan.count == 5 and not r["interrupted"]
    assert [(g["m"], g["n"], g["k"]) for g in r["gemm_curve"]] == [(32, 32, 32), (1, 64, 64)]
    for g in r["gemm_curve"]:
        assert g["flops"] == 2 * g["m"] * g["n"] * g["k"]
        assert g["flops_per_s"] == pytest.approx(g["flops"] / g["seconds"])
        assert g["seconds_min"] <= g["seconds"] <= g["seconds_max"] and g["repeats"] == 3
    mb = r["memory_bandwidth"]
    assert mb["bytes_moved"] == 2 * mb["buffer_bytes"] == 2 << 20  # read + write
    assert r["hbm_bytes_per_s"] == mb["bytes_per_s"] > 0
    prefill, decode = r["attention"]
    assert prefill["kind"] == "prefill" and prefill["flops"] == 4 * 1 * 2 * 32 * 32 * 16 / 2  # causal half
    assert decode["kind"] == "decode" and decode["flops"] == 4 * 1 * 4 * 128 * 16
    assert decode["bytes"] == 2 * 1 * 2 * 128 * 16 * 4 + 2 * 1 * 4 * 16 * 4  # K and V of 2 KV heads; q and out
    assert decode["bytes_per_s"] == pytest.approx(decode["bytes"] / decode["seconds"])


def test_an_interrupted_calibration_keeps_what_it_measured():
    from llmplan.bench.kernels import measure_kernels

    seen = []

    def stop_at_the_third(what):
        seen.append(what)
        if len(seen) == 3:
            raise KeyboardInterrupt

    r = measure_kernels(cpu(), tiny_plan(), on_step=stop_at_the_third)
    assert r["interrupted"] and len(r["gemm_curve"]) == 2 and r["hbm_bytes_per_s"] is None and r["attention"] == []


def test_timing_repeats_the_call_until_a_sample_is_long_enough():
    from llmplan.bench.kernels import time_kernel

    calls = []
    t = time_kernel(lambda: calls.append(1), cpu(), warmup=2, repeats=4, sample_seconds=0.002)
    assert t["calls_per_sample"] > 10  # an empty call is far shorter than 2 ms
    assert t["repeats"] == 4 and t["spread_pct"] >= 0 and t["seconds"] < 1e-3


def test_bus_bandwidth_factors_are_nccl_tests():
    from llmplan.bench.collectives import bus_factor

    assert bus_factor("all_reduce", 8) == pytest.approx(2 * 7 / 8)
    assert bus_factor("all_gather", 8) == bus_factor("reduce_scatter", 8) == pytest.approx(7 / 8)
    assert bus_factor("all_reduce", 2) == 1.0


def _profile(**extra):
    return {"schema_version": 1, "kind": PROFILE_KIND, "device": {"name": "CPU: test", "peak_flops": None},
            "runs": [], "fit": None, **extra}


GEMM = {"m": 8, "n": 8, "k": 8, "dtype": "fp32", "flops_per_s": 1e9}


@pytest.mark.parametrize("bad, why", [
    ({"gemm_curve": [dict(GEMM, m=0)]}, "m is 0"),
    ({"gemm_curve": [dict(GEMM, flops_per_s=float("nan"))]}, "flops_per_s"),
    ({"gemm_curve": {"m": 1}}, "must be a list"),
    ({"hbm_bytes_per_s": -1.0}, "hbm_bytes_per_s"),
    ({"attention": [{"kind": "train", "seq": 1, "batch": 1, "heads": 1, "head_dim": 1, "dtype": "fp32",
                     "flops_per_s": 1.0, "bytes_per_s": 1.0}]}, "kind"),
    ({"collectives": [{"op": "all_reduce", "ranks": 1, "bytes": 8, "bus_bytes_per_s": 1.0, "backend": "gloo"}]},
     "2 ranks"),
])
def test_a_malformed_calibration_is_refused_with_the_key(bad, why):
    with pytest.raises(LlmplanError, match=why):
        profile_from_dict(_profile(**bad), "p.json")


def test_merging_keeps_what_the_other_bench_measured():
    ladder = _profile(runs=[{"status": "ok", "params": 1e6, "achieved_flops": 1e9}],
                      device={"name": "CPU: test", "peak_flops": 1e12})
    kernels = {"device": {"name": "CPU: test", "peak_flops": None}, "gemm_curve": [GEMM], "hbm_bytes_per_s": 2e9,
               "calibration": {"kernels": {"seconds": 1}}}
    both = merge_profile(ladder, kernels)
    assert both["runs"] == ladder["runs"] and both["gemm_curve"] == [GEMM]
    assert both["device"]["peak_flops"] == 1e12  # the peak given to the ladder's bench is kept
    again = merge_profile(both, _profile(runs=[], fit=None))  # a new ladder keeps the kernels
    assert again["gemm_curve"] == [GEMM] and again["hbm_bytes_per_s"] == 2e9 and again["runs"] == []
    collectives = merge_profile(again, {"collectives": [], "calibration": {"collectives": {"ranks": 2}}})
    assert set(collectives["calibration"]) == {"kernels", "collectives"}


def test_calibrate_writes_the_profile_keys_and_a_table_in_80_columns(cli, tmp_path, monkeypatch):
    out = tmp_path / "cpu.json"
    r = cli("bench", "--calibrate", "--quick", "--device", "cpu", "--steps", "3", "--json", "--out", str(out))
    assert r.code == 0, r.stderr
    report = r.json()
    assert report["schema_version"] == 1 and report["mode"] == "calibrate"
    assert report["gemm_curve"] and report["hbm_bytes_per_s"] > 0 and report["collectives"] == []
    assert {a["kind"] for a in report["attention"]} == {"prefill", "decode"}
    assert "--nproc" in " ".join(report["notes"])  # collectives: said how to measure them
    assert "calibrating" in r.stderr and " s" in r.stderr  # what it runs and about how long, before it starts
    prof = load_profile(str(out))
    assert prof.gemm_curve == tuple(report["gemm_curve"]) and prof.hbm_bytes_per_s == report["hbm_bytes_per_s"]
    assert prof.runs == () and prof.data["calibration"]["kernels"]["settings"]["repeats"] == 3
    monkeypatch.setenv("COLUMNS", "80")
    text = cli("bench", "--calibrate", "--quick", "--device", "cpu", "--no-save")
    assert text.code == 0 and "GEMM" in text.stdout and "decode" in text.stdout
    assert max(len(line) for line in text.stdout.splitlines()) <= 80


@pytest.mark.slow  # a tiny ladder then a calibration, in either order: a few seconds
def test_a_ladder_and_a_calibration_of_one_device_share_its_profile(cli):
    fast = ["--quick", "--device", "cpu", "--steps", "2", "--warmup", "1", "--batch", "1", "--seq", "32",
            "--max-rungs", "1"]
    assert cli("bench", "--calibrate", "--quick", "--device", "cpu", "--steps", "2").code == 0
    assert cli("bench", *fast).code == 0
    prof = load_profile("auto")
    assert prof.runs and prof.gemm_curve and prof.attention and prof.hbm_bytes_per_s
    assert cli("bench", "--calibrate", "--quick", "--device", "cpu", "--steps", "2").code == 0
    again = load_profile("auto")
    assert again.runs == prof.runs and again.gemm_curve != prof.gemm_curve  # measured anew, runs kept


def test_calibrate_refuses_what_does_not_apply(cli):
    r = cli("bench", "--calibrate", "--model", "gpt2", "--seq", "64")
    assert r.code == 2 and r.stdout == "" and "--model, --seq do(es) not apply" in r.stderr
    one = cli("bench", "--calibrate", "--nproc", "1", "--device", "cpu")
    assert one.code == 2 and "at least 2 processes" in one.stderr
    both = cli("bench", "--calibrate", "--no-save", "--out", "x.json")
    assert both.code == 2 and "not both" in both.stderr


def test_an_existing_profile_of_another_device_is_replaced_not_merged(cli, tmp_path):
    path = tmp_path / "p.json"
    save_profile(_profile(device={"name": "NVIDIA H100 80GB HBM3", "peak_flops": 989e12},
                          runs=[{"status": "ok", "params": 1e9, "mfu": 0.4}]), path)
    assert cli("bench", "--calibrate", "--quick", "--device", "cpu", "--steps", "2", "--out", str(path)).code == 0
    data = json.loads(path.read_text())
    assert data["device"]["kind"] == "cpu" and data["runs"] == []


@pytest.mark.slow  # torchrun, two gloo processes: a few seconds
def test_collectives_across_two_processes(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(LLMPLAN_DATA_DIR=str(tmp_path / "data"), LLMPLAN_DIST_TIMEOUT="60", OMP_NUM_THREADS="1")
    out = tmp_path / "cpu.json"
    r = subprocess.run([sys.executable, "-m", "llmplan", "bench", "--calibrate", "--nproc", "2", "--device", "cpu",
                        "--quick", "--steps", "2", "--json", "--out", str(out)], capture_output=True, text=True,
                       env=env, timeout=240)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    ops = {(c["op"], c["bytes"]) for c in report["collectives"]}
    assert {op for op, _ in ops} == {"all_reduce", "all_gather", "reduce_scatter"}
    for c in report["collectives"]:
        assert c["ranks"] == 2 and c["backend"] == "gloo"
        factor = 1.0 if c["op"] == "all_reduce" else 0.5  # 2(n-1)/n and (n-1)/n at n = 2
        assert c["bus_bytes_per_s"] == pytest.approx(c["bytes"] / c["seconds"] * factor)
    assert load_profile(str(out)).collectives == tuple(report["collectives"])
    assert report["gemm_curve"]  # rank 0 measured the kernels too
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("kind, quick", [("cpu", True), ("cpu", False), ("cuda", True), ("cuda", False)])
def test_each_gemm_shape_of_a_plan_has_its_own_flop_count(kind, quick):
    from dataclasses import replace

    from llmplan.bench.kernels import plan_for

    device = replace(cpu(), kind=kind, dtype="bf16" if kind == "cuda" else "fp32")
    plan = plan_for(device, quick)
    flops = [2 * m * n * k for m, n, k in plan.gemm_shapes]
    assert len(set(flops)) == len(flops)  # the efficiency model reads the curve by FLOPs
    assert any(m == 1 for m, _, _ in plan.gemm_shapes)  # decode's single token
    assert plan.dtypes == (("bf16", "fp32") if kind == "cuda" else ("fp32",))


def test_a_measured_profile_round_trips_into_the_step_time_efficiencies(tmp_path):
    """What `bench --calibrate` stores is what llmplan.hardware.efficiency.efficiency_for reads back: at each
    measured GEMM shape the measured FLOP/s, the measured bandwidth, the measured prefill attention rate."""
    from llmplan.bench.kernels import measure_kernels
    from llmplan.cli.bench_calibrate import fresh_profile, profile_entries
    from llmplan.hardware import GPU
    from llmplan.hardware.efficiency import efficiency_for

    dev = cpu()
    measured = measure_kernels(dev, tiny_plan())
    report = {"device": dev.as_dict(), "versions": {}, "created": "now", "argv": [], "seconds": 1.0, "threads": 1,
              "settings": measured["settings"], "interrupted": False, "notes": [], **{
                  k: measured[k] for k in ("gemm_curve", "hbm_bytes_per_s", "memory_bandwidth", "attention")},
              "collectives": [{"op": "all_reduce", "ranks": 2, "bytes": 1 << 20, "bus_bytes_per_s": 3e9,
                               "backend": "gloo", "seconds": 1e-3}]}
    path = save_profile(fresh_profile(profile_entries(report)), tmp_path / "cpu.json")
    prof = load_profile(str(path))
    device = GPU(name=dev.name, vendor="cpu", memory_bytes=2**34, peak_flops={"fp32": 1e12},
                 bandwidth_bytes_per_s=50e9, power_watts=None, source="test")
    eff = efficiency_for(device, prof)
    assert eff.source.startswith("measured: " + str(path))
    for what in ("HBM", "GEMM curve", "attention", "collectives"):
        assert what in eff.source
    for g in prof.gemm_curve:
        assert eff.gemm(g["m"], g["n"], g["k"], "fp32") == pytest.approx(g["flops_per_s"], rel=1e-9)
    assert eff.hbm_bytes_per_s == prof.hbm_bytes_per_s
    prefill = next(a for a in prof.attention if a["kind"] == "prefill")
    assert eff.attention_flops_per_s("fp32", prefill["seq"]) == pytest.approx(prefill["flops_per_s"], rel=1e-9)
    tier = "scaleup" if 2 <= eff.nvlink_domain_gpus else "scaleout"  # the link two ranks of this device span
    assert eff.collective_bus_bytes_per_s(tier, 1 << 20) == pytest.approx(3e9)
    assert efficiency_for(device, None).source.startswith("default")
    from llmplan.estimate.steptime import make_system  # the step-time model takes the profile the same way

    assert make_system(device, 1, profile=prof).eff.source == eff.source
