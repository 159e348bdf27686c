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
