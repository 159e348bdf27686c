"""Calibration profiles: saved atomically, read back, refused when corrupt, foreign or from another device."""

import json
import os

import pytest

from llmplan.calibration import (
    PROFILE_KIND, data_dir, default_profile_path, evaluate_fit, load_profile, profiles_dir, save_profile,
)
from llmplan.errors import LlmplanError

H100 = "NVIDIA H100 80GB HBM3"


def profile(name=H100, peak=989.4e12, fit=None, runs=None, overhead=3 * 2**30):
    return {
        "schema_version": 1, "kind": PROFILE_KIND, "created": "2026-01-01T00:00:00+00:00",
        "device": {"name": name, "kind": "cuda", "memory_bytes": 80 * 2**30, "peak_flops": peak},
        "runs": runs if runs is not None else [
            {"status": "ok", "params": 1e8, "mfu": 0.30}, {"status": "ok", "params": 1e9, "mfu": 0.45},
            {"status": "oom", "params": 1e10, "mfu": None}],
        "fit": fit, "overhead_bytes": overhead, "overhead_method": "test",
    }


POWER = {"form": "power", "coefficients": {"a": 1e12, "b": 0.25}, "params_range": [1e6, 1e9]}
SATURATING = {"form": "saturating", "coefficients": {"f_max": 6e14, "n_half": 1e8, "c": 1.0},
              "params_range": [1e6, 1e9]}


def test_data_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMPLAN_DATA_DIR", str(tmp_path / "d"))
    assert data_dir() == tmp_path / "d"
    assert default_profile_path(H100) == tmp_path / "d" / "profiles" / "nvidia-h100-80gb-hbm3.json"


def test_save_then_load_auto_by_device_and_by_path(tmp_path):
    path = save_profile(profile(fit=POWER))
    assert path.parent == profiles_dir() and path.is_file()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp file left behind
    p = load_profile("auto", gpu="h100")
    assert p.device_name == H100 and p.overhead_bytes == 3 * 2**30 and p.path == str(path)
    q = load_profile(str(path))
    assert q.runs == p.runs
    other = save_profile(profile(), tmp_path / "x" / "mine.json")
    assert load_profile(str(other)).fit is None


def test_auto_picks_the_profile_of_the_requested_gpu():
    save_profile(profile(name="NVIDIA A100-SXM4-80GB", peak=312e12))
    save_profile(profile(name=H100))
    assert load_profile("auto", gpu="A100-80GB").device_name == "NVIDIA A100-SXM4-80GB"
    assert load_profile("auto", gpu="h100-sxm").device_name == H100
    with pytest.raises(LlmplanError, match="no calibration profile for H200"):
        load_profile("auto", gpu="H200")


def test_a_profile_from_another_device_is_refused(tmp_path):
    path = save_profile(profile(name=H100), tmp_path / "p.json")
    with pytest.raises(LlmplanError, match="measured on NVIDIA H100.*not a100"):
        load_profile(str(path), gpu="a100")


def test_no_profile_at_all_is_a_clear_error(tmp_path):
    with pytest.raises(LlmplanError, match="run `llmplan bench`"):
        load_profile("auto")
    with pytest.raises(LlmplanError, match="no calibration profile at"):
        load_profile(str(tmp_path / "missing.json"))


@pytest.mark.parametrize("content, why", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"schema_version": 1, "kind": "llmplan.law"}), "kind is 'llmplan.law'"),
    (json.dumps({**profile(), "schema_version": 99}), "schema_version 99"),
    (json.dumps({**profile(), "device": {}}), "no device name"),
    (json.dumps({**profile(), "runs": "many"}), "runs must be a list"),
    (json.dumps(profile(fit={"form": "cubic", "coefficients": {}, "params_range": [1, 2]})), "fit is malformed"),
    (json.dumps(profile(fit={"form": "power", "coefficients": {"a": 1}, "params_range": [1, 2]})), "malformed"),
    (json.dumps({**profile(), "overhead_bytes": -5}), "overhead_bytes"),
    (json.dumps(profile(peak=-1)), "peak_flops"),
    (json.dumps(profile(runs=[{"status": "ok", "params": 1e9, "mfu": float("inf")}])), "run's mfu is inf"),
    (json.dumps(profile(runs=[{"status": "ok", "params": "7B"}])), "run's params is '7B'"),
])
def test_corrupt_or_foreign_files_raise_llmplan_error(tmp_path, content, why):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(LlmplanError, match=why):
        load_profile(str(path))


