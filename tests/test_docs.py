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


def test_published_tables_in_validation_page_are_current():
    """docs/validation.md's published-tables section is what benchmarks/published_tables.py computes today."""
    import sys

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    try:
        from benchmarks.published_tables import render as render_tables
    finally:
        sys.path.remove(str(root))
    page = (DOCS / "validation.md").read_text()
    section = page.split("<!-- section: published -->\n", 1)[1].split("\n<!-- end: published -->", 1)[0]
    assert section == render_tables(), "stale: python benchmarks/published_tables.py --write docs/validation.md"


def test_step_time_validation_table_is_current():
    """docs/validation.md's step-time table is what benchmarks/step_time_validation.py computes today."""
    import sys

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    try:
        from benchmarks.step_time_validation import render as render_steptime
    finally:
        sys.path.remove(str(root))
    page = (DOCS / "validation.md").read_text()
    section = page.split("<!-- section: steptime -->\n", 1)[1].split("\n<!-- end: steptime -->", 1)[0]
    assert section == render_steptime(), "stale: python benchmarks/step_time_validation.py --write docs/validation.md"
