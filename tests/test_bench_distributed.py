"""Distributed bench: environment, aggregation across ranks, the --nproc launcher, a real two-process run with gloo on
CPU, and a failing rank that ends every rank with one message."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from llmplan.bench.distributed import FAIL_RANK_ENV, aggregate, dist_env, is_secondary
from llmplan.bench.launch import root_cause, strip_option, torchrun_command
from llmplan.errors import LlmplanError


def test_dist_env_reads_torchrun_variables():
    assert dist_env({}) is None
    env = dist_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"})
    assert (env.rank, env.local_rank, env.world_size, env.local_world_size) == (3, 1, 4, 2)
    with pytest.raises(LlmplanError):
        dist_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(LlmplanError):
        dist_env({"RANK": "x", "WORLD_SIZE": "2"})


def test_aggregate_takes_spread_across_ranks_and_the_slowest_as_the_job():
    ranks = [{"rank": 1, "step_seconds": 0.30, "peak_bytes": 200},
             {"rank": 0, "step_seconds": 0.20, "peak_bytes": 100},
             {"rank": 2, "step_seconds": 0.25, "peak_bytes": 300}]
    out = aggregate(ranks, single_step_seconds=0.15, tokens_per_rank_step=1000)
    assert out["step_seconds"] == {"min": 0.20, "median": 0.25, "max": 0.30}
    assert out["job_step_seconds"] == 0.30
    assert out["tokens_per_second"] == pytest.approx(3 * 1000 / 0.30)
    assert out["scaling_efficiency"] == pytest.approx(0.15 / 0.30)
    assert out["speedup"] == pytest.approx(3 * 0.15 / 0.30)
    assert [r["rank"] for r in out["per_rank"]] == [0, 1, 2]
    assert out["peak_bytes"] == {"min": 100, "median": 200, "max": 300}
    assert aggregate(ranks, None, 1000)["scaling_efficiency"] is None


def test_launcher_command_and_root_cause():
    assert strip_option(["bench", "--nproc", "2", "--quick"], "--nproc") == ["bench", "--quick"]
    assert strip_option(["bench", "--nproc=2", "--json"], "--nproc") == ["bench", "--json"]
    cmd = torchrun_command(2, ["bench", "--quick"])
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--standalone" in cmd
    assert cmd[cmd.index("--nproc-per-node") + 1] == "2" and cmd[-3:] == ["llmplan", "bench", "--quick"]
    peer = "rank 0 of 2 (cpu): RuntimeError: Connection closed by peer"
    cause = "rank 1 of 2 (cpu): out of memory; lower --batch"
    assert is_secondary(peer) and not is_secondary(cause)
    assert root_cause([(False, peer), (True, cause)]) == cause
    assert root_cause([(False, peer)]) == peer
    assert root_cause([]) is None


def test_a_rank_that_only_saw_a_peer_die_stays_quiet_on_one_node(capsys, monkeypatch):
    from llmplan.bench.distributed import DistEnv, ERROR_FILE_ENV, report_failure

    monkeypatch.delenv(ERROR_FILE_ENV, raising=False)
    one_node = DistEnv(rank=1, local_rank=1, world_size=2, local_world_size=2)
    report_failure("rank 1 of 2 (cpu): RuntimeError: Connection reset by peer", one_node)
    assert capsys.readouterr().err == ""
    report_failure("rank 1 of 2 (cpu): out of memory; lower --batch", one_node)
    assert capsys.readouterr().err.count("llmplan: error:") == 1
    two_nodes = DistEnv(rank=9, local_rank=1, world_size=16, local_world_size=8)
    report_failure("rank 9 of 16 (cuda:1): RuntimeError: Connection reset by peer", two_nodes)
    assert "another rank failed" in capsys.readouterr().err


def test_strategy_without_several_processes_is_a_clear_error(cli, monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    r = cli("bench", "--strategy", "fsdp", "--device", "cpu", "--quick")
    assert r.code == 2 and "--nproc" in r.stderr
    r = cli("bench", "--nproc", "2", "--strategy", "zero", "--device", "cpu")
    assert r.code == 2 and "ddp, fsdp" in r.stderr
    r = cli("bench", "--nproc", "0", "--device", "cpu", "--quick")
    assert r.code == 2 and "--nproc" in r.stderr
    r = cli("bench", "--nproc", "2", "--device", "cpu", "--quick", "--plot", "x.png", "--peak-tflops", "1")
    assert r.code == 2 and "--plot, --peak-tflops do(es) not apply" in r.stderr and r.stdout == ""


def _run(args, tmp_path, extra_env=None):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(LLMPLAN_DATA_DIR=str(tmp_path / "data"), LLMPLAN_DIST_TIMEOUT="60", **(extra_env or {}))
    return subprocess.run([sys.executable, "-m", "llmplan", *args], capture_output=True, text=True, env=env,
                          timeout=240)


@pytest.mark.slow
def test_two_processes_with_gloo_shard_the_model(tmp_path):
    out = tmp_path / "dist.json"
    # bf16 autocast: FSDP's sharded weights (DTensors) beside autocast's 16-bit casts of the gathered weights.
    r = _run(["bench", "--nproc", "2", "--strategy", "fsdp", "--device", "cpu", "--quick", "--steps", "2",
              "--dtype", "bf16", "--json", "--out", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["world_size"] == 2 and report["strategy"] == "fsdp" and report["backend"] == "gloo"
    s = report["step_seconds"]
    assert 0 < s["min"] <= s["median"] <= s["max"]
    assert [p["rank"] for p in report["per_rank"]] == [0, 1]
    assert report["single_process_step_seconds"] > 0 and report["scaling_efficiency"] > 0
    # FSDP full sharding: each rank holds about half of the fp32 weights (shards are padded to equal sizes).
    params = report["model"]["params"]
    for rank in report["per_rank"]:
        held = rank["measured_breakdown"]["weights"]
        assert 0.5 * 4 * params <= held < 0.55 * 4 * params
        assert rank["measured_breakdown"]["autocast_weight_copies"] > 0  # held whole on each rank until backward
    assert report["predicted_memory"]["zero_stage"] == 3 and report["predicted_memory"]["dp"] == 2
    assert json.loads(out.read_text())["world_size"] == 2  # rank 0 wrote the profile
    assert "Traceback" not in r.stderr and "Warning" not in r.stderr
    phases = [line for line in r.stderr.splitlines() if line.startswith("rank 0: ")]  # rank 0 alone says them
    assert len(phases) == 3 and "timed steps on each of 2 ranks" in phases[1]


@pytest.mark.slow
def test_one_failing_rank_ends_all_ranks_with_one_message(tmp_path):
    r = _run(["bench", "--nproc", "2", "--device", "cpu", "--quick", "--steps", "2"], tmp_path,
             {FAIL_RANK_ENV: "1"})
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("llmplan: error:")
    assert "rank 1 of 2" in errors[0] and "all 2 processes stopped" in errors[0]
    assert "Traceback" not in r.stderr and r.stdout.strip() == ""


@pytest.mark.slow
def test_sigterm_to_the_launcher_ends_every_rank_with_one_message(tmp_path):
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(LLMPLAN_DATA_DIR=str(tmp_path / "data"), LLMPLAN_DIST_TIMEOUT="60")
    proc = subprocess.Popen([sys.executable, "-m", "llmplan", "bench", "--nproc", "2", "--device", "cpu", "--quick",
                             "--steps", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in proc.stderr:  # wait until the ranks run: rank 0 times its baseline, the others wait for it
        lines.append(line)
        if "single-process baseline" in line:
            break
    time.sleep(3)
    children = [int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == proc.pid]
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    proc.wait(timeout=30)
    assert proc.returncode == 130, rest
    errors = [line for line in rest.splitlines() if "error" in line.lower()]
    assert errors == ["llmplan: error: interrupted"], rest
    time.sleep(0.5)
    assert children and not [p for p in os.listdir("/proc") if p.isdigit() and _session(int(p)) in children]


def _stat(pid: int) -> list[str]:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _parent(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def _session(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[3]) if fields and fields[0] != "Z" else None
