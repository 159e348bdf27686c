def test_version(cli):
    r = cli("--version")
    assert r.code == 0 and r.stdout.startswith("llmplan ")


def test_models_lists_presets_json(cli):
    r = cli("models", "--json")
    assert r.code == 0
    data = r.json()
    assert data["schema_version"] == 1
    names = {m["name"] for m in data["models"]}
    assert {"gpt3-175b", "llama-7b"} <= names


def test_models_one_json_keys(cli):
    data = cli("models", "Llama-7B", "--json").json()
    assert data["params"] == 6_738_415_616
    assert data["arch"] == "decoder"
    assert data["params_active"] == data["params"]
    assert data["params_non_embedding"] == 6_738_415_616 - 2 * 32000 * 4096


def test_bare_params_shows_assumption(cli):
    data = cli("models", "--params", "7B", "--json").json()
    assert data["params"] == 7_000_000_000
    assert data["assumptions"] and "inferred" in data["assumptions"][0]
    r = cli("models", "--params", "7B")
    assert "assumption" in r.stdout


def test_bad_inputs_exit_2_with_one_line(cli):
    for args in (["models", "no-such-model"], ["models", "--params", "-5"], ["models", "--params", "nan"],
                 ["models", "--bogus"], ["hardware", "nosuchgpu"], ["models", "--params", "7B", "--arch", "rnn"]):
        r = cli(*args)
        assert r.code == 2, args
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("llmplan: error:"), (args, r.stderr)
        assert "Traceback" not in r.stderr and r.stdout == ""


def test_missing_and_malformed_config(cli, tmp_path):
    r = cli("models", str(tmp_path / "absent" / "config.json"))
    assert r.code == 2
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    r = cli("models", str(bad))
    assert r.code == 2 and "not valid JSON" in r.stderr
    bad.write_text('{"model_type": "rwkv"}')
    r = cli("models", str(tmp_path))
    assert r.code == 2 and "unsupported model_type" in r.stderr and "llama" in r.stderr


def test_hardware(cli):
    data = cli("hardware", "NVIDIA H100 80GB HBM3", "--json").json()
    assert data["name"] == "H100-SXM"
    assert data["peak_flops"]["bf16"] == 989.4e12
    assert cli("hardware").code == 0
