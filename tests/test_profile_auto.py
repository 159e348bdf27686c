"""--profile auto: which of a device's saved profiles the commands read."""

import json
import os

from llmplan.calibration import PROFILE_KIND, load_profile, profiles_dir, save_profile


def _profile(**extra):
    return {"schema_version": 1, "kind": PROFILE_KIND, "device": {"name": "CPU: test", "peak_flops": None},
            "runs": [], "fit": None, **extra}

def test_a_newer_model_profile_does_not_hide_the_calibration_from_profile_auto(cli):
    """`bench --model` saves a profile of its own beside the device's; the step-time commands still find the
    calibration curves under --profile auto, and the MFU path still reads the newest profile."""
    device = {"name": "H100-SXM", "peak_flops": 989.4e12}
    curve = [{"m": 4096, "n": 4096, "k": 4096, "dtype": "bf16", "flops_per_s": 5e14}]
    calibrated = save_profile(_profile(device=device, gemm_curve=curve, hbm_bytes_per_s=3e12),
                              profiles_dir() / "h100-sxm.json")
    model = save_profile(_profile(device=device, runs=[{"status": "ok", "params": 1e9, "achieved_flops": 4e14}]),
                         profiles_dir() / "h100-sxm--llama-3-2-1b.json")
    os.utime(calibrated, (1e9, 1e9))  # the calibration is the older file
    assert load_profile("auto", gpu="H100-SXM").path == str(model)
    r = cli("plan", "--model", "llama-3.2-1b", "--gpu", "h100", "--gpus", "8", "--seq", "2048", "--profile", "auto", "--json")
    assert r.code == 0, r.stderr
    assert str(calibrated) in json.dumps(r.json()) and "faster than measured" not in r.stderr
    s = cli("serve", "--model", "llama-3.2-1b", "--gpu", "h100", "--input-tokens", "1000", "--output-tokens", "100",
            "--concurrency", "4", "--profile", "auto", "--json")
    assert s.code == 0 and str(calibrated) in json.dumps(s.json()), s.stderr
