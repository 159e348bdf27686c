"""`llmplan compute` end to end: JSON fields, MFU sources, the inverse question, serving, and bad inputs."""

import json

import pytest

from llmplan.models import count_params, get_preset


def test_training_json_fields(cli):
    r = cli("compute", "--model", "llama-2-7b", "--tokens", "2T", "--gpu", "h100", "--gpus", "256",
            "--price", "2.5", "--mfu", "0.4", "--json")
    assert r.code == 0, r.stderr
    out = r.json()
    for key in ("schema_version", "flops", "flops_detailed", "pflops_days", "gpu_hours", "wall_seconds", "mfu",
                "mfu_source", "cost", "energy_kwh", "energy_counted", "device_equivalents", "assumptions"):
        assert key in out, key
    n = count_params(get_preset("llama-2-7b")).total
    assert out["flops"] == 6 * n * 2e12
    assert out["pflops_days"] == pytest.approx(out["flops"] / 8.64e19)
    assert out["mfu"] == 0.4 and out["mfu_source"] == "--mfu"
    assert out["wall_seconds"] == pytest.approx(out["flops_detailed"] / (256 * 989.4e12 * 0.4))
    assert out["cost"] == pytest.approx(2.5 * out["gpu_hours"])
    assert out["gpu_days"] == pytest.approx(out["gpu_hours"] / 24)
    assert out["energy_kwh"] == pytest.approx(700 * 256 * out["wall_seconds"] / 3.6e6)


def test_gpt3_175b_pf_days(cli):
    out = cli("compute", "--model", "gpt3-175b", "--tokens", "300B", "--json").json()
    assert round(out["pflops_days"], -1) == 3640  # Table D.1: 3.64e3
    assert "gpu_hours" not in out  # no GPU given


def test_t5_rule_on_the_command_line(cli):
    out = cli("compute", "--model", "t5-11b", "--tokens", "1T", "--json").json()
    assert out["flops"] == 3 * out["params"] * 1e12
    assert out["pflops_days"] == pytest.approx(392.5, abs=0.5)  # 11.3 B exact parameters (the table rounds to 11B)


def test_table_output_mentions_units_and_assumptions(cli):
    r = cli("compute", "--model", "gpt3-175b", "--tokens", "300B", "--gpu", "a100", "--gpus", "1024")
    assert r.code == 0
    for text in ("PF/s-days", "MFU", "GPU-hours", "assumption", "3.2 A100"):
        assert text in r.stdout, text


def test_round_trip_budget_to_time(cli):
    budget = cli("compute", "--model", "llama-7b", "--gpu", "h100", "--gpus", "8", "--days", "3", "--json").json()
    assert budget["flops"] == pytest.approx(8 * 989.4e12 * 0.4 * 3 * 86_400)
    assert budget["optimal_params"] > 0 and budget["law"] == "rule20"
    tokens = budget["model_trainable_tokens"]
    back = cli("compute", "--model", "llama-7b", "--tokens", repr(tokens), "--gpu", "h100", "--gpus", "8",
               "--mfu", "0.4", "--json").json()
    assert back["wall_seconds"] == pytest.approx(3 * 86_400, rel=1e-9)
    assert back["flops_detailed"] == pytest.approx(budget["flops"], rel=1e-9)


