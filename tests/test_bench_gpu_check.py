"""benchmarks/gpu_check.py: its CPU dry run (tiny shape) writes the JSON and markdown a GPU run would write."""

import json
import runpy
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_dry_run_writes_results_and_passes_no_judgement(tmp_path, capsys):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        main = runpy.run_path(str(SCRIPT))["main"]
        code = main(["--dry-run", "--out", str(tmp_path), "--no-eager-memory", "--scaling-seconds", "0",
                     "--no-distributed"])
    finally:
        torch.set_num_threads(before)
    assert code == 0
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert report["dry_run"] is True and report["kind"] == "llmplan.gpu-check"
    assert report["xl"]["status"] == "ok" and report["xl"]["layers"] == 2
    assert report["xl"]["memory_error_pct"] is not None
    assert {c["passed"] for c in report["checks"]} == {None}  # a CPU proves nothing about a GPU
    assert report["targets"] == {"mfu": 0.45, "memory_tolerance_pct": 5.0}
    assert report["ladder"]["runs"], report["ladder"]
    md = (tmp_path / "gpu-check.md").read_text()
    assert "dry run on CPU" in md and "| MFU, GPT-3 XL" in md
    sus = report["kernels"]["sustained"]  # the training-shaped GEMM held for a while, window by window
    assert sus["windows"] and all(w["flops_per_s"] > 0 for w in sus["windows"])
    assert sus["first_flops_per_s"] == sus["windows"][0]["flops_per_s"] and "Sustained GEMM" in md
    # The calibration phases: kernels in the profile under the step-time model's keys, and every check said.
    from llmplan.calibration import load_profile

    prof = load_profile(str(tmp_path / "profile.json"))
    assert prof.gemm_curve and prof.hbm_bytes_per_s > 0 and {a["kind"] for a in prof.attention} == {"prefill",
                                                                                                     "decode"}
    assert prof.runs  # the XL run and the ladder beside them
    names = " ".join(c["check"] for c in report["checks"])
    assert "calibration: GEMM curve" in names and "MLA block" in names and "MoE block" in names
    assert "step-time model" in names or "step time:" in names
    for block in report["blocks"]:  # each block is measured, or says why it cannot be
        assert block["available"] or "bench" in block["why"]
    assert "| GEMM m x n x k |" in md and "| attention |" in md
    assert "### GPU check" in capsys.readouterr().out


