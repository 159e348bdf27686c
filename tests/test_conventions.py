"""One name for one thing across commands, tables that fit 80 columns, labels that say what they mean (issue 15)."""

import pytest


def test_memory_and_compute_both_take_gpus_and_dp(cli):
    by_dp = cli("memory", "--model", "llama-2-7b", "--zero", "3", "--dp", "8", "--json").json()
    by_gpus = cli("memory", "--model", "llama-2-7b", "--zero", "3", "--gpus", "8", "--json").json()
    assert by_dp["total_bytes"] == by_gpus["total_bytes"] and by_gpus["config"]["gpus"] == 8
    with_tp = cli("memory", "--model", "llama-2-7b", "--zero", "3", "--gpus", "8", "--tp", "2", "--json").json()
    assert with_tp["config"]["dp"] == 4 and with_tp["config"]["gpus"] == 8
    r = cli("memory", "--model", "llama-2-7b", "--gpus", "8", "--dp", "2")
    assert r.code == 2 and "disagree" in r.stderr
    a = cli("compute", "--model", "llama-2-7b", "--tokens", "1T", "--gpu", "h100", "--dp", "8", "--json").json()
    b = cli("compute", "--model", "llama-2-7b", "--tokens", "1T", "--gpu", "h100", "--gpus", "8", "--json").json()
    assert a["gpus"] == b["gpus"] == 8 and a["wall_seconds"] == b["wall_seconds"]


def test_the_json_key_is_gpus_in_every_mode(cli):
    serve = cli("serve", "--model", "llama-2-7b", "--gpu", "h100", "--gpus", "2", "-i", "500", "-o", "100",
                "--concurrency", "4", "--json")
    assert serve.code == 0 and serve.json()["gpus"] == 2 and "n_gpus" not in serve.json()


def test_chinchilla_takes_a_model_like_the_other_commands(cli):
    by_model = cli("chinchilla", "--model", "llama-2-7b", "--tokens", "2T", "--json")
    by_params = cli("chinchilla", "--params", "6738415616", "--tokens", "2T", "--json")
    assert by_model.code == 0 and by_model.json() == by_params.json()
    r = cli("chinchilla", "--model", "llama-2-7b", "--params", "7B")
    assert r.code == 2 and "not both" in r.stderr


@pytest.mark.parametrize("args", [
    ("chinchilla", "--params", "175B", "--tokens", "300B"),
    ("chinchilla", "--flops", "1e19..1e26"),
    ("chinchilla", "--params", "7B", "--inference-tokens", "2T"),
    ("chinchilla", "--flops", "1e22", "--unique-tokens", "100B"),
    ("chinchilla", "--flops", "5.76e23"),
    ("compute", "--model", "llama-2-7b", "--tokens", "2T", "--gpu", "h100", "--gpus", "256", "--price", "2.5"),
    ("memory", "--model", "llama-2-7b", "--gpu", "h100"),
    ("models",),
])
def test_tables_fit_80_columns_without_cutting_a_value(cli, monkeypatch, args):
    monkeypatch.setenv("COLUMNS", "80")
    r = cli(*args)
    assert r.code == 0, r.stderr
    assert "…" not in r.stdout, r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80


def test_the_diagnosis_keeps_its_verdict_whole_at_80_columns(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = cli("chinchilla", "--params", "175B", "--tokens", "300B").stdout
    assert "undertrained" in out and "nats per token" in out


def test_a_bare_count_is_labelled_inferred_and_a_preset_exact(cli):
    assert "Parameters (inferred" in cli("models", "--params", "7B").stdout
    assert "Parameters (exact)" in cli("models", "llama-2-7b").stdout


def test_qlora_names_its_nf4_weights_and_compute_explains_effective_mfu(cli):
    assert "NF4 weights" in cli("memory", "--model", "llama-2-7b", "--mode", "qlora").stdout
    r = cli("compute", "--model", "llama-2-7b", "--tokens", "1T", "--gpu", "h100", "--recompute", "full",
            "--mfu", "0.4")  # the MFU path: without --mfu the step-time model times the recompute itself
    assert "effective MFU" in r.stdout and "model FLOPs / (time x" in " ".join(r.stdout.split())


def test_flags_show_no_bool_metavar_in_help(cli):
    from typer.main import get_command

    from llmplan.cli import app

    for name in ["", *get_command(app).list_commands(None)]:
        r = cli(*([name] if name else []), "--help")
        assert r.code == 0 and "<bool>" not in r.stdout, name