def _write_profile(path, mfu_small=0.30, mfu_large=0.45):
    data = {"schema_version": 1, "kind": "llmplan.profile",
            "device": {"name": "NVIDIA H100 80GB HBM3", "peak_flops": 989.4e12},
            "runs": [{"params": 1e8, "mfu": mfu_small}, {"params": 7e9, "mfu": mfu_large}]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_mfu_from_a_profile_path(cli, tmp_path):
    path = _write_profile(tmp_path / "h100.json")
    out = cli("compute", "--model", "llama-7b", "--tokens", "1T", "--gpu", "h100", "--profile", str(path),
              "--json").json()
    assert out["mfu"] == 0.45  # the run nearest 6.7B parameters
    assert "profile" in out["mfu_source"] and str(path) in out["mfu_source"]


def test_mfu_from_the_saved_profile(cli):
    from llmplan.calibration import default_profile_path

    _write_profile(default_profile_path("NVIDIA H100 80GB HBM3"))
    out = cli("compute", "--params", "150M", "--tokens", "3B", "--profile", "auto", "--json").json()
    assert out["gpu"] == "H100-SXM" and out["mfu"] == 0.30
    explicit = cli("compute", "--params", "150M", "--tokens", "3B", "--gpu", "h100", "--profile", "auto",
                   "--mfu", "0.5", "--json").json()
    assert explicit["mfu"] == 0.5 and explicit["mfu_source"] == "--mfu"


def test_budget_with_a_profile_settles_the_size(cli, tmp_path):
    path = _write_profile(tmp_path / "h100.json")
    out = cli("compute", "--gpu", "h100", "--gpus", "8", "--days", "3", "--profile", str(path), "--json").json()
    # The rule-20 size for this budget is a few billion parameters: the 7e9 run's MFU applies, not the 1e8 one's.
    assert out["mfu"] == 0.45 and 1e9 < out["optimal_params"] < 2e10
    assert out["flops"] == pytest.approx(8 * 989.4e12 * 0.45 * 3 * 86_400)


def test_profile_for_another_gpu_is_refused(cli, tmp_path):
    path = _write_profile(tmp_path / "h100.json")
    r = cli("compute", "--model", "llama-7b", "--tokens", "1T", "--gpu", "a100", "--profile", str(path))
    assert r.code == 2 and "not A100" in r.stderr


def test_infer_mode_is_retired_for_serve(cli):
    r = cli("compute", "--model", "llama-2-7b", "--mode", "infer", "--gpu", "h100", "--prompt-tokens", "1000",
            "--new-tokens", "200", "--batch", "4")
    assert r.code == 2 and r.stdout == ""
    message = " ".join(r.stderr.split())
    assert "retired" in message and "llmplan serve --model llama-2-7b --gpu h100" in message
    assert "--input-tokens 1000 --output-tokens 200 --concurrency 4" in message


def test_v100_falls_back_to_fp16(cli):
    r = cli("compute", "--model", "gpt3-125m", "--tokens", "300B", "--gpu", "v100", "--json")
    assert r.code == 0 and r.json()["dtype"] == "fp16" and "fp16" in r.stderr


@pytest.mark.parametrize("args,message", [
    (["--model", "llama-7b", "--tokens", "-5"], "--tokens"),
    (["--model", "llama-7b", "--tokens", "1T", "--gpu", "h100", "--mfu", "1.5"], "MFU"),
    (["--model", "llama-7b", "--tokens", "1T", "--gpu", "nosuchgpu"], "unknown GPU"),
    (["--model", "llama-7b", "--tokens", "1T", "--gpu", "h100", "--gpus", "0"], "--gpus"),
    (["--model", "llama-7b", "--tokens", "1T", "--gpu", "h100", "--price", "-1"], "--price"),
    (["--model", "llama-7b", "--tokens", "1T", "--gpu", "h100", "--pue", "0.5"], "--pue"),
    (["--model", "llama-7b", "--tokens", "1T", "--recompute", "sometimes"], "recompute"),
    (["--model", "llama-7b", "--tokens", "1T", "--gpu", "v100", "--dtype", "bf16"], "bf16"),
    (["--model", "llama-7b"], "tokens"),
    (["--tokens", "1T"], "model"),
    (["--gpus", "8", "--days", "3"], "--gpu"),
    (["--model", "llama-7b", "--tokens", "1T", "--gpu", "h100", "--days", "3"], "not both"),
    (["--model", "llama-7b", "--gpu", "v100"], "tokens"),  # the fp16 note is held back: one line only
    (["--model", "llama-7b", "--tokens", "1T", "--gpu", "h100", "--profile", "/no/such/profile.json"], "profile"),
    (["--model", "llama-7b", "--tokens", "1T", "--gpu", "h100", "--gpus", "1.5"], "whole number"),
    (["--model", "llama-7b", "--tokens", "1T", "--gpu", "h100", "--dtype", "int4"], "training format"),
    (["--gpu", "h100", "--days", "3", "--dtype", "int8"], "training format"),
    (["--model", "llama-7b", "--tokens", "1T", "--law", "hoffmann"], "--days"),
    (["--gpu", "h100", "--days", "3", "--law", "nonsense"], "unknown law"),
])
def test_bad_inputs_exit_2_with_one_line(cli, args, message):
    r = cli("compute", *args)
    assert r.code == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmplan: error:") and message in lines[0], r.stderr


def _write_cpu_profile(path, peak=1e12):
    """A profile as `llmplan bench --device cpu --peak-tflops 1` writes it: a device outside the GPU catalog."""
    data = {"schema_version": 1, "kind": "llmplan.profile",
            "device": {"name": "CPU: Example 64-Core", "kind": "cpu", "dtype": "fp32", "peak_flops": peak,
                       "memory_bytes": 64 * 2**30},
            "runs": [{"params": 1e6, "mfu": 0.02}, {"params": 1e7, "mfu": 0.05}]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_a_cpu_profile_plans_on_its_own_device(cli, tmp_path):
    path = _write_cpu_profile(tmp_path / "cpu.json")
    r = cli("compute", "--params", "10M", "--tokens", "1B", "--profile", str(path), "--json")
    assert r.code == 0, r.stderr
    out = r.json()
    assert out["gpu"] == "CPU: Example 64-Core" and out["dtype"] == "fp32"
    assert out["mfu"] == 0.05 and str(path) in out["mfu_source"]
    assert out["wall_seconds"] == pytest.approx(out["flops_detailed"] / (1e12 * 0.05))
    assert out["energy_kwh"] is None  # no power figure for a device known only from its profile
    assert "fp32" in r.stderr  # says which peak it used


def test_profile_mfu_carried_beyond_the_measured_sizes_is_said(cli, tmp_path):
    path = _write_cpu_profile(tmp_path / "cpu.json")
    r = cli("compute", "--model", "llama-2-7b", "--tokens", "1T", "--profile", str(path), "--json")
    assert r.code == 0 and "MFU is carried to 6.74 B" in " ".join(r.stderr.split())


def test_the_mfu_source_shows_in_the_table(cli, tmp_path):
    # rich would read "[default ...]" or "[profile ...]" as markup and drop it
    default = cli("compute", "--model", "llama-7b", "--tokens", "1T", "--gpu", "h100")
    assert "[step-time model" in default.stdout
    path = _write_cpu_profile(tmp_path / "cpu.json")
    measured = cli("compute", "--params", "10M", "--tokens", "1B", "--profile", str(path))
    assert "[profile" in measured.stdout


def test_budget_with_a_price_gives_cost_and_energy(cli):
    out = cli("compute", "--gpu", "h100", "--gpus", "512", "--days", "30", "--mfu", "0.45", "--price", "2",
              "--json").json()
    assert out["gpu_hours"] == pytest.approx(512 * 30 * 24)
    assert out["cost"] == pytest.approx(2 * 512 * 30 * 24)
    assert out["energy_kwh"] == pytest.approx(700 * 512 * 30 * 24 / 1000)
    assert out["wall_seconds"] == pytest.approx(30 * 86_400)
    text = cli("compute", "--gpu", "h100", "--gpus", "512", "--days", "30", "--price", "2")
    assert "737,280" in text.stdout and "GPU-days" in text.stdout


def test_a_sequence_longer_than_the_context_is_said(cli):
    r = cli("compute", "--model", "llama-7b", "--tokens", "1T", "--seq", "8192", "--json")
    assert r.code == 0 and r.json()["seq"] == 8192
    assert "longer than llama-7b's context of 2,048" in " ".join(r.stderr.split())


def _option_names(command: str) -> set[str]:
    import typer

    from llmplan.cli import app

    group = typer.main.get_command(app)
    return {name for p in group.get_command(None, command).params for name in p.opts}


def test_every_option_the_specification_names_exists():
    names = _option_names("compute")
    for option in ("--model", "--params", "--arch", "--tokens", "--gpu", "--gpus", "--mfu", "--profile", "--price",
                   "--recompute", "--dtype", "--days", "--mode", "--prompt-tokens", "--new-tokens", "--batch",
                   "--json"):
        assert option in names, option


def test_long_context_models_are_planned_at_the_pretraining_length(cli):
    # Llama 3.1 8B: 128K context, but pretrained at 8,192 tokens (Dubey et al. 2024, section 3.4). Attention at the
    # full context would multiply the detailed count by 5.
    r = cli("compute", "--model", "llama-3.1-8b", "--tokens", "1T", "--json")
    assert r.code == 0 and r.json()["seq"] == 8192 and r.json()["detailed_to_6nd_ratio"] < 1.3
    assert "8,192" in r.stderr
    full = cli("compute", "--model", "llama-3.1-8b", "--tokens", "1T", "--seq", "131072", "--json").json()
    assert full["seq"] == 131072 and full["detailed_to_6nd_ratio"] > 5
    short = cli("compute", "--model", "llama-2-7b", "--tokens", "1T", "--json")
    assert short.json()["seq"] == 4096 and short.stderr == ""  # its own context, no note


def test_a_profile_mfu_applied_to_another_peak_is_warned(cli, tmp_path):
    path = _write_profile(tmp_path / "h100.json")  # measured against the bf16 peak
    r = cli("compute", "--model", "llama-7b", "--tokens", "1T", "--gpu", "h100", "--profile", str(path),
            "--dtype", "fp8", "--json")
    assert r.code == 0 and r.json()["mfu"] == 0.45
    assert "989.4 TFLOP/s" in r.stderr and "fp8" in r.stderr
