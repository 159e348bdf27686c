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
    assert [c["passed"] for c in report["checks"]] == [None, None]  # a CPU proves nothing about a GPU
    assert report["targets"] == {"mfu": 0.45, "memory_tolerance_pct": 5.0}
    assert report["ladder"]["runs"], report["ladder"]
    md = (tmp_path / "gpu-check.md").read_text()
    assert "dry run on CPU" in md and "| MFU, GPT-3 XL" in md
    assert (tmp_path / "profile.json").is_file()
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
    # Slow compilation: after 3 minutes the ladder is shortened, after 4 skipped; the sweep still fits after it.
    short = ladder(total - 180, 100.0, 150.0, 0.0)
    assert 0 < short < 100 and plan(total - 180 - short, 150.0) == 150.0
    assert ladder(total - 240, 100.0, 150.0, 0.0) == 0.0 and plan(total - 240, 150.0) > 0.9 * 150.0
