"""Presets of sliding-window models cache what their configs put in effect (issue 12: Gemma 2 9B at 32k tokens was
10.5 GiB where a serving engine holds 5.9 GiB, Mistral 7B 4 GiB instead of 0.5 GiB)."""

import pytest

from llmplan.units import GiB


@pytest.mark.parametrize("model, expected", [
    # 21 full layers x 32,768 tokens + 21 sliding layers x 4,096, each 8 KV heads x 256 x (K, V) x 2 bytes
    ("gemma-2-9b", 21 * 8192 * 32768 + 21 * 8192 * 4096),
    # every layer slides over 4,096 tokens: 32 x 8 x 128 x 2 x 2 bytes x 4,096
    ("mistral-7b", 32 * 8 * 128 * 2 * 2 * 4096),
])
def test_window_presets_cache_at_most_the_window(cli, model, expected):
    run = cli("memory", "--model", model, "--mode", "infer", "--seq", "32k", "--json")
    assert run.code == 0, run.stderr
    assert run.json()["breakdown"]["kv_cache"] == expected


def test_gemma_2_9b_cache_is_what_a_server_holds(cli):
    kv = cli("memory", "--model", "gemma-2-9b", "--mode", "infer", "--seq", "32k", "--json").json()["breakdown"]
    assert kv["kv_cache"] / GiB == pytest.approx(5.90625)  # shared/reference/hf-configs/kv_expected.json: 5.9 GiB
