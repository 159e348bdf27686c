"""Writing results: one JSON object on stdout, rich tables for people, notes and warnings on stderr."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from typing import Any

SCHEMA_VERSION = 1


def jsonable(obj: Any) -> Any:
    """Dataclasses, tuples, paths and non-finite floats as plain JSON (NaN/inf become null)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def emit_json(payload: dict[str, Any]) -> None:
    """Print exactly one JSON object, with `schema_version` first."""
    body = {"schema_version": SCHEMA_VERSION, **jsonable(payload)}
    sys.stdout.write(json.dumps(body, indent=2, allow_nan=False) + "\n")


def stdout_console():
    from rich.console import Console

    return Console(highlight=False)


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _plain(text) -> str:
    """Text shown as written: brackets in model names, paths or sources are not rich markup."""
    from rich.markup import escape

    return escape(str(text))


def note(message: str) -> None:
    """A note or warning for the person at the terminal: stderr, never stdout."""
    stderr_console().print(f"[dim]note:[/dim] {_plain(message)}")


def warn(message: str) -> None:
    stderr_console().print(f"[yellow]warning:[/yellow] {_plain(message)}")


def kv_table(title: str, rows: list[tuple[str, str]], headers: tuple[str, str] = ("", "")):
    """A two-column table of labelled values."""
    from rich.table import Table

    table = Table(title=_plain(title), show_header=any(headers), title_justify="left")
    table.add_column(headers[0], style="bold")
    table.add_column(headers[1], justify="right")
    for key, value in rows:
        table.add_row(_plain(key), _plain(value))
    return table


def table(title: str, columns: list[str], rows: list[list[str]], right_align_from: int = 1):
    """A table with header; columns from `right_align_from` on are right-aligned (numbers)."""
    from rich.table import Table

    t = Table(title=_plain(title), title_justify="left")
    for i, col in enumerate(columns):
        t.add_column(_plain(col), justify="right" if i >= right_align_from else "left")
    for row in rows:
        t.add_row(*(_plain(cell) for cell in row))
    return t
