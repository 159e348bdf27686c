"""Command-line interface: parse -> build a spec -> call the core -> render.

Each command lives in its own module; heavy libraries (torch, scipy, matplotlib, pynvml) are imported inside the
functions that need them, never here.
"""

from llmplan.cli.app import app  # commands load on demand (llmplan.cli.app.COMMANDS)

__all__ = ["app", "main"]


def main() -> None:
    app()
