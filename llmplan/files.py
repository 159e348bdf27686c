"""Files llmplan reads and writes, safely.

Reading: only regular files (a FIFO would block forever, /dev/zero never ends), up to a size limit, JSON with a
bounded nesting depth and no integers beyond any physical quantity. Writing: a temporary file beside the target,
then os.replace over it (atomic on POSIX and Windows), and only over a regular file or a new path, never over a
device node, FIFO or socket (os.replace would put a JSON file where /dev/null was). Every failure is an
LlmplanError that names the path, never a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from llmplan.errors import LlmplanError

NAME_MAX = 255  # bytes in one path component (Linux, macOS; NTFS: 255 UTF-16 units)
PATH_MAX = 4095  # bytes in a whole path (Linux PATH_MAX less the terminating NUL)
MAX_JSON_BYTES = 16 * 2**20  # a config.json, profile or law file is a few KiB; 16 MiB is far beyond any real one
MAX_JSON_DEPTH = 64  # real configs nest 3 or 4 levels
MAX_JSON_INT_DIGITS = 30  # 1e30 exceeds every count, size or rate llmplan reads (FLOP/s, bytes, parameters)


def _show(path: str | os.PathLike) -> str:
    text = os.fspath(path)
    return text if len(text) <= 80 else f"{text[:40]}...{text[-20:]} ({len(text):,} characters)"


def check_path_text(path: str | os.PathLike, what: str = "path") -> None:
    """A path (or a name that may be one) no file system accepts is an error saying so, not an OSError later."""
    text = os.fspath(path)
    raw = text.encode("utf-8", "surrogateescape")
    if b"\0" in raw:
        raise LlmplanError(f"{what} {_show(text)!r} holds a NUL character")
    longest = max((len(p) for p in raw.split(b"/")), default=0)
    if longest > NAME_MAX:
        raise LlmplanError(f"{what} {_show(text)!r} is too long: a file or folder name has at most {NAME_MAX} "
                           f"bytes, one here has {longest:,}")
    if len(raw) > PATH_MAX:
        raise LlmplanError(f"{what} {_show(text)!r} is too long: a path has at most {PATH_MAX} bytes")


def read_bytes(path: str | os.PathLike, what: str = "file", limit: int = MAX_JSON_BYTES) -> bytes:
    """The contents of a regular file of at most `limit` bytes (symbolic links followed)."""
    check_path_text(path, what)
    name = _show(path)
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise LlmplanError(f"{what} {name} is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise LlmplanError(f"{what} {name} is not a regular file (a device, FIFO or socket); give a file")
        if st.st_size > limit:
            raise LlmplanError(f"{what} {name} is {st.st_size:,} bytes; llmplan reads files of at most {limit:,}")
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise LlmplanError(f"no such {what}: {name}") from None
    except OSError as exc:
        raise LlmplanError(f"cannot read {what} {name}: {exc.strerror or exc}") from None
    if len(data) > limit:  # grew while being read
        raise LlmplanError(f"{what} {name} is over {limit:,} bytes; llmplan reads files of at most {limit:,}")
    return data


def read_text(path: str | os.PathLike, what: str = "file", limit: int = MAX_JSON_BYTES,
              encoding: str = "utf-8-sig") -> str:
    try:
        return read_bytes(path, what, limit).decode(encoding)
    except UnicodeDecodeError as exc:
        raise LlmplanError(f"cannot read {what} {_show(path)}: not {encoding.replace('-sig', '')} text "
                           f"({exc.reason} at byte {exc.start})") from None


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_JSON_INT_DIGITS:
        raise ValueError(f"an integer of {digits:,} digits (more than {MAX_JSON_INT_DIGITS}: beyond any quantity "
                         "llmplan reads)")
    return int(text)


def _depth(obj: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def parse_json(text: str, what: str = "JSON", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads that says what is wrong (syntax, nesting, huge integers) as an LlmplanError."""
    try:
        data = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise LlmplanError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise LlmplanError(f"{what} nests too deeply (real files nest a few levels; at most {max_depth})") from None
    except ValueError as exc:  # _parse_int, or an integer past Python's own digit limit
        raise LlmplanError(f"{what} holds {exc}") from None
    if _depth(data, max_depth) > max_depth:
        raise LlmplanError(f"{what} nests too deeply (real files nest a few levels; at most {max_depth})")
    return data


def read_json(path: str | os.PathLike, what: str = "JSON file", limit: int = MAX_JSON_BYTES) -> Any:
    """A regular file of at most `limit` bytes, parsed as JSON with bounded nesting."""
    return parse_json(read_text(path, what, limit), f"{what} {_show(path)}")


def check_model_text(text: str, option: str = "--model") -> str:
    """A model name or path: within the file system's limits and, where it names a file, a regular file of
    bounded size and nesting (a FIFO or /dev/zero would block or never end), checked before a reader opens it."""
    check_path_text(text, option)
    path = Path(str(text).strip()).expanduser()
    try:
        if path.is_dir():
            path = path / "config.json"
        if os.path.lexists(path) and not path.is_dir():
            read_json(path, "config.json")
    except OSError as exc:
        raise LlmplanError(f"cannot read {option} {_show(text)!r}: {exc.strerror or exc}") from None
    return text


# ---------------------------------------------------------------------------------------------------------------
# writing


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable_target(path: str | os.PathLike, what: str = "output") -> Path:
    """Refuse what an atomic write must not replace: anything but a regular file or a new path; names too long."""
    check_path_text(path, what)
    target = Path(path).expanduser()
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LlmplanError(f"cannot write {what} {_show(target)}: a symbolic link loop") from None
        raise LlmplanError(f"cannot write {what} {_show(target)}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise LlmplanError(f"cannot write {what} {_show(target)}: it is a folder; give a file path")
    if not stat.S_ISREG(st.st_mode):
        raise LlmplanError(f"cannot write {what} {_show(target)}: it is not a regular file (a device, FIFO or "
                           "socket); llmplan writes only files")
    return target


def probe_writable(path: str | os.PathLike, what: str = "output", size: int = 64 * 2**10) -> None:
    """Before long work: write `size` bytes to a temporary file where `path` will go (its nearest existing
    folder) and remove it, so that a read-only or full file system, /proc, or a file-size limit is an error now,
    not after the measurements. `path` itself is left as it is."""
    target = check_writable_target(path, what)
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".llmplan-probe-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"\0" * size)
    except OSError as exc:
        raise LlmplanError(f"cannot write {what} {_show(target)}: {exc.strerror or exc} (checked before any "
                           "work)") from None
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_target(path: str | os.PathLike, create_folder: bool = True) -> Iterator[str]:
    """Yield a temporary path beside `path` (same suffix); rename it over `path` when the block succeeds."""
    target = check_writable_target(path)
    tmp = None
    try:
        if os.path.islink(target) and os.path.exists(target):  # write through a link to its file, keep the link
            target = Path(os.path.realpath(target))
        if create_folder:
            target.parent.mkdir(parents=True, exist_ok=True)
        elif not target.parent.is_dir():
            raise LlmplanError(f"cannot write {target}: folder {target.parent} does not exist")
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem[:100]}.",
                                   suffix=target.suffix[:20] or ".tmp")
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the file gets the permissions open() would give
        yield tmp
        check_writable_target(target)  # still a file or nothing: a node made meanwhile is not replaced
        os.replace(tmp, target)
    except OSError as exc:
        raise LlmplanError(f"cannot write {_show(target)}: {exc.strerror or exc}") from None
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
