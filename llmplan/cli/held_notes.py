"""Notes and warnings held back until every input has been checked, so that a bad input prints one line only."""

from __future__ import annotations

from llmplan.report.output import note, warn


class HeldNotes:
    """Collects notes ("note") and warnings ("warn") in order, without repeats; `flush` prints them on stderr."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, text: str, kind: str = "note") -> None:
        if (kind, text) not in self.items:
            self.items.append((kind, text))

    def extend(self, other: "HeldNotes") -> None:
        for kind, text in other.items:
            self.add(text, kind)

    def flush(self) -> None:
        for kind, text in self.items:
            (warn if kind == "warn" else note)(text)
        self.items.clear()
