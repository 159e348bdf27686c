"""`llmplan memory` on the command line: JSON keys, tables with labelled units, fits, profiles, bad input."""

import json

import pytest

KEYS = {"weights", "gradients", "optimizer", "activations", "kv_cache", "state", "overhead"}


def test_json_keys_and_integers(cli):
    data = cli("memory", "--model", "llama-2-7b", "--seq", "2048", "--json").json()
    assert data["schema_version"] == 1
    assert set(data["breakdown"]) == KEYS
    assert all(isinstance(v, int) and v >= 0 for v in data["breakdown"].values())
    assert data["total_bytes"] == sum(data["breakdown"].values())
    assert data["params"] == 6_738_415_616 and data["cpu_bytes"] == 0
    assert data["assumptions"] and "fits" not in data
    assert data["breakdown"]["kv_cache"] == 0


def test_gpu_fit_and_gpus_needed(cli):
    data = cli("memory", "--model", "llama-2-7b", "--seq", "4096", "--zero", "3", "--dp", "8", "--gpu", "h100",
               "--json").json()
    assert data["fits"] is True and data["gpus_needed"] >= 1
    assert data["usable_bytes"] == int(data["gpu_memory_bytes"] * 0.95)
    big = cli("memory", "--model", "llama-2-70b", "--seq", "4096", "--gpu", "a100-80gb", "--json").json()
    assert big["fits"] is False and "--zero 3" in big["suggestion"]
    assert big["gpus_needed"] == min(r["gpus"] for r in big["remedies"])  # the cheapest remedy, not null
    assert big["spare_bytes"] == big["usable_bytes"] - big["total_bytes"] < 0
    inf = cli("memory", "--model", "llama-2-70b", "--mode", "infer", "--seq", "4096", "--gpu", "h100",
              "--json").json()
    assert inf["fits"] is False and inf["gpus_needed"] == 2
    room = cli("memory", "--model", "llama-2-7b", "--mode", "infer", "--gpu", "h100", "--headroom", "2GiB",
               "--json").json()
    assert room["usable_bytes"] == room["gpu_memory_bytes"] - 2 * 2**30


def test_table_labels_units(cli):
    r = cli("memory", "--model", "llama-2-7b", "--gpu", "h100")
    assert r.code == 0 and "GiB" in r.stdout and " GB" not in r.stdout
    assert "weights in int4" in r.stdout and "rule of thumb" in r.stdout.lower()
    d = cli("memory", "--params", "7.5B", "--dtype", "fp16", "--dp", "64", "--zero", "3", "--decimal")
    table = [ln for ln in d.stdout.splitlines() if "│" in ln]
    assert d.code == 0 and any(" GB" in ln for ln in table) and not any("GiB" in ln for ln in table)


def test_offload_reports_cpu_memory(cli):
    data = cli("memory", "--model", "llama-2-7b", "--zero", "2", "--dp", "4", "--offload", "optimizer",
               "--json").json()
    assert data["cpu_bytes"] > 0 and data["breakdown"]["optimizer"] == 0


def test_lora_targets_option(cli):
    qv = cli("memory", "--model", "llama-2-7b", "--mode", "lora", "--lora-targets", "q_proj,v_proj",
             "--lora-rank", "8", "--json").json()
    assert qv["trainable_params"] == 32 * 2 * 8 * 8192
    assert qv["config"]["lora_targets"] == ["q", "v"]


def _profile(path, overhead):
    path.write_text(json.dumps({"schema_version": 1, "kind": "llmplan.profile", "created": "2026-01-01",
                                "device": {"name": "NVIDIA H100 80GB HBM3", "kind": "cuda", "peak_flops": 989.4e12},
                                "runs": [], "fit": None, "overhead_bytes": overhead,
                                "overhead_method": "reserved minus allocated plus context"}))


def test_profile_overhead(cli, tmp_path):
    prof = tmp_path / "h100.json"
    _profile(prof, 777_000_000)
    data = cli("memory", "--model", "llama-2-7b", "--profile", str(prof), "--gpu", "h100", "--json").json()
    assert data["breakdown"]["overhead"] == 777_000_000 and data["profile"] == str(prof)
    assert any("measured" in a for a in data["assumptions"])
    r = cli("memory", "--model", "llama-2-7b", "--profile", str(prof), "--gpu", "a100-80gb")
    assert r.code == 2 and "H100" in r.stderr
    prof.write_text("{broken")
    assert cli("memory", "--model", "llama-2-7b", "--profile", str(prof)).code == 2


