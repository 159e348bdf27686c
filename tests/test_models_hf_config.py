"""Hugging Face config.json reading: llmplan's count equals the count transformers instantiates.

The configs under tests/data/hf_configs are the models' published config.json files; COUNTS.json holds the number of
parameters transformers instantiates for each (established once with benchmarks/establish_hf_counts.py, on the meta
device: AutoModelForCausalLM for decoders, T5ForConditionalGeneration for t5, AutoModel = BertModel/RobertaModel
with pooler for bert and roberta). transformers itself is not needed here.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from llmplan.errors import LlmplanError
from llmplan.models import count_params
from llmplan.models.catalog import get_preset, resolve_model
from llmplan.models.hf_config import READERS, read_hf_config, spec_from_hf_config

CONFIGS = Path(__file__).resolve().parent / "data" / "hf_configs"
COUNTS = json.loads((CONFIGS / "COUNTS.json").read_text())
NAMES = sorted(COUNTS["counts"])


def config(name: str) -> dict:
    return json.loads((CONFIGS / name / "config.json").read_text())


def spec(name: str):
    return read_hf_config(CONFIGS / name / "config.json")


@pytest.mark.parametrize("name", NAMES)
def test_count_equals_transformers(name):
    entry = COUNTS["counts"][name]
    b = count_params(spec(name))
    assert b.total == entry["params"], (name, entry.get("transformers", COUNTS["transformers_version"]))
    if "params_active" in entry:  # MoE: total less the routed experts a token does not use
        assert b.active == entry["params_active"], name
    else:
        assert b.active == b.total, name


def test_every_config_says_where_it_comes_from():
    """Configs added for the per-layer readers record the repository, path and commit they were copied from."""
    sources = json.loads((CONFIGS / "SOURCES.json").read_text())
    for name, entry in COUNTS["counts"].items():
        if name in sources or entry.get("transformers", "").startswith("5."):
            src = sources[name]
            if "source_repo" in src:  # copied from a repository at a commit
                assert src["source_repo"].count("/") == 1 and len(src["source_commit"]) == 40, name
            else:  # a config class's defaults, or a hub config's shape keys written out, with a note saying so
                assert ("source_class_defaults" in src or "source_hub" in src) and src["note"], name


def test_every_config_has_a_count_and_every_count_a_config():
    on_disk = {p.parent.name for p in CONFIGS.glob("*/config.json")}
    assert on_disk == set(NAMES)


def test_every_supported_model_type_is_covered():
    covered = {config(n)["model_type"] for n in NAMES}
    covered |= {config(n)["text_config"].get("model_type") for n in NAMES if "text_config" in config(n)}
    legacy = {"RefinedWebModel", "RefinedWeb"}  # old Falcon names, checked below against the falcon reader
    assert set(READERS) - legacy <= covered


def test_transformers_versions_agree_except_t5_v11_head():
    """transformers 5 ties T5's output head whatever tie_word_embeddings says; T5 v1.1 / FLAN-T5 checkpoints hold a
    separate lm_head (the 4.x count, which llmplan follows). Every other count is the same in both versions, and the
    T5 difference is exactly one vocab x d_model matrix."""
    versions = COUNTS["by_version"]
    assert len(versions) >= 2 and COUNTS["transformers_version"] in versions
    primary = versions[COUNTS["transformers_version"]]["counts"]
    for version, data in versions.items():
        for name, n in data["counts"].items():
            if name not in primary:  # a model type the primary version does not have
                assert COUNTS["counts"][name]["transformers"] == version and COUNTS["counts"][name]["params"] == n
                continue
            c = config(name)
            if (version.startswith("5.") and c["model_type"] in ("t5", "mt5", "umt5")
                    and c.get("tie_word_embeddings") is False):
                spec_ = spec(name)  # the config's sizes, defaults included
                assert primary[name] - n == spec_.vocab * spec_.hidden, name
            else:
                assert n == primary[name], (name, version)


PRESET_OF_CONFIG = {
    "gpt2": "gpt2-124m", "gpt2-medium": "gpt2-355m", "gpt2-large": "gpt2-774m", "gpt2-xl": "gpt2-1.5b",
    "bloom-560m": "bloom-560m", "bloom-1b1": "bloom-1b1", "bloom-1b7": "bloom-1b7", "bloom-3b": "bloom-3b",
    "bloom-7b1": "bloom-7b1", "bloom": "bloom-176b", "llama-7b": "llama-7b", "Llama-2-7b-hf": "llama-2-7b",
    "Llama-2-13b-hf": "llama-2-13b", "Llama-2-70b-hf": "llama-2-70b", "Meta-Llama-3-8B": "llama-3-8b",
    "Meta-Llama-3-70B": "llama-3-70b", "Llama-3.1-8B": "llama-3.1-8b", "Llama-3.1-405B": "llama-3.1-405b",
    "flan-t5-small": "flan-t5-small", "flan-t5-base": "flan-t5-base", "flan-t5-large": "flan-t5-large",
    "flan-t5-xl": "flan-t5-xl", "flan-t5-xxl": "flan-t5-xxl", "t5-11b": "t5-11b",
    "bert-base-uncased": "bert-base", "bert-large-uncased": "bert-large", "Mistral-7B-v0.1": "mistral-7b",
    "Mixtral-8x7B-v0.1": "mixtral-8x7b", "Qwen2-7B": "qwen2-7b", "gemma-7b": "gemma-7b",
    "Phi-3-mini-4k-instruct": "phi-3-mini", "falcon-7b": "falcon-7b", "falcon-40b": "falcon-40b",
    "pythia-1.4b": "pythia-1.4b", "gpt-neox-20b": "gpt-neox-20b", "opt-350m": "opt-350m", "opt-1.3b": "opt-1.3b",
    "Qwen2-0.5B": "qwen2-0.5b", "gemma-2-9b": "gemma-2-9b", "t5-small": "t5-small", "t5-base": "t5-base",
    "t5-large": "t5-large", "t5-3b": "t5-3b", "roberta-base": "roberta-base", "roberta-large": "roberta-large",
}


@pytest.mark.parametrize("config_name", sorted(PRESET_OF_CONFIG))
def test_preset_matches_released_config(config_name):
    """Presets that quote a released checkpoint have that checkpoint's shape: same count, same active count."""
    preset = get_preset(PRESET_OF_CONFIG[config_name])
    from_config = spec(config_name)
    assert count_params(preset).total == COUNTS["counts"][config_name]["params"]
    assert count_params(preset).active == count_params(from_config).active
    for field in ("arch", "layers", "encoder_layers", "hidden", "heads", "n_kv_heads", "d_head", "ffn", "vocab",
                  "mlp", "tied_embeddings", "experts", "experts_per_token", "norms_per_layer", "final_norm",
                  "embed_dim", "position", "qkv_bias", "out_bias", "mlp_bias", "norm", "has_norm_bias",
                  "position_offset", "type_vocab", "pooler", "relative_buckets"):
        assert getattr(preset, field) == getattr(from_config, field), (config_name, field)


