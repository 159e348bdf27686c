"""This checkout's llmplan for the GPU scripts and the commands they start, installed or not: a GPU machine may get
a bare copy of the repository, with torch but without `pip install`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def use_checkout() -> None:
    """Import llmplan from this checkout (before any installed copy)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def checkout_env() -> dict:
    """The environment for a child `python -m llmplan ...`: this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env
