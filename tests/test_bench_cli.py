"""`llmplan bench` end to end on the CPU: real tiny runs, JSON keys, the saved profile, the plot, errors."""

import json

import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from llmplan.calibration import load_profile  # noqa: E402
from llmplan.cli import app  # noqa: E402

RUN_KEYS = {"params", "batch", "seq", "step_seconds", "tokens_per_second", "achieved_flops", "mfu",
            "peak_bytes_measured", "peak_bytes_predicted"}
FAST = ["--quick", "--device", "cpu", "--steps", "2", "--warmup", "1", "--batch", "1", "--seq", "32"]


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    """One quick three-rung ladder, shared by the tests that read its output."""
    folder = tmp_path_factory.mktemp("bench")
    out, plot = folder / "profile.json", folder / "ladder.png"
    args = ["bench", *FAST, "--max-rungs", "3", "--json", "--out", str(out), "--plot", str(plot)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), out, plot, result.stderr


def test_json_has_the_documented_keys(ladder):
    data, out, plot, _ = ladder
    assert data["schema_version"] == 1
    assert {"name", "kind", "memory_bytes", "peak_flops"} <= set(data["device"])
    assert data["device"]["kind"] == "cpu" and data["device"]["peak_flops"] is None
    assert len(data["runs"]) == 3 and all(RUN_KEYS <= set(r) for r in data["runs"])
    params = [r["params"] for r in data["runs"]]
    assert params == sorted(params) and len(set(params)) == 3
    assert data["fit"]["form"] == "power" and len(data["fit"]["residuals_pct"]) == 3
    assert data["fit"]["holdout"]["params"] == params[-1]
    assert data["profile_path"] == str(out) and data["plot_path"] == str(plot)


def test_progress_and_notes_go_to_stderr_only(ladder):
    data, _, _, stderr = ladder
    assert "CPU figures describe this CPU only" in stderr
    assert data["runs"][0]["name"] in stderr  # one line per finished configuration


def test_the_profile_reads_back_with_every_measurement(ladder):
    data, out, _, _ = ladder
    profile = load_profile(str(out))
    assert profile.device_name == data["device"]["name"]
    assert [r["params"] for r in profile.runs] == [r["params"] for r in data["runs"]]
    assert profile.fit["form"] == data["fit"]["form"]
    assert profile.mfu_at(1e6) is None  # no peak on a CPU
    raw = json.loads(out.read_text())
    assert raw["kind"] == "llmplan.profile" and raw["versions"]["torch"] == torch.__version__ and raw["created"]


def test_the_plot_is_a_png(ladder):
    _, _, plot, _ = ladder
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_save_goes_to_the_data_dir_keyed_by_device(cli, tmp_path):
    r = cli("bench", *FAST, "--max-rungs", "1", "--peak-tflops", "1")
    assert r.code == 0, r.stderr
    assert "Ladder (hWIDTH-lLAYERS)" in r.stdout and "CPU figures describe this CPU only" in r.stdout
    profile = load_profile("auto")
    assert f"calibration profile: {profile.path}\n" in r.stdout  # whole on one line, to copy
    assert str(tmp_path / "llmplan-data" / "profiles") in profile.path
    assert profile.mfu_at(1e6) == pytest.approx(profile.runs[0]["mfu"])  # one run: no fit, the nearest run


def test_model_mode_runs_a_few_layers_and_extrapolates(cli, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 8,
                                  "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
                                  "vocab_size": 256, "max_position_embeddings": 128}))
    r = cli("bench", "--model", str(config), "--layers", "2", "--batch", "1", "--seq", "32", "--device", "cpu",
            "--steps", "2", "--warmup", "1", "--no-save", "--json")
    assert r.code == 0, r.stderr
    data = r.json()
    assert data["mode"] == "model" and [run["layers"] for run in data["runs"]] == [1, 2]
    ext = data["extrapolation"]
    assert ext["full_layers"] == 8 and ext["measured_layers"] == [1, 2] and ext["step_seconds"] > 0
    assert ext["peak_bytes_measured"] > data["runs"][1]["peak_bytes_measured"]
    assert data["profile_path"] is None


@pytest.mark.parametrize("args, message", [
    (["--layers", "2"], "--layers needs --model"),
    (["--batch", "0"], "--batch must be"),
    (["--attention", "paged"], "--attention"),
    (["--recompute", "some"], "--recompute"),
    (["--dtype", "int4"], "unknown dtype"),
    (["--budget-seconds", "-3"], "--budget-seconds"),
    (["--peak-tflops", "0"], "--peak-tflops"),
    (["--device", "tpu"], "unknown device"),
    (["--model", "no-such-model-xyz"], "no-such-model-xyz"),
    (["--model", "gpt2-124m", "--seq", "4096"], "exceeds"),
    (["--model", "gpt2-124m", "--layers", "40"], "has 12 layers"),
    (["--plot", "out.txt"], "--plot"),
    (["--out", "."], "is a folder"),
    (["--out", "p.json", "--no-save"], "not both"),
])
def test_bad_options_are_one_line_errors(cli, args, message):
    r = cli("bench", *args)
    assert r.code == 2
    assert message in r.stderr and r.stderr.count("\n") == 1 and r.stdout == ""


def test_no_gpu_asked_for_cuda_is_a_user_error(cli):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = cli("bench", "--device", "cuda")
    assert r.code == 2 and "no CUDA" in r.stderr


def test_ctrl_c_prints_and_saves_what_was_measured(cli, monkeypatch):
    from llmplan.bench import ladder as ladder_mod

    real = ladder_mod.run_config
    calls = []

    def interrupt_second(cfg, device, on_step=None):
        calls.append(cfg.spec.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(cfg, device, on_step)

    monkeypatch.setattr(ladder_mod, "run_config", interrupt_second)
    r = cli("bench", *FAST, "--json")
    assert r.code == 130 and "interrupted" in r.stderr
    data = r.json()
    assert data["interrupted"] is True and len(data["runs"]) == 1
    assert load_profile(data["profile_path"]).runs[0]["params"] == data["runs"][0]["params"]


def test_a_model_profile_sits_beside_the_ladder_profile_and_answers_for_the_full_model(cli, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 6,
                                  "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 256,
                                  "max_position_embeddings": 64}))
    r = cli("bench", "--model", str(config), "--layers", "2", "--batch", "1", "--seq", "32", "--device", "cpu",
            "--steps", "1", "--warmup", "0", "--peak-tflops", "1", "--json")
    assert r.code == 0, r.stderr
    data = r.json()
    path = data["profile_path"]
    from llmplan.calibration import device_key

    model_key = device_key(data["settings"]["model"])  # a config.json is named after its folder
    assert path.endswith(f"--{model_key}.json") and str(tmp_path / "llmplan-data" / "profiles") in path
    profile = load_profile(path)
    assert load_profile("auto").path == path  # the newest profile of the device
    full = data["extrapolation"]
    extrapolated = [run for run in profile.runs if run.get("extrapolated")]
    assert len(extrapolated) == 1 and extrapolated[0]["params"] == full["full_params"]
    assert profile.mfu_at(full["full_params"]) == pytest.approx(full["mfu"])