# Quirks the readers must get right (each also shows up in the exact counts above) --------------------------------
def test_falcon_layouts():
    f7, f40, rw = spec("falcon-7b"), spec("falcon-40b"), spec("falcon-rw-1b")
    assert (f7.n_kv_heads, f7.norms_per_layer, f7.parallel_layers) == (1, 1, True)  # multi-query, one LayerNorm
    assert (f40.n_kv_heads, f40.norms_per_layer) == (8, 2)  # new_decoder_architecture: ln_attn and ln_mlp
    assert (rw.position, rw.n_kv_heads, rw.norms_per_layer, rw.qkv_bias) == ("alibi", 32, 2, True)


def test_old_refinedweb_keys_read_as_falcon():
    """Falcon's first configs (model_type RefinedWebModel / RefinedWeb, n_layer, n_head, n_head_kv) give the same
    model as the falcon ones."""
    old7 = {"model_type": "RefinedWebModel", "hidden_size": 4544, "n_layer": 32, "n_head": 71, "multi_query": True,
            "parallel_attn": True, "bias": False, "vocab_size": 65024}
    old40 = {"model_type": "RefinedWeb", "hidden_size": 8192, "n_layer": 60, "n_head": 128, "n_head_kv": 8,
             "parallel_attn": True, "bias": False, "vocab_size": 65024}
    assert count_params(spec_from_hf_config(old7)).total == COUNTS["counts"]["falcon-7b"]["params"]
    assert count_params(spec_from_hf_config(old40)).total == COUNTS["counts"]["falcon-40b"]["params"]


def test_opt_350m_projection_and_post_norm():
    s = spec("opt-350m")
    assert (s.embed_dim, s.hidden, s.final_norm, s.position_offset) == (512, 1024, False, 2)
    assert spec("opt-1.3b").final_norm and spec("opt-1.3b").embed_dim == 0


def test_t5_head_dim_and_heads():
    small, flan = spec("t5-small"), spec("flan-t5-small")
    assert (small.mlp, small.tied_embeddings, small.d_head) == ("standard", True, 64)
    assert (flan.mlp, flan.tied_embeddings, flan.heads * flan.d_head, flan.hidden) == ("gated", False, 384, 512)


