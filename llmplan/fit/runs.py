"""Reading training runs from a CSV: one row per run with its size, its tokens (or FLOPs) and its final loss.

Columns (header names are case-insensitive): `params` (N), `tokens` (D) or `flops` (C, with D = C / (6 N)), and
`loss`. Counts may carry suffixes (7B, 1.4T) as elsewhere in llmplan. Plain Python: numpy is only used by the fit.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass

from llmplan.errors import LlmplanError
from llmplan.estimate.laws import FLOPS_PER_PARAM_TOKEN  # C = 6 N D
from llmplan.units import parse_count

# Accepted header names for each quantity, first the canonical one.
COLUMNS = {
    "params": ("params", "n", "parameters", "model_size"),
    "tokens": ("tokens", "d", "training_tokens"),
    "flops": ("flops", "c", "compute", "training_flops"),
    "loss": ("loss", "l", "final_loss", "eval_loss"),
}
MAX_RUNS = 10_000  # the fit evaluates 4,500 starts over every run: 10^4 runs take seconds, 10^6 would take hours
MAX_CSV_BYTES = 64 * 2**20
ACCEPTED = "params, loss, and tokens or flops (D = C / (6 N))"


@dataclass(frozen=True)
class Runs:
    """Training runs in base units: parameters, tokens, training FLOPs and final loss (nats per token)."""

    params: tuple[float, ...]
    tokens: tuple[float, ...]
    flops: tuple[float, ...]
    losses: tuple[float, ...]
    source: str
    tokens_from_flops: bool  # True where D was derived as C / (6 N)
    dropped: int = 0  # highest-loss runs left out

    def __len__(self) -> int:
        return len(self.params)


def _find(header: list[str], quantity: str) -> int | None:
    names = [h.strip().lower() for h in header]
    for alias in COLUMNS[quantity]:
        if alias in names:
            return names.index(alias)
    return None


def _value(text: str, where: str, column: str) -> float:
    return parse_count(text, f"{column} at {where}")  # says what was wrong and what is accepted


def _loss(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LlmplanError(f"cannot read loss {text!r} at {where}: give a number (nats per token)") from None
    if not math.isfinite(value) or value <= 0:
        raise LlmplanError(f"loss at {where} must be a finite number greater than zero, got {text!r}")
    return value


def read_runs(path: str | os.PathLike, min_runs: int = 6) -> Runs:
    """Read and validate a runs CSV; LlmplanError says which row and column is wrong and what is accepted."""
    from llmplan.files import read_text

    name = os.fspath(path)
    text = read_text(name, "runs file", MAX_CSV_BYTES)  # a regular file of bounded size (no FIFO, no /dev/zero)
    rows = []
    try:
        for r in csv.reader(io.StringIO(text, newline="")):
            if any(cell.strip() for cell in r):
                rows.append(r)
                if len(rows) > MAX_RUNS + 1:
                    raise LlmplanError(f"{name} holds more than {MAX_RUNS:,} runs; fit reads at most {MAX_RUNS:,} "
                                       "(published fits use a few hundred): keep a subset of the rows")
    except csv.Error as exc:
        raise LlmplanError(f"cannot read runs file {name}: {exc}") from None
    if not rows:
        raise LlmplanError(f"{name} is empty: give a CSV with a header row ({ACCEPTED})")
    header, body = rows[0], rows[1:]
    cols = {q: _find(header, q) for q in COLUMNS}
    missing = [q for q in ("params", "loss") if cols[q] is None]
    if cols["tokens"] is None and cols["flops"] is None:
        missing.append("tokens or flops")
    if missing:
        raise LlmplanError(f"{name} lacks column(s) {', '.join(missing)}: the header must name {ACCEPTED}; "
                           f"found {', '.join(h.strip() for h in header) or 'nothing'}")
    params, tokens, flops, losses = [], [], [], []
    derived = False
    for i, row in enumerate(body, start=2):
        where = f"{name} line {i}"

        def cell(q: str) -> str:
            j = cols[q]
            return row[j].strip() if j is not None and j < len(row) else ""

        if not cell("params") or not cell("loss"):
            raise LlmplanError(f"{where} has no {'params' if not cell('params') else 'loss'} value: every run needs "
                               f"{ACCEPTED}")
        n = _value(cell("params"), where, "params")
        loss = _loss(cell("loss"), where)
        if cell("tokens"):
            d = _value(cell("tokens"), where, "tokens")
            c = _value(cell("flops"), where, "flops") if cell("flops") else FLOPS_PER_PARAM_TOKEN * n * d
        elif cell("flops"):
            c = _value(cell("flops"), where, "flops")
            d = c / (FLOPS_PER_PARAM_TOKEN * n)  # D = C / (6 N) (Hoffmann et al. 2022, section 3)
            derived = True
        else:
            raise LlmplanError(f"{where} has neither tokens nor flops: every run needs {ACCEPTED}")
        params.append(n)
        tokens.append(d)
        flops.append(c)
        losses.append(loss)
    if len(params) < min_runs:
        raise LlmplanError(f"{name} holds {len(params)} run(s): fitting E + A/N^alpha + B/D^beta needs at least "
                           f"{min_runs} (ideally dozens, across sizes and token counts)")
    return Runs(tuple(params), tuple(tokens), tuple(flops), tuple(losses), name, derived)


def drop_highest_loss(runs: Runs, count: int, min_runs: int = 6) -> Runs:
    """Leave out the `count` runs with the highest loss (Besiroglu et al. 2024 drop 5 of the 245 Chinchilla runs)."""
    if count < 0:
        raise LlmplanError(f"--drop-highest must be zero or more, got {count}")
    if count == 0:
        return runs
    if len(runs) - count < min_runs:
        shown = count if count < 10**12 else f"of {len(str(count))} digits"
        raise LlmplanError(f"--drop-highest {shown} would leave {max(len(runs) - count, 0)} of {len(runs)} runs; "
                           f"the fit needs at least {min_runs}")
    keep = sorted(sorted(range(len(runs)), key=lambda i: runs.losses[i])[:len(runs) - count])
    pick = lambda seq: tuple(seq[i] for i in keep)  # noqa: E731
    return Runs(pick(runs.params), pick(runs.tokens), pick(runs.flops), pick(runs.losses), runs.source,
                runs.tokens_from_flops, runs.dropped + count)
