"""`llmplan chinchilla` end to end: JSON shape, the four questions, law files, plots and bad input."""

import json

import pytest

FIELDS = {"law", "params", "tokens", "flops", "tokens_per_param", "loss", "laws"}


def rel(a, b):
    return abs(a - b) / abs(b)


def test_budget_json_follows_the_chosen_law(cli):
    r = cli("chinchilla", "--flops", "5.76e23", "--json")
    assert r.code == 0, r.stderr
    out = r.json()
    assert FIELDS <= set(out) and out["schema_version"] == 1
    assert out["law"] == "rule20" and out["loss"] is None
    assert rel(out["params"], 69.3e9) < 0.01  # Hoffmann et al. 2022: Chinchilla's budget -> ~70B
    assert {"rule20", "hoffmann", "epoch", "kaplan"} <= set(out["laws"])
    for fields in out["laws"].values():
        assert {"params", "tokens", "flops", "tokens_per_param", "loss"} <= set(fields)
    h = cli("chinchilla", "--flops", "5.76e23", "--law", "hoffmann", "--json").json()
    assert h["law"] == "hoffmann" and rel(h["params"], 40.4e9) < 0.01 and h["loss"] > 1.69
    assert h["params"] == h["laws"]["hoffmann"]["params"]


def test_size_to_data(cli):
    out = cli("chinchilla", "--params", "70B", "--json").json()
    assert rel(out["tokens"], 1.4e12) < 1e-9  # 70B -> 1.4T under the 20 tokens/param rule
    assert rel(out["flops"], 6 * 70e9 * 1.4e12) < 1e-9
    assert out["tokens_per_param"] == pytest.approx(20)


def test_pf_days_and_gpu_budgets(cli):
    out = cli("chinchilla", "--pf-days", "3640", "--json").json()  # GPT-3's 3.64e3 PF/s-days (Brown et al.)
    assert rel(out["flops"], 3640 * 8.64e19) < 1e-9
    gpu = cli("chinchilla", "--gpu", "h100", "--gpus", "1000", "--days", "10", "--mfu", "0.5", "--json")
    assert gpu.code == 0, gpu.stderr
    body = gpu.json()
    assert rel(body["flops"], 1000 * 989e12 * 0.5 * 10 * 86400) < 0.01  # H100 SXM dense bf16 peak
    assert body["budget"]["gpus"] == 1000


def test_diagnosis_gpt3_gopher_chinchilla(cli):
    gpt3 = cli("chinchilla", "--params", "175B", "--tokens", "300B", "--json").json()
    assert gpt3["verdict"] == "undertrained" and gpt3["tokens_per_param"] == pytest.approx(300 / 175)
    assert gpt3["laws"]["hoffmann"]["loss"] > gpt3["laws"]["hoffmann"]["compute_optimal"]["loss"]
    gopher = cli("chinchilla", "--params", "280B", "--tokens", "300B", "--json").json()
    assert gopher["verdict"] == "undertrained"
    chin = cli("chinchilla", "--params", "70B", "--tokens", "1.4T", "--json").json()
    assert chin["verdict"] == "near compute-optimal"
    assert chin["laws"]["hoffmann"]["loss"] < gopher["laws"]["hoffmann"]["loss"]
    text = cli("chinchilla", "--params", "175B", "--tokens", "300B")
    assert text.code == 0 and "undertrained" in text.stdout


def test_frontier_table_and_json(cli):
    out = cli("chinchilla", "--flops", "1e19..1e26", "--json").json()
    assert len(out["flops"]) == 8 and out["flops"][0] == 1e19 and out["flops"][-1] == 1e26
    assert all(b > a for a, b in zip(out["params"], out["params"][1:]))
    assert set(out["laws"]["hoffmann"]) >= {"flops", "params", "tokens", "tokens_per_param", "loss"}
    text = cli("chinchilla", "--flops", "1e19..1e26")
    assert text.code == 0 and "1.00e26" in text.stdout


def test_frontier_plot_writes_a_png(cli, tmp_path):
    path = tmp_path / "frontier.png"
    r = cli("chinchilla", "--flops", "1e19..1e26", "--plot", str(path), "--json")
    assert r.code == 0, r.stderr
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert r.json()["plot"] == str(path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".frontier-")]  # no temp file left


