"""The documentation that is generated must be current."""

from pathlib import Path

from llmplan.report.cli_reference import render

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_cli_reference_is_current():
    current = (DOCS / "cli.md").read_text()
    assert current == render(), "docs/cli.md is stale: python -m llmplan.report.cli_reference > docs/cli.md"


def test_every_command_help_has_examples(cli):
    from typer.main import get_command

    from llmplan.cli import app

    for name in get_command(app).list_commands(None):
        r = cli(name, "--help")
        assert r.code == 0 and "Examples" in r.stdout, name


def _section_matches(module: str, name: str) -> None:
    """docs/validation.md's `name` section is what benchmarks/<module>.py's render() computes today."""
    import importlib
    import sys

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    try:
        render_section = importlib.import_module(f"benchmarks.{module}").render
    finally:
        sys.path.remove(str(root))
    page = (DOCS / "validation.md").read_text()
    section = page.split(f"<!-- section: {name} -->\n", 1)[1].split(f"\n<!-- end: {name} -->", 1)[0]
    assert section == render_section(), f"stale: python benchmarks/{module}.py --write docs/validation.md"


def test_published_tables_in_validation_page_are_current():
    _section_matches("published_tables", "published")


def test_step_time_validation_table_is_current():
    _section_matches("step_time_validation", "steptime")


def test_gemm_check_table_is_current():
    _section_matches("gemm_check", "gemm")


def test_collectives_check_table_is_current():
    _section_matches("collectives_check", "collectives")


def test_moe_check_table_is_current():
    _section_matches("moe_check", "moe")


def test_decode_attention_check_table_is_current():
    _section_matches("decode_attention_check", "decode")
