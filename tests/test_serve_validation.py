"""The serving validation table in docs/validation.md is what the model predicts today, and the predictions stay
near the published measurements they were checked against."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _validation():
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import serving_validation
    finally:
        sys.path.remove(str(ROOT))
    return serving_validation


def test_serving_section_is_current():
    v = _validation()
    page = (ROOT / "docs" / "validation.md").read_text()
    section = page.split(v.SECTION_START, 1)[1].split(v.SECTION_END, 1)[0]
    assert section == v.render(), "stale: python benchmarks/serving_validation.py --write docs/validation.md"


def test_tpot_of_the_published_rows_within_the_target():
    # AIConfigurator silicon rows, TensorRT-LLM 0.14 online tables, LMDeploy, TRT-LLM issue 5929: median |error|
    v = _validation()
    results, _ = v.evaluate(v.load_rows())
    n, err, _ = v.overall(results)["TPOT"]
    assert n >= 50 and err <= v.TARGETS["TPOT"] + 0.05
