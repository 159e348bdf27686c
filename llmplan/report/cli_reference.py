"""docs/cli.md, generated from the commands' own --help so that the reference cannot drift.

Regenerate with: python -m llmplan.report.cli_reference > docs/cli.md
"""

from __future__ import annotations

import os

HEADER = (
    "# CLI reference\n\n"
    "Generated from `--help` by `python -m llmplan.report.cli_reference > docs/cli.md`; "
    "a test checks that it is current.\n"
)


def _help(args: list[str]) -> str:
    from typer.testing import CliRunner

    from llmplan.cli import app

    env = {"COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1", "FORCE_COLOR": None}
    result = CliRunner(env=env).invoke(app, [*args, "--help"], color=False)
    return "\n".join(line.rstrip() for line in result.stdout.splitlines()).strip("\n")


def render() -> str:
    from typer.main import get_command

    from llmplan.cli import app

    group = get_command(app)
    parts = [HEADER, "## llmplan\n", "```text", _help([]), "```\n"]
    for name in group.list_commands(None):  # registration order
        parts += [f"## llmplan {name}\n", "```text", _help([name]), "```\n"]
    return "\n".join(parts)


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "100")
    print(render(), end="")
