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
    table.add_column(headers[0], style="bold", overflow="fold")  # wrap, never cut a value to "…"
    table.add_column(headers[1], justify="right", overflow="fold")
    for key, value in rows:
        table.add_row(_plain(key), _plain(value))
    return table


def _words(cell) -> list[str]:
    """What a cell may not be broken inside: words, with a number and its unit ('101 B', '3.5 GiB') as one."""
    import re

    return re.findall(r"\S+(?: (?:[kMGTP]i?B|[kMBTP]|B|s|ms|h|min|days|years)(?=\s|$))?", str(cell))


def _wrap(text: str, width: int) -> str:
    """Greedy wrap at the boundaries of _words; a line is longer than `width` only where one word is."""
    lines: list[str] = []
    for word in _words(text):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines)


def _column_widths(columns: list[str], rows: list[list[str]], width: int) -> list[int] | None:
    """Widths that fit `width` without cutting a word (or a number from its unit); None where the table fits as
    it is, or cannot fit even one word per line (then rich folds)."""
    cells = [[str(c), *(str(r[i]) for r in rows if i < len(r))] for i, c in enumerate(columns)]
    natural = [max(len(c) for c in col) for col in cells]
    least = [max((len(w) for c in col for w in _words(c)), default=1) for col in cells]
    room = width - 3 * len(columns) - 1  # a border and two spaces of padding per column
    if sum(natural) <= room or sum(least) > room:
        return None
    widths = list(least)
    while sum(widths) < room:  # a character at a time to the column furthest from its natural width
        i = max(range(len(widths)), key=lambda j: (natural[j] - widths[j]) / natural[j])
        if widths[i] >= natural[i]:
            break
        widths[i] += 1
    return widths


def table(title: str, columns: list[str], rows: list[list[str]], right_align_from: int = 1, caption: str = ""):
    """A table with header; columns from `right_align_from` on are right-aligned (numbers). On a narrow terminal
    cells wrap between words, never inside a number or a verdict, and nothing is cut to "…"; a caption (units,
    a legend for short headers) goes below."""
    from rich.table import Table

    widths = _column_widths(columns, rows, stdout_console().width)
    fit = (lambda i, text: _wrap(text, widths[i])) if widths else (lambda i, text: str(text))
    t = Table(title=_plain(title), title_justify="left", caption=_plain(caption) or None, caption_justify="left")
    for i, col in enumerate(columns):
        t.add_column(_plain(fit(i, col)), justify="right" if i >= right_align_from else "left", overflow="fold",
                     width=widths[i] if widths else None)
    for row in rows:
        t.add_row(*(_plain(fit(i, cell)) for i, cell in enumerate(row)))
    return t
