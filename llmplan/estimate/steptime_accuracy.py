"""How far the step-time model's default efficiencies were from published runs: the caveat plan and compute print.

Measured by benchmarks/step_time_validation.py (docs/validation.md, "Step time against published runs");
tests/test_steptime_accuracy.py re-runs it and fails when these numbers are no longer today's.
"""

from __future__ import annotations

RUNS = 120          # published training runs predicted from their layouts
FASTER = 118        # of them predicted faster than measured
MEDIAN_ERROR = 0.28  # median of predicted / measured - 1 (tokens/s per GPU)


def accuracy_note(efficiency_source: str) -> str | None:
    """One line for a prediction made with the default efficiencies; none once a measured profile is used."""
    if not efficiency_source.startswith("default"):
        return None
    return (f"with default efficiencies the step-time model ran faster than measured in {FASTER} of {RUNS} "
            f"published runs (median {MEDIAN_ERROR:+.0%} tokens/s, docs/validation.md): calibrate it with "
            "`llmplan bench --calibrate` on your GPU, or give --mfu")
