"""The GEMM model against AIConfigurator's measured GEMMs (benchmarks/gemm_check.py): bounds that fail if the
physics regresses. The table itself is checked current by tests/test_docs.py."""

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.gemm_check import evaluate  # noqa: E402


def _error(rows) -> float:
    return statistics.median(abs(r - 1.0) for _, _, r in rows)


def test_hopper_bf16_gemms_within_ten_percent():
    results = evaluate()
    for gpu in ("H100-SXM", "H200"):
        assert _error(results[(gpu, "bf16")]) < 0.10


def test_nvidia_datacenter_bf16_and_fp8_within_twenty_percent_at_the_median():
    # L40S (generic family, no anchor) and fp4 (B300's fp4 peak is not B200's fraction of it) are reported only
    results = evaluate()
    for (gpu, dtype), rows in results.items():
        if gpu != "L40S" and dtype in ("bf16", "fp8"):
            assert _error(rows) < (0.15 if dtype == "bf16" else 0.20), (gpu, dtype)
