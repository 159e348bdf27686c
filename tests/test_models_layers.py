"""The per-layer model description (llmplan.models.layers) and the cache it implies (llmplan.estimate.kvcache)."""

import json

import pytest

from llmplan.errors import LlmplanError
from llmplan.estimate.kvcache import cache_bytes
from llmplan.models.layers import (Attention, Dense, LayerGroup, Mamba2, MoE, group_dict, group_from_dict,
                                   merge_runs)
from llmplan.models.params import count_params
from llmplan.models.spec import ModelSpec

from layer_specs import MLA, deepseek_v3


def test_deepseek_v3_by_hand_matches_transformers():
    # transformers 5.24 DeepseekV3ForCausalLM on the meta device (shared/reference/hf-configs/expected_params.json)
    b = count_params(deepseek_v3())
    assert b.total == 671_026_404_352
    assert b.active == 37_552_282_624
    # the MTP module is counted apart: 671.0 B without, about the published 685 B with it
    assert 684e9 < b.total_with_mtp < 686e9


def test_mla_cache_holds_the_latent():
    # 61 layers x (kv_lora_rank 512 + qk_rope_head_dim 64) values x 2 bytes per token (vLLM's MLA cache)
    c = cache_bytes(deepseek_v3(), 32768)
    assert c.kv_cache_bytes == 61 * 576 * 2 * 32768
    assert c.layers == {"mla": 61}
    expanded = cache_bytes(deepseek_v3(), 32768, expanded_mla=True).kv_cache_bytes
    assert expanded == 61 * 128 * (192 + 128) * 2 * 32768
    assert cache_bytes(deepseek_v3(), 32768, tp=8).kv_cache_bytes == c.kv_cache_bytes  # no head axis to split


def test_sliding_layers_hold_at_most_the_window():
    full = Attention(heads=16, kv_heads=8, head_dim=256)
    local = Attention(heads=16, kv_heads=8, head_dim=256, kind="sliding", window=4096)
    groups = merge_runs([(local if i % 2 == 0 else full, Dense(14336), 4) for i in range(42)])
    spec = ModelSpec.from_groups(name="g2", arch="decoder", hidden=3584, vocab=256000, context=8192,
                                 norm="rmsnorm", position="rotary", groups=groups)
    per_token = 8 * 512 * 2
    assert cache_bytes(spec, 32768).kv_cache_bytes == 21 * per_token * 32768 + 21 * per_token * 4096
    assert cache_bytes(spec, 32768).layers == {"sliding": 21, "full": 21}
    assert cache_bytes(spec, 1000).kv_cache_bytes == 42 * per_token * 1000


def test_recurrent_state_does_not_grow_with_the_sequence():
    mamba = Mamba2(heads=128, head_dim=64, state=128, groups=8, conv_kernel=4)
    spec = ModelSpec.from_groups(name="h", arch="decoder", hidden=4096, vocab=1000, norm="rmsnorm",
                                 groups=(LayerGroup(4, mamba, None, 1), LayerGroup(1, None, Dense(8192, False), 1)))
    short, long = cache_bytes(spec, 1024), cache_bytes(spec, 131072)
    assert short.state_bytes == long.state_bytes == 4 * mamba.state_values() * 2
    assert short.kv_cache_bytes == 0


def test_chunked_attention_keys():
    chunk = Attention(heads=8, kv_heads=8, head_dim=64, kind="chunked", window=8192)
    assert chunk.keys_attended(8191) == 8192 and chunk.keys_attended(8192) == 1
    assert chunk.tokens_held(100_000) == 8192


def test_groups_round_trip_as_plain_data():
    g = LayerGroup(58, MLA, MoE(256, 8, 2048, shared_ffn=2048))
    assert group_from_dict(json.loads(json.dumps(group_dict(g)))) == g


@pytest.mark.parametrize("make", [
    lambda: Attention(heads=8, kv_heads=3, head_dim=64),
    lambda: Attention(heads=8, kv_heads=8, head_dim=64, kind="sliding"),
    lambda: Attention(heads=8, kv_heads=8, head_dim=64, kv_lora_rank=512),
    lambda: MoE(8, 9, 100),
    lambda: LayerGroup(1, None, None),
    lambda: ModelSpec.from_groups(name="x", arch="decoder", hidden=64, vocab=10, layers=3,
                                  groups=(LayerGroup(2, None, Dense(8)),)),
])
def test_impossible_layers_are_refused(make):
    with pytest.raises(LlmplanError):
        make()