def test_a_corrupt_file_does_not_hide_the_right_profile_in_auto_mode():
    save_profile(profile(name=H100))
    (profiles_dir() / "zzz.json").write_text("{broken")
    assert load_profile("auto", gpu="h100").device_name == H100


def test_auto_without_a_gpu_passes_over_files_that_are_not_calibration_profiles():
    """A distributed bench writes its report beside the profiles; the newest file there is not always one."""
    save_profile(profile(name=H100))
    later = profiles_dir() / "distributed-x.json"
    later.write_text(json.dumps({"schema_version": 1, "kind": "llmplan.bench.distributed"}))
    os.utime(later, (2e9, 2e9))
    assert load_profile("auto").device_name == H100
    (profiles_dir() / "nvidia-h100-80gb-hbm3.json").unlink()
    with pytest.raises(LlmplanError, match="kind is 'llmplan.bench.distributed'"):
        load_profile("auto")


def test_a_folder_or_an_mfu_over_one_is_a_clear_error(tmp_path):
    with pytest.raises(LlmplanError, match="is a folder"):
        load_profile(str(tmp_path))
    p = load_profile(str(save_profile(profile(runs=[{"status": "ok", "params": 1e9, "mfu": 1.7}]),
                                      tmp_path / "p.json")))
    with pytest.raises(LlmplanError, match="peak FLOP/s is too low"):
        p.mfu_at(1e9)


def test_save_refuses_what_it_could_not_read_back(tmp_path):
    with pytest.raises(LlmplanError):
        save_profile({**profile(), "kind": "other"}, tmp_path / "p.json")
    assert not (tmp_path / "p.json").exists()


def test_mfu_from_the_fit_divided_by_the_peak(tmp_path):
    p = load_profile(str(save_profile(profile(fit=POWER), tmp_path / "p.json")))
    assert p.mfu_at(1e8) == pytest.approx(1e12 * 1e8**0.25 / 989.4e12)
    # The power law is held at its value at the largest measured size: no extrapolated growth.
    assert p.mfu_at(7e10) == pytest.approx(p.mfu_at(1e9))
    assert p.mfu_at(1e3) == pytest.approx(p.mfu_at(1e6))
    s = load_profile(str(save_profile(profile(fit=SATURATING), tmp_path / "s.json")))
    assert s.mfu_at(1e8) == pytest.approx(3e14 / 989.4e12)
    assert s.mfu_at(1e8) < s.mfu_at(1e10) < 6e14 / 989.4e12  # levels off at f_max


def test_mfu_without_fit_uses_the_nearest_run_and_none_without_peak(tmp_path):
    p = load_profile(str(save_profile(profile(), tmp_path / "p.json")))
    assert p.mfu_at(2e8) == 0.30 and p.mfu_at(7e9) == 0.45  # nearest in log size; the oom run is ignored
    cpu = load_profile(str(save_profile(profile(name="CPU: test", peak=None, fit=POWER), tmp_path / "c.json")))
    assert cpu.mfu_at(1e8) is None


def test_evaluate_fit_rejects_unknown_forms():
    with pytest.raises(LlmplanError, match="unknown fit form"):
        evaluate_fit({"form": "cubic", "coefficients": {}, "params_range": [1, 2]}, 1.5)


def test_saving_replaces_atomically(tmp_path):
    target = tmp_path / "p.json"
    save_profile(profile(overhead=1), target)
    save_profile(profile(overhead=2), target)
    assert json.loads(target.read_text())["overhead_bytes"] == 2
    assert sorted(os.listdir(tmp_path)) == ["p.json"]


def test_calibration_imports_no_heavy_library():
    import subprocess
    import sys

    code = ("import sys, llmplan.calibration as c; c.load_profile.__name__; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'scipy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
