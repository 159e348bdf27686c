"""Command-line interface: parse -> build a spec -> call the core -> render.

Each command lives in its own module; heavy libraries (torch, scipy, matplotlib, pynvml) are imported inside the
functions that need them, never here.
"""

from llmplan.cli.app import app
from llmplan.cli import hardware_cmd, models_cmd  # noqa: F401  (registers the commands)
from llmplan.cli import chinchilla_cmd  # noqa: F401
from llmplan.cli import fit_cmd  # noqa: F401
from llmplan.cli import memory_cmd  # noqa: F401
from llmplan.cli import compute_cmd  # noqa: F401
from llmplan.cli import bench_cmd  # noqa: F401

__all__ = ["app", "main"]


def main() -> None:
    app()
