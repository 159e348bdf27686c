"""Current architectures read from their released config.json: layer make-up, KV cache per layer kind, recurrent
state, MTP, stored weight formats, nested multimodal configs, and the bad configs that must be refused.

The configs are copies under tests/data/hf_configs (sources in SOURCES.json); the twelve of
../shared/reference/hf-configs are also checked in place, with their expected counts and KV caches, when that folder
is present.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmplan.errors import LlmplanError
from llmplan.estimate.kvcache import cache_bytes
from llmplan.models.hf_config import read_hf_config, spec_from_hf_config
from llmplan.models.layers import Dense, GatedDeltaNet, Mamba2, MoE
from llmplan.models.params import count_params

CONFIGS = Path(__file__).resolve().parent / "data" / "hf_configs"
# ../shared beside the repository (a worktree sits one folder deeper)
REF = next((p / "shared" / "reference" / "hf-configs" for p in Path(__file__).resolve().parents[1:4]
            if (p / "shared" / "reference" / "hf-configs").is_dir()), Path("/nonexistent"))
SEQ = 32768


def config(name: str) -> dict:
    return json.loads((CONFIGS / name / "config.json").read_text())


def spec(name: str):
    return read_hf_config(CONFIGS / name / "config.json")


def make_up(s) -> list[tuple]:
    out = []
    for g in s.layer_groups:
        mixer = type(g.mixer).__name__ if g.mixer is not None else None
        kind = getattr(g.mixer, "kind", None)
        out.append((g.count, mixer, kind, type(g.ffn).__name__ if g.ffn is not None else None))
    return out


# The shared reference sample, in place ------------------------------------------------------------------------
REF_NAMES = sorted(p.stem for p in REF.glob("*.json") if p.stem not in ("expected_params", "kv_expected"))


@pytest.mark.skipif(not REF.is_dir(), reason="../shared/reference not present")
@pytest.mark.parametrize("name", REF_NAMES or ["none"])
def test_shared_reference_counts_and_kv(name):
    """shared/reference/hf-configs: transformers 5.24's count (expected_params.json) and the KV cache plus recurrent
    state an efficient server holds for 32,768 tokens in bf16 (kv_expected.json)."""
    expected = json.loads((REF / "expected_params.json").read_text())[name]
    kv = json.loads((REF / "kv_expected.json").read_text())[name]
    s = read_hf_config(REF / f"{name}.json")
    b = count_params(s)
    assert b.total == expected["params"]
    assert b.active == (expected["params_active"] or expected["params"])
    c = cache_bytes(s, kv["seq"])
    assert c.kv_cache_bytes == kv["attention_kv_bytes"]
    assert c.state_bytes == kv["state_bytes"]


# Layer make-up -------------------------------------------------------------------------------------------------
def test_deepseek_v3_make_up_mtp_and_fp8():
    s = spec("DeepSeek-V3")
    assert make_up(s) == [(3, "Attention", "full", "Dense"), (58, "Attention", "full", "MoE")]
    moe = s.layer_groups[1].ffn
    assert (moe.experts, moe.top_k, moe.expert_ffn, moe.shared_ffn) == (256, 8, 2048, 2048)
    assert s.layer_groups[0].mixer.is_mla and s.mtp_layers == 1
    b = count_params(s)
    assert b.total == 671_026_404_352 and 684e9 < b.total_with_mtp < 686e9  # the published 685B counts MTP
    fmt = s.weight_format  # fp8 e4m3 with a float32 scale per 128 x 128 block
    assert (fmt.method, fmt.bits, fmt.block, fmt.applies_to) == ("fp8", 8, 128 * 128, "linear")
    assert cache_bytes(s, SEQ).kv_cache_bytes == 61 * 576 * 2 * SEQ  # latent 512 + rope 64 per token and layer


def test_deepseek_v32_and_glm5_carry_the_indexer():
    for name in ("DeepSeek-V3.2", "GLM-5"):
        attn = spec(name).layer_groups[0].mixer
        assert attn.is_mla and attn.index_heads and attn.index_head_dim and attn.index_topk, name


def test_gpt_oss_alternates_sliding_and_full_with_sinks_and_mxfp4_experts():
    s = spec("gpt-oss-120b")
    assert [(g.count, g.mixer.kind) for g in s.layer_groups[:2]] == [(1, "sliding"), (1, "full")]
    assert all(g.mixer.sinks and g.mixer.qkv_bias for g in s.layer_groups)
    assert (s.weight_format.method, s.weight_format.applies_to) == ("mxfp4", "experts")
    per_token = 8 * 64 * 2 * 2  # kv heads x head_dim x (K, V) x bf16
    assert cache_bytes(s, SEQ).kv_cache_bytes == 18 * per_token * 128 + 18 * per_token * SEQ


def test_llama4_chunked_nope_and_interleaved_moe():
    scout, maverick = spec("Llama-4-Scout-17B-16E-Instruct"), spec("Llama-4-Maverick-17B-128E-Instruct")
    kinds = [(g.mixer.kind, g.mixer.rope) for g in scout.layer_groups for _ in range(g.count)]
    assert kinds[:4] == [("chunked", True)] * 3 + [("full", False)]  # RoPE layers chunked, NoPE layers global
    assert scout.layer_groups[0].mixer.window == 8192
    assert sum(g.count for g in scout.layer_groups if not g.mixer.rope) == 12  # every 4th layer NoPE
    assert all(isinstance(g.ffn, MoE) for g in scout.layer_groups)  # interleave_moe_layer_step 1
    kinds = [type(g.ffn).__name__ for g in maverick.layer_groups for _ in range(g.count)]
    assert kinds[:4] == ["Dense", "MoE", "Dense", "MoE"]  # interleave_moe_layer_step 2
    assert any("text model" in a for a in scout.assumptions)


def test_gemma3_nested_text_config_takes_class_defaults():
    """gemma-3-4b-it's text_config omits its heads and vocabulary: Gemma3TextConfig's defaults (8 heads, 4 kv heads,
    head_dim 256, vocab 262208), as transformers reads it; the assumptions say so and that the text model is planned."""
    s = spec("gemma-3-4b-it")
    a = s.layer_groups[0].mixer
    assert (a.heads, a.kv_heads, a.head_dim, s.vocab) == (8, 4, 256, 262208)
    assert any("Gemma3TextConfig" in x and "num_attention_heads" in x for x in s.assumptions)
    assert any("vision tower" in x for x in s.assumptions)
    per_token = 4 * 256 * 2 * 2
    assert cache_bytes(s, SEQ).kv_cache_bytes == 29 * per_token * 1024 + 5 * per_token * SEQ


def test_qwen3_next_hybrid_state_is_constant():
    s = spec("Qwen3-Next-80B-A3B-Thinking")
    mixers = [type(g.mixer).__name__ for g in s.layer_groups for _ in range(g.count)]
    assert mixers[:4] == ["GatedDeltaNet"] * 3 + ["Attention"] and mixers.count("Attention") == 12
    assert all(g.mixer.output_gate for g in s.layer_groups if g.attention)
    short, long = cache_bytes(s, 1024), cache_bytes(s, 4 * SEQ)
    assert short.state_bytes == long.state_bytes > 0
    assert long.kv_cache_bytes == short.kv_cache_bytes * (4 * SEQ // 1024)  # full layers grow with the sequence


def test_nemotron_h_pattern_and_moe():
    s = spec("Nemotron-H-56B-Base-8K")
    layers = [g for g in s.layer_groups for _ in range(g.count)]
    assert sum(isinstance(g.mixer, Mamba2) for g in layers) == 54
    assert sum(g.attention is not None for g in layers) == 10 and all(g.norms == 1 for g in layers)
    assert cache_bytes(s, 1024).state_bytes == cache_bytes(s, 8 * SEQ).state_bytes
    nano = spec("NVIDIA-Nemotron-3-Nano-30B-A3B-BF16")
    assert any(isinstance(g.ffn, MoE) and not g.ffn.gated for g in nano.layer_groups)
    super_ = spec("NVIDIA-Nemotron-3-Super-120B-A12B-FP8")
    assert any(isinstance(g.ffn, MoE) and g.ffn.latent for g in super_.layer_groups)


def test_qwen35_is_gated_deltanet_with_dense_or_moe():
    dense, moe = spec("Qwen3.5-27B"), spec("Qwen3.5-35B-A3B")
    assert any(isinstance(g.mixer, GatedDeltaNet) for g in dense.layer_groups)
    assert all(isinstance(g.ffn, Dense) for g in dense.layer_groups)
    assert all(isinstance(g.ffn, MoE) and g.ffn.shared_gate for g in moe.layer_groups)


def test_qwen3_moe_reads_num_experts_through_the_alias():
    """Qwen3MoeConfig maps num_experts onto num_local_experts (attribute_map): Coder-480B has 160 experts, not the
    class default 128."""
    moe = spec("Qwen3-Coder-480B-A35B-Instruct").layer_groups[0].ffn
    assert (moe.experts, moe.top_k) == (160, 8)


# Bad configs: an error naming the key, never a silent misread ---------------------------------------------------
def _bad(name: str, change, match: str):
    c = config(name)
    change(c)
    with pytest.raises(LlmplanError, match=match):
        spec_from_hf_config(c, name)


def test_layer_types_of_the_wrong_length():
    _bad("gpt-oss-20b", lambda c: c.update(layer_types=c["layer_types"][:-1]),
         r"layer_types lists 23 layers, but the model has 24")
    _bad("Qwen3-Next-80B-A3B-Thinking", lambda c: c.update(layer_types=["full_attention"] * 3), "layer_types lists 3")
    _bad("gpt-oss-20b", lambda c: c["layer_types"].__setitem__(0, "global"), r"layer_types holds 'global'")


def test_window_larger_than_the_context():
    _bad("gemma-2-9b-it", lambda c: c.update(sliding_window=10**6), r"sliding_window \(1,000,000\) exceeds the context")
    # not in effect (use_sliding_window false): no error
    c = config("Qwen3-8B")
    c.update(sliding_window=10**7, use_sliding_window=False)
    assert count_params(spec_from_hf_config(c)).total == count_params(spec("Qwen3-8B")).total


def test_mla_ranks_must_be_positive():
    _bad("DeepSeek-V3", lambda c: c.update(kv_lora_rank=0), "kv_lora_rank must be an integer")
    _bad("DeepSeek-V3", lambda c: c.update(qk_rope_head_dim=0), "qk_rope_head_dim must be an integer")


@pytest.mark.parametrize("key, value, match", [
    ("tie_word_embeddings", "false", "tie_word_embeddings must be true or false, got 'false'"),
    ("max_position_embeddings", 0, "max_position_embeddings must be an integer from 1"),
    ("num_experts", 0, "num_experts must be an integer from 1"),
    ("num_experts", 1, "num_experts must be an integer of at least 2"),
    ("num_hidden_layers", 48.0, "num_hidden_layers must be an integer, got 48.0"),
    ("hidden_size", 10**400, "hidden_size must be an integer from 1 to 1e15"),
    ("decoder_sparse_step", 0, "decoder_sparse_step must be an integer of at least 1"),
    # readers describe every layer: 10**12 layers exhausted memory (MemoryError) before this bound (CLI fuzzer)
    ("num_hidden_layers", 10**12, "num_hidden_layers must be at most 100,000 layers"),
])
def test_wrong_types_and_ranges_name_the_key(key, value, match):
    _bad("Qwen3-30B-A3B", lambda c: c.update({key: value}), match)


def test_nested_config_values_are_checked_too():
    _bad("gemma-3-4b-it", lambda c: c["text_config"].update(tie_word_embeddings="no"),
         "text_config.tie_word_embeddings must be true or false")
    _bad("gemma-3-4b-it", lambda c: c.pop("text_config"), "needs its text_config")


def test_unknown_keys_that_change_nothing_are_fine():
    c = config("Qwen3-8B")
    c["some_future_flag"] = {"anything": [1, 2]}
    assert count_params(spec_from_hf_config(c)).total == count_params(spec("Qwen3-8B")).total


def test_cli_bad_config_is_one_line(cli, tmp_path):
    c = config("gpt-oss-20b")
    c["layer_types"] = c["layer_types"][:5]
    (tmp_path / "config.json").write_text(json.dumps(c))
    out = cli("models", str(tmp_path))
    assert out.code == 2 and "layer_types lists 5 layers" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


# llmplan models NAME ---------------------------------------------------------------------------------------------
def test_cli_shows_layer_make_up_mtp_and_format(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = cli("models", "deepseek-v3")
    assert out.code == 0
    assert "61 (3 dense MLA + 58 MoE MLA)" in out.stdout and "Layer kinds" in out.stdout
    assert "671 B (+13.5 B MTP = 684.5 B)" in out.stdout and "fp8" in out.stdout
    assert max(len(line) for line in out.stdout.splitlines()) <= 80


def test_cli_json_has_groups_active_and_mtp(cli):
    data = cli("models", "deepseek-v3", "--json").json()
    for key in ("name", "params", "params_active", "breakdown", "shape", "source"):  # kept keys
        assert key in data
    assert [g["count"] for g in data["groups"]] == [3, 58] and data["groups"][1]["ffn"]["type"] == "moe"
    assert data["layers_summary"] == "3 dense MLA + 58 MoE MLA"
    assert data["mtp"]["layers"] == 1 and data["mtp"]["params_with_mtp"] == data["params"] + data["mtp"]["params"]
    assert data["weight_format"]["method"] == "fp8" and data["params_active"] == 37_552_282_624
    hybrid = cli("models", "qwen3-next-80b-a3b", "--json").json()
    assert {k["mixer"] for k in hybrid["layer_kinds"]} == {"Gated DeltaNet", "GQA"}


def test_cli_flat_model_output_unchanged(cli):
    data = cli("models", "llama-2-7b", "--json").json()
    assert data["groups"][0]["count"] == 32 and data["mtp"]["params"] == 0 and data["weight_format"] is None
    assert "Layer kinds" not in cli("models", "llama-2-7b").stdout


def test_quantization_formats():
    """fp8 block-scaled (DeepSeek-V3), MXFP4 experts (gpt-oss), AWQ/GPTQ int4 per group of 128; an unknown method is
    said in the assumptions, not guessed."""
    from llmplan.models.hf_build import weight_format
    from llmplan.models.hf_common import Cfg

    c = Cfg({"hidden_size": 4096}, "llama", "x")
    awq = weight_format(c, {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True})
    assert (awq.bits, awq.block, awq.bytes_per_param) == (4, 128, 0.5 + 2.5 / 128)
    gptq = weight_format(c, {"quant_method": "gptq", "bits": 4, "group_size": -1})
    assert gptq.block == 4096
    with pytest.raises(LlmplanError, match="weight_block_size must be two positive integers"):
        weight_format(c, {"quant_method": "fp8", "weight_block_size": [128]})
    conf = config("Qwen3-8B")
    conf["quantization_config"] = {"quant_method": "bitsandbytes"}
    s = spec_from_hf_config(conf)
    assert s.weight_format is None and any("'bitsandbytes' is not read" in a for a in s.assumptions)


def test_deepseek_v4_is_read_and_an_unknown_type_still_refused():
    """deepseek_v4 was refused until its reader (tests/test_models_deepseek_v4.py checks it); a type without a
    reader is still refused with the supported ones listed, deepseek_v4 among them."""
    assert spec_from_hf_config({"model_type": "deepseek_v4"}).layers == 43
    with pytest.raises(LlmplanError, match=r"unsupported model_type 'deepseek_v9'.*; supported: .*deepseek_v4"):
        spec_from_hf_config({"model_type": "deepseek_v9", "hidden_size": 4096})


def test_gemma4_global_layers_kv_sharing_and_moe():
    """Gemma 4: global layers of global_head_dim with fewer KV heads and K as V (no v_proj, K cached once); the
    26B-A4B's MoE beside a dense MLP; kv-shared layers hold no cache of their own; per-layer input embeddings."""
    moe = spec("gemma-4-26B-A4B")
    kinds = [(g.mixer.kind, g.mixer.head_dim, g.mixer.kv_heads, g.mixer.k_eq_v) for g in moe.layer_groups]
    assert ("full", 512, 2, True) in kinds and ("sliding", 256, 8, False) in kinds
    assert all(g.ffn.shared_ffn == 2112 and g.ffn.router_scales for g in moe.layer_groups)
    full = next(g.mixer for g in moe.layer_groups if g.mixer.kind == "full")
    assert full.kv_values_per_token() == 2 * 512  # K only
    shared = spec("gemma4-text-class-defaults-kv-shared")
    assert sum(g.count for g in shared.layer_groups if g.mixer.kv_shared) == 10
    assert all(g.mixer.kv_values_per_token() == 0 for g in shared.layer_groups if g.mixer.kv_shared)
    assert spec("gemma4-text-class-defaults").per_layer_input == 256


def test_mutated_configs_fail_only_with_one_line_errors():
    """Regression for the config.json fuzzing of issue 15: wrong-typed, out-of-range and huge values anywhere in a
    real config (or its text_config) end in an LlmplanError of one line, never another exception."""
    import random

    from llmplan.cli.models_cmd import model_summary

    rng = random.Random(12)
    pool = [json.loads(p.read_text()) for p in sorted(CONFIGS.glob("*/config.json"))]
    values = [None, 0, -1, 1, 2, 10**20, 10**400, 1.5, "x", "false", True, [], [1], ["full_attention"], {}, {"a": 1}]
    failures = 0
    for _ in range(1500):
        c = json.loads(json.dumps(rng.choice(pool)))
        target = c["text_config"] if "text_config" in c and rng.random() < 0.5 else c
        for key in rng.sample(sorted(target), min(len(target), rng.randint(1, 3))):
            target[key] = rng.choice(values)
        try:
            s = spec_from_hf_config(c, "fuzz")
            count_params(s), cache_bytes(s, 4096), model_summary(s)
        except LlmplanError as exc:
            failures += 1
            assert "\n" not in str(exc)
    assert failures > 100  # the mutations do hit the checks
