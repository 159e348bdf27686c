"""--params with --arch: a bare count works in every command that takes a model, keeps the count exactly, and shows
the inferred shape as an assumption; counts the rule cannot shape are refused."""

import pytest

from llmplan.models import count_params, spec_from_params
from llmplan.units import parse_int_count
from llmplan.errors import LlmplanError

ARCHS = ("decoder", "encoder", "encoder-decoder")


@pytest.mark.parametrize("arch", ARCHS)
def test_bare_count_across_commands(cli, arch):
    models = cli("models", "--params", "3B", "--arch", arch, "--json").json()
    assert models["params"] == 3_000_000_000 == sum(models["breakdown"].values()) and models["arch"] == arch
    assert "inferred from the bare count" in models["assumptions"][0]
    for mode in ("train", "qlora", "infer"):
        mem = cli("memory", "--params", "3B", "--arch", arch, "--mode", mode, "--seq", "1024", "--json").json()
        assert mem["params"] == 3_000_000_000 and "inferred from the bare count" in mem["assumptions"][0]
        assert mem["total_bytes"] == sum(mem["breakdown"].values()) > 0
        if mode == "infer":
            assert (mem["breakdown"]["kv_cache"] == 0) == (arch == "encoder")
    comp = cli("compute", "--params", "3B", "--arch", arch, "--tokens", "100B", "--json").json()
    assert comp["params"] == 3_000_000_000 and comp["arch"] == arch
    # the GPT-3 paper's Table D.1 convention: half the parameters act on each token of an encoder-decoder
    assert comp["params_per_token"] == (1.5e9 if arch == "encoder-decoder" else 3e9)


def test_encoder_inference_says_it_has_no_kv_cache(cli):
    mem = cli("memory", "--model", "bert-large", "--mode", "infer", "--json").json()
    assert any("no KV cache" in a for a in mem["assumptions"])
    assert not any(a.startswith("KV cache in") for a in mem["assumptions"])


def test_encoder_decoder_shape_note_names_both_stacks():
    spec = spec_from_params(3e9, "encoder-decoder")
    assert f"{spec.encoder_layers} encoder + {spec.layers} decoder layers" in spec.assumptions[0]


@pytest.mark.parametrize("arch", ARCHS)
def test_counts_outside_the_rule_are_refused(cli, arch):
    for count in ("2M", "1e30"):
        r = cli("models", "--params", count, "--arch", arch)
        assert r.code == 2 and r.stdout == "" and ("give --model" in r.stderr or "at most 1e+16" in r.stderr)
    spec = spec_from_params(9e6, arch)  # just above the narrowest shape: still exact
    assert count_params(spec).total == 9_000_000


def test_whole_numbers_only_where_a_count_must_be_whole(cli):
    assert parse_int_count("1.5k") == 1500 and parse_int_count("1.1k") == 1100 and parse_int_count("6.7e9") == 6.7e9
    with pytest.raises(LlmplanError, match="whole number"):
        parse_int_count("2.5", "--seq")
    r = cli("memory", "--model", "llama-2-7b", "--batch", "1.5")
    assert r.code == 2 and r.stdout == "" and r.stderr.startswith("llmplan: error: --batch must be a whole number")


def test_fine_tuned_variant_takes_its_presets_shape_and_says_so(cli):
    d = cli("models", "meta-llama/Llama-2-7b-chat-hf", "--json").json()
    assert d["name"] == "llama-2-7b" and d["params"] == 6_738_415_616
    assert "taken as preset llama-2-7b" in d["assumptions"][-1]
    assert cli("models", "llama-3-8b-instruct", "--json").json()["name"] == "llama-3-8b"
    r = cli("models", "meta-llama/Llama-9-7b-hf")
    assert r.code == 2 and "unknown model" in r.stderr