def test_law_file_via_cli(cli, tmp_path):
    path = tmp_path / "law.json"
    path.write_text(json.dumps({"schema_version": 1, "kind": "llmplan.law", "form": "E + A/N^alpha + B/D^beta",
                                "name": "fitted", "source": "test", "E": 1.8172, "A": 482.01, "B": 2085.43,
                                "alpha": 0.3478, "beta": 0.3658}))
    out = cli("chinchilla", "--flops", "1e23", "--law", str(path), "--json").json()
    epoch = cli("chinchilla", "--flops", "1e23", "--law", "epoch", "--json").json()
    assert out["law"] == "fitted" and "fitted" in out["laws"]
    assert rel(out["params"], epoch["params"]) < 1e-12


@pytest.mark.parametrize("argv", [
    ["--flops", "-1e23"],
    ["--flops", "0"],
    ["--flops", "1e23", "--law", "nonsense"],
    ["--tokens", "300B"],
    ["--flops", "1e26..1e19"],
    ["--flops", "1e23", "--plot", "x.png"],
    ["--flops", "1e19..1e26", "--plot", "x.txt"],
    ["--flops", "1e23", "--pf-days", "10"],
    ["--flops", "1e23", "--params", "7B"],
    ["--days", "10"],
    ["--gpu", "h100"],
    ["--gpu", "nonsense-gpu", "--days", "3"],
    ["--gpu", "h100", "--days", "-1"],
    ["--gpu", "h100", "--days", "3", "--gpus", "0"],
    ["--gpu", "h100", "--days", "3", "--mfu", "1.5"],
    ["--loss", "2.0"],
    ["--inference-tokens", "1T"],
    ["--params", "7B", "--inference-tokens", "1T", "--loss", "2.0"],
    ["--loss", "1.0", "--inference-tokens", "1T", "--law", "hoffmann"],
    ["--params", "7B", "--inference-tokens", "1T", "--law", "rule20"],
    ["--unique-tokens", "100B"],
    ["--flops", "1e22", "--unique-tokens", "-5"],
    ["--params", "nonsense"],
    ["--gpu", "h100", "--days", "3", "--params", "7B"],  # the assumed-MFU note is held back: one line only
    ["--flops", "1e23", "--per-decade", "0"],
    [],
])
def test_bad_input_exits_2_with_one_line(cli, argv):
    r = cli("chinchilla", *argv)
    assert r.code == 2
    assert r.stderr.strip().startswith("llmplan: error:") and len(r.stderr.strip().splitlines()) == 1
    assert r.stdout == ""


def test_a_missing_law_file_is_named(cli, tmp_path):
    r = cli("chinchilla", "--flops", "1e23", "--law", str(tmp_path / "law.json"))
    assert r.code == 2 and "no law file at" in r.stderr and r.stdout == ""


def test_bad_law_file_exits_2(cli, tmp_path):
    path = tmp_path / "law.json"
    path.write_text(json.dumps({"kind": "llmplan.law", "E": 1.7, "A": 400, "B": 400, "alpha": 0.3}))
    r = cli("chinchilla", "--flops", "1e23", "--law", str(path))
    assert r.code == 2 and "beta" in r.stderr


def test_a_gpu_without_bf16_budgets_at_its_fp16_peak(cli):
    r = cli("chinchilla", "--gpu", "v100", "--gpus", "8", "--days", "30", "--json")
    assert r.code == 0, r.stderr
    out = r.json()
    assert out["budget"]["dtype"] == "fp16"
    assert rel(out["flops"], 8 * 125e12 * 0.4 * 30 * 86_400) < 1e-9  # V100 fp16 tensor peak, 125 TFLOP/s


def test_tokens_per_param_read_plainly(cli):
    text = cli("chinchilla", "--params", "8B", "--tokens", "15T").stdout  # Llama 3 8B: 15T tokens
    assert "1,875 tokens/param" in text and "e+03" not in text


def test_every_option_the_specification_names_exists():
    import typer

    from llmplan.cli import app

    group = typer.main.get_command(app)
    names = {name for p in group.get_command(None, "chinchilla").params for name in p.opts}
    for option in ("--flops", "--pf-days", "--gpu", "--gpus", "--days", "--mfu", "--params", "--tokens", "--plot",
                   "--law", "--inference-tokens", "--loss", "--unique-tokens", "--json"):
        assert option in names, option


def test_a_law_name_with_brackets_is_printed_as_written(cli, tmp_path):
    # rich would read "[run 3]" as markup and drop it from the table
    path = tmp_path / "law.json"
    path.write_text(json.dumps({"schema_version": 1, "kind": "llmplan.law", "name": "ours [run 3]",
                                "source": "fit [bench]", "E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478,
                                "beta": 0.3658}))
    r = cli("chinchilla", "--flops", "1e23", "--law", str(path))
    assert r.code == 0, r.stderr
    assert "[run 3]" in r.stdout and "[bench]" in r.stdout