def test_gemma_head_dim_and_tied_head():
    g = spec("gemma-7b")
    assert (g.d_head, g.q_dim, g.hidden, g.tied_embeddings) == (256, 4096, 3072, True)
    assert spec("gemma-2-9b").norms_per_layer == 4


def test_roberta_positions_include_padding_offset():
    r = spec("roberta-base")
    assert (r.context, r.position_offset, r.type_vocab, r.pooler) == (512, 2, 1, True)


def test_mixtral_experts_and_qwen2_biases():
    m = spec("Mixtral-8x7B-v0.1")
    assert (m.experts, m.experts_per_token) == (8, 2)
    q = spec("Qwen2-7B")
    assert q.qkv_bias and not q.out_bias


# Errors -----------------------------------------------------------------------------------------------------------
def test_unknown_model_type_lists_supported():
    with pytest.raises(LlmplanError, match=r"unsupported model_type 'mamba'.*supported: .*llama.*roberta"):
        spec_from_hf_config({"model_type": "mamba", "hidden_size": 768})
    with pytest.raises(LlmplanError, match="no model_type"):
        spec_from_hf_config({"hidden_size": 768})
    with pytest.raises(LlmplanError, match="unsupported model_type"):
        spec_from_hf_config({"model_type": ["llama"]})


def test_missing_and_malformed_keys():
    """A key a config omits takes transformers' class default (LlamaConfig intermediate_size 11008), said in the
    assumptions; readers of the older types without class defaults name the missing key."""
    c = config("Llama-2-7b-hf")
    del c["intermediate_size"]
    s = spec_from_hf_config(c)
    assert s.ffn == 11008 and any("LlamaConfig" in a and "intermediate_size" in a for a in s.assumptions)
    c = config("gpt2")
    del c["n_embd"]
    with pytest.raises(LlmplanError, match="lacks the key 'n_embd or hidden_size'"):
        spec_from_hf_config(c)
    c = config("Llama-2-7b-hf")
    c["num_hidden_layers"] = "32"
    with pytest.raises(LlmplanError, match="num_hidden_layers must be an integer"):
        spec_from_hf_config(c)
    c = config("bert-base-uncased")
    c["position_embedding_type"] = "relative_key"
    with pytest.raises(LlmplanError, match="position_embedding_type 'relative_key' is not supported"):
        spec_from_hf_config(c)


def test_bad_files(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(LlmplanError, match="not valid JSON"):
        read_hf_config(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(LlmplanError, match="expected a JSON object"):
        read_hf_config(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LlmplanError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))


def test_resolve_file_and_folder():
    folder = CONFIGS / "Mistral-7B-v0.1"
    assert count_params(resolve_model(str(folder))).total == 7_241_732_096
    assert count_params(resolve_model(str(folder / "config.json"))).total == 7_241_732_096


def test_hub_id_from_local_cache():
    """A hub id resolves offline when its config is in the Hugging Face cache ($HF_HOME/hub/models--org--name; the
    autouse fixture points HF_HOME at a temporary folder)."""
    snapshot = Path(os.environ["HF_HOME"]) / "hub" / "models--meta-llama--Llama-2-7b-hf" / "snapshots" / "8cca527"
    snapshot.mkdir(parents=True)
    shutil.copy(CONFIGS / "Llama-2-7b-hf" / "config.json", snapshot / "config.json")
    s = resolve_model("meta-llama/Llama-2-7b-hf")
    assert count_params(s).total == COUNTS["counts"]["Llama-2-7b-hf"]["params"]
    with pytest.raises(LlmplanError, match="unknown model 'meta-llama/Llama-9-7b-hf'"):
        resolve_model("meta-llama/Llama-9-7b-hf")


def test_hub_cache_respects_hf_hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub-cache"
    snapshot = cache / "models--google--flan-t5-base" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    shutil.copy(CONFIGS / "flan-t5-base" / "config.json", snapshot / "config.json")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert count_params(resolve_model("google/flan-t5-base")).total == COUNTS["counts"]["flan-t5-base"]["params"]


def test_cli_reads_config(cli):
    out = cli("models", str(CONFIGS / "Mixtral-8x7B-v0.1"), "--json")
    assert out.code == 0
    data = out.json()
    assert data["params"] == COUNTS["counts"]["Mixtral-8x7B-v0.1"]["params"]
    assert data["params_active"] < data["params"] and data["arch"] == "decoder"
    t5 = cli("models", str(CONFIGS / "flan-t5-base" / "config.json"), "--json").json()
    assert t5["arch"] == "encoder-decoder" and t5["params"] == COUNTS["counts"]["flan-t5-base"]["params"]


def test_cli_unknown_model_type_is_one_line(cli, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    out = cli("models", str(tmp_path))
    assert out.code == 2
    assert "unsupported model_type 'mamba'" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
