"""Autocast under ZeRO-3/FSDP: the fp32 master weights shard, the 16-bit casts kept for backward do not."""

import pytest

from llmplan.estimate.memory import MemoryConfig, estimate_memory, matmul_fraction
from llmplan.models import count_params, get_preset


def test_zero3_shards_the_master_weights_but_not_the_autocast_casts():
    spec = get_preset("llama-2-7b")
    n = count_params(spec).total
    est = estimate_memory(MemoryConfig(spec=spec, dtype="bf16", amp=True, zero=3, dp=8, seq=2048))
    casts = 2.0 * n * matmul_fraction(spec)
    assert est.breakdown["weights"] == pytest.approx(4.0 * n / 8 + casts, rel=1e-6)
    dp1 = estimate_memory(MemoryConfig(spec=spec, dtype="bf16", amp=True, zero=0, dp=1, seq=2048))
    assert dp1.breakdown["weights"] == pytest.approx(4.0 * n + casts, rel=1e-6)
