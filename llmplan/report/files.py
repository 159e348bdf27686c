"""Writing files so that nothing half-written is ever left at the target: write a temporary file beside it, then
os.replace it over the target (atomic on POSIX and Windows). A failure to write is a clear error, not a traceback."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from llmplan.errors import LlmplanError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_target(path: str | os.PathLike, create_folder: bool = True) -> Iterator[str]:
    """Yield a temporary path beside `path` (same suffix); rename it over `path` when the block succeeds."""
    target = Path(path).expanduser()
    tmp = None
    try:
        if create_folder:
            target.parent.mkdir(parents=True, exist_ok=True)
        elif not target.parent.is_dir():
            raise LlmplanError(f"cannot write {target}: folder {target.parent} does not exist")
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=target.suffix or ".tmp")
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the file gets the permissions open() would give
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        raise LlmplanError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str, create_folder: bool = True) -> Path:
    with atomic_target(path, create_folder) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return Path(path).expanduser()


def write_json(path: str | os.PathLike, obj: Any, create_folder: bool = True) -> Path:
    """Indented JSON; NaN and infinity are refused (pass the object through report.output.jsonable first)."""
    return write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n", create_folder)


def save_figure(fig, path: str | os.PathLike, create_folder: bool = True, **savefig_kwargs) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_target(path, create_folder) as tmp:
            fig.savefig(tmp, **savefig_kwargs)
    finally:
        plt.close(fig)
    return Path(path).expanduser()