def test_without_a_gpu_the_real_check_refuses_in_one_line(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    main = runpy.run_path(str(SCRIPT))["main"]
    assert main(["--out", str(tmp_path)]) == 2
    assert "--dry-run" in capsys.readouterr().err
    assert not (tmp_path / "gpu-check.json").exists()


def test_the_script_runs_from_a_bare_checkout_without_llmplan_installed(tmp_path):
    """A GPU machine gets a copy of the tree with torch but no `pip install`: the script must find llmplan in
    its checkout, and the commands it starts too (PYTHONPATH)."""
    import subprocess
    import sys

    hide = ("import sys\n"
            "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
            "sys.path[:] = [p for p in sys.path if p not in ('', '.')]\n"
            "try:\n    import llmplan\n    sys.exit('llmplan still importable')\nexcept ImportError:\n    pass\n"
            f"ns = __import__('runpy').run_path({str(SCRIPT)!r})\n"
            "import llmplan, gpu_env\n"
            "print(llmplan.__file__)\n"
            "print(gpu_env.checkout_env()['PYTHONPATH'])\n")
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # a bare machine sets none
    r = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    root = str(SCRIPT.parents[1])
    found, pythonpath = r.stdout.split("\n")[:2]
    assert found.startswith(root) and pythonpath.split(":")[0] == root


def test_the_time_budget_is_shared_out_so_one_call_ends_in_time():
    ns = runpy.run_path(str(SCRIPT))
    plan, fixed, total = ns["scaling_plan"], ns["SCALING_FIXED"], ns["TOTAL_SECONDS"]
    assert plan(1000.0, 150.0) == 150.0  # room to spare: the sweep gets what it asked for
    tight = plan(150.0, 150.0)
    assert tight == (150.0 - fixed) / 1.25  # the sweep's 25% overrun and its start-up still end within 150 s
    assert plan(10.0, 150.0) == 0.0
    assert total <= 480  # one device call of about 8 minutes, the machine's start aside
    ladder = ns["ladder_plan"]
    # One H200, the XL runs done after 2 minutes: the ladder gets its 100 s, the sweep keeps 150 s x 1.25 + start.
    left = total - 120
    assert ladder(left, 100.0, 150.0, 0.0) == 100.0
    assert left - 100.0 >= 150.0 * 1.25 + fixed and plan(left - 100.0, 150.0) == 150.0
    # Slow compilation (or the calibration phases before it): after 3 minutes the ladder is shortened, after 4.5
    # skipped; the sweep still fits after it.
    short = ladder(total - 180, 100.0, 150.0, 0.0)
    assert 0 < short < 100 and plan(total - 180 - short, 150.0) == 150.0
    assert ladder(total - 270, 100.0, 150.0, 0.0) == 0.0 and plan(total - 270, 150.0) > 0.9 * 150.0


def test_the_calibration_phases_fit_the_budget_before_the_sweep():
    ns = runpy.run_path(str(SCRIPT))
    calib = __import__("gpu_calibration")
    fits, floor, total = ns["phase_fits"], ns["sweep_floor"], ns["TOTAL_SECONDS"]
    keep = floor(150.0)
    assert keep == ns["MIN_SCALING_SECONDS"] * 1.25 + ns["SCALING_FIXED"] and floor(0.0) == 0.0
    # One H200, the XL runs done after 2 minutes: kernels, blocks and the step-time shapes all run, and the sweep
    # still gets at least its shortest useful run.
    left = total - 120
    for planned in (calib.KERNEL_SECONDS, calib.BLOCK_SECONDS, calib.STEP_SECONDS):
        assert fits(left, planned, keep)
        left -= planned
    assert left >= keep and ns["scaling_plan"](left, 150.0) >= ns["MIN_SCALING_SECONDS"]
    # Slow compilation (XL took 5 minutes): the step-time shapes are skipped, not the sweep.
    assert not fits(total - 300 - calib.KERNEL_SECONDS - calib.BLOCK_SECONDS, calib.STEP_SECONDS, keep)


def test_the_step_time_rows_compare_the_model_with_the_measured_steps(monkeypatch):
    """With a step-time model (here a stand-in that predicts 10% over), each shape is measured and judged."""
    from dataclasses import dataclass

    runpy.run_path(str(SCRIPT))
    calib = __import__("gpu_calibration")
    from llmplan.bench.device import detect_device

    @dataclass
    class Est:
        step_seconds: float
        mfu: float = 0.5
        step_breakdown: dict = None
        efficiency_source: str = "stand-in"

    measured = {}

    def run(cfg, what):
        r = __import__("llmplan.bench.runner", fromlist=["run_config"]).run_config(cfg, detect_device("cpu"))
        measured[what] = r.step_seconds
        return r

    def estimate_step(spec, system, layout, memory=True):
        return Est(step_seconds=1.1 * next(iter(measured.values())))  # 10% over the one shape measured

    monkeypatch.setattr(calib, "step_model", lambda: ((estimate_step, lambda gpu, n, profile=None: None,
                                                       lambda n, spec, **kw: kw), ""))
    spec = runpy.run_path(str(SCRIPT))["xl_spec"](True)
    shapes = calib.step_shapes(spec, True)[:1]
    monkeypatch.setattr(calib, "step_shapes", lambda s, dry: shapes)
    torch.set_num_threads(1)
    out = calib.step_checks(detect_device("cpu"), None, spec, None, True, lambda m: None, run)
    (row,) = out["shapes"]
    assert out["available"] and row["status"] == "ok"
    assert row["error_pct"] == pytest.approx(10.0) and row["predicted_seconds"] > row["measured_step_seconds"]
    checks = calib.check_rows({"steps": out}, dry=False)
    assert checks[0]["passed"] is False and "+10.0%" in checks[0]["measured"]
    monkeypatch.setattr(calib, "step_model", lambda: (None, "not available: no model"))
    assert calib.step_checks(detect_device("cpu"), None, spec, None, True, print, run)["shapes"] == []