def test_profile_auto(cli, tmp_path, monkeypatch):
    from llmplan.calibration import default_profile_path

    path = default_profile_path("NVIDIA H100 80GB HBM3")
    path.parent.mkdir(parents=True, exist_ok=True)
    _profile(path, 555_000_000)
    data = cli("memory", "--model", "llama-2-7b", "--profile", "auto", "--gpu", "h100", "--json").json()
    assert data["breakdown"]["overhead"] == 555_000_000


@pytest.mark.parametrize("args", [
    ["--model", "llama-2-7b", "--tp", "3"], ["--model", "llama-2-7b", "--zero", "4"],
    ["--model", "llama-2-7b", "--batch", "0"], ["--model", "llama-2-7b", "--dtype", "int3"],
    ["--model", "llama-2-7b", "--pp", "5"], ["--model", "llama-2-7b", "--seq", "-1"],
    ["--model", "llama-2-7b", "--optimizer", "adam9"], ["--model", "llama-2-7b", "--mode", "pretrain"],
    ["--model", "llama-2-7b", "--fsdp", "--zero", "2"], ["--model", "llama-2-7b", "--headroom", "150%"],
    ["--model", "llama-2-7b", "--lora-targets", "ffn", "--mode", "lora"], ["--model", "no-such-model"],
    ["--model", "llama-2-7b", "--gpu", "nosuchgpu"], ["--model", "llama-2-7b", "--offload", "disk"],
    ["--model", "llama-2-7b", "--mode", "infer", "--zero", "2"], ["--model", "llama-2-7b", "--kv-dtype", "int3"],
    ["--params", "nan"], [],
])
def test_bad_inputs_exit_2_with_one_line(cli, args):
    r = cli("memory", *args)
    assert r.code == 2, (args, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("llmplan: error:"), (args, r.stderr)
    assert r.stdout == ""


def test_help_has_examples(cli):
    r = cli("memory", "--help")
    assert r.code == 0 and "Examples:" in r.stdout


def test_seq_in_k_is_binary_as_context_lengths_are_and_tokens_stay_decimal(cli):
    # "32k context" is 32,768 tokens on model cards (Mistral 7B v0.2: 32768); a token budget stays decimal
    r = cli("memory", "--model", "mistral-7b", "--mode", "infer", "--seq", "32k", "--json")
    assert r.code == 0 and r.json()["config"]["seq"] == 32_768
    assert cli("memory", "--model", "mistral-7b", "--mode", "infer", "--seq", "32000", "--json").json()[
        "config"]["seq"] == 32_000
    c = cli("compute", "--model", "llama-2-7b", "--tokens", "1.4T", "--seq", "4k", "--json")
    assert c.code == 0 and c.json()["tokens"] == 1.4e12


def test_zero_without_dp_is_pointed_out(cli):
    r = cli("memory", "--model", "llama-2-7b", "--fsdp", "--gpu", "h100", "--json")
    assert r.code == 0 and "shards nothing" in " ".join(r.stderr.split())
    assert r.json()["gpus_needed"] > 1  # the smallest dp that fits, though --dp was left at 1


def test_training_defaults_to_a_training_sequence_not_the_full_context(cli):
    """As compute does for its FLOPs: a long-context model trains at 8,192 tokens unless --seq says otherwise;
    inference keeps the full context."""
    train = cli("memory", "--model", "llama-3.1-8b", "--mode", "finetune", "--json")
    assert train.code == 0 and train.json()["config"]["seq"] == 8192
    assert "not llama-3.1-8b's full context of 131,072" in " ".join(train.stderr.split())
    given = cli("memory", "--model", "llama-3.1-8b", "--mode", "finetune", "--seq", "32k", "--json")
    assert given.json()["config"]["seq"] == 32768 and "full context" not in given.stderr
    infer = cli("memory", "--model", "llama-3.1-8b", "--mode", "infer", "--json")
    assert infer.json()["config"]["seq"] == 131072
