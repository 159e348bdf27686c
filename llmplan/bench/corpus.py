"""Real text with no download, as byte-level tokens, with a fixed held-out split.

By default the corpus is the Python standard library's own source files: every Python installation carries them, so a
scaling sweep needs no network. `--data PATH` takes a text file or a folder of text files instead. Tokens are bytes
(vocabulary 256), so no tokenizer is trained or downloaded and the loss is in nats per byte.

The held-out split is fixed: the files (sorted by relative path) are joined into one byte stream, cut into blocks of
BLOCK_BYTES, and every HOLDOUT_EVERY-th block is held out. Blocks rather than a tail of the stream, so that the
held-out text samples the whole corpus rather than the last few modules in alphabetical order.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from llmplan.errors import LlmplanError

VOCAB = 256                # byte-level tokens
BLOCK_BYTES = 64 * 1024    # split unit: 64 KiB blocks of the joined stream
HOLDOUT_EVERY = 20         # every 20th block held out: 5 % of the corpus
SEPARATOR = b"\n\n"        # between files, so no token pair spans two files without a break
_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}
_SNIFF_BYTES = 8192        # a file with a NUL byte in its first 8 KiB is binary, not text


@dataclass(frozen=True)
class Corpus:
    """Byte tokens split into train and held-out parts. `train` and `heldout` are numpy uint8 arrays."""

    description: str           # what the text is, for the report
    source: str                # the folder or file it came from
    n_files: int
    n_bytes: int               # bytes read (= tokens: one token per byte)
    train: object              # numpy.ndarray[uint8]
    heldout: object            # numpy.ndarray[uint8]
    split_rule: str

    @property
    def n_tokens(self) -> int:
        return self.n_bytes

    def summary(self) -> dict:
        """JSON-ready description (without the token arrays)."""
        return {
            "description": self.description,
            "source": self.source,
            "files": self.n_files,
            "bytes": self.n_bytes,
            "tokens": self.n_tokens,
            "train_tokens": int(len(self.train)),
            "heldout_tokens": int(len(self.heldout)),
            "vocab": VOCAB,
            "tokenizer": "bytes (UTF-8 as stored on disk)",
            "split": self.split_rule,
        }


def stdlib_files() -> tuple[Path, list[Path]]:
    """The standard library's .py files, sorted by relative path; installed packages excluded."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in root.rglob("*.py") if p.is_file() and not _SKIP_DIRS.intersection(p.relative_to(root).parts)]
    return root, sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _is_text(path: Path) -> bool:
    with open(path, "rb") as fh:
        return b"\0" not in fh.read(_SNIFF_BYTES)


def data_files(path: str | os.PathLike) -> tuple[Path, list[Path]]:
    """A text file, or every text file under a folder (hidden files and folders skipped), sorted."""
    from llmplan.files import check_path_text

    check_path_text(path, "--data")  # a name the file system cannot hold is an error, not an OSError
    root = Path(path).expanduser()
    if not root.exists():
        raise LlmplanError(f"--data {str(path)!r} does not exist; give a text file or a folder of text files")
    if root.is_file():
        if not _is_text(root):
            raise LlmplanError(f"--data {str(path)!r} is not a text file (it holds NUL bytes)")
        return root.parent, [root]
    files = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).parts
        if p.is_file() and not any(part.startswith(".") for part in rel) and _is_text(p):
            files.append(p)
    if not files:
        raise LlmplanError(f"--data {str(path)!r} holds no text files; give a text file or a folder of text files")
    return root, sorted(files, key=lambda p: p.relative_to(root).as_posix())


def split_blocks(stream, block_bytes: int = BLOCK_BYTES, every: int = HOLDOUT_EVERY):
    """(train, heldout) from one uint8 array: every `every`-th block of `block_bytes` is held out.

    A corpus shorter than `every` blocks is split at 1/every from its end instead, so small inputs still get a
    held-out part.
    """
    import numpy as np

    n = len(stream)
    if n < every * block_bytes:
        cut = n - max(n // every, 1)
        return stream[:cut].copy(), stream[cut:].copy()
    block = np.arange(n) // block_bytes
    held = (block % every) == every - 1
    return stream[~held], stream[held]


def load_corpus(data: str | os.PathLike | None = None, max_bytes: int | None = None) -> Corpus:
    """Read the corpus: the standard library's sources by default, else `data` (a text file or a folder).

    `max_bytes` stops reading once that many bytes are in (whole files, in sorted order; the last one truncated), for
    quick runs and tests; the split is then made on what was read.
    """
    import numpy as np

    if data is None:
        root, files = stdlib_files()
        if not files:
            raise LlmplanError(f"found no standard-library sources under {root}; give --data PATH (a text file or "
                               "a folder of text files)")
        version = ".".join(map(str, sys.version_info[:3]))
        what = f"Python {version} standard library sources (*.py)"
    else:
        root, files = data_files(data)
        what = f"text from {data}"
    if max_bytes is not None and max_bytes < 1:
        raise LlmplanError(f"the corpus byte limit must be positive, got {max_bytes}")

    chunks: list[bytes] = []
    total = 0
    used = 0
    for path in files:
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise LlmplanError(f"cannot read {path}: {exc.strerror or exc}") from None
        used += 1
        if not body:
            continue
        if max_bytes is not None and total + len(body) > max_bytes:
            body = body[: max_bytes - total]
        chunks.append(body)
        total += len(body)
        if max_bytes is not None and total >= max_bytes:
            break
        chunks.append(SEPARATOR)
        total += len(SEPARATOR)
    stream = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    if len(stream) < 2 * HOLDOUT_EVERY:
        raise LlmplanError(f"the corpus at {root} is too small ({len(stream)} bytes); give more text")
    train, heldout = split_blocks(stream)
    if len(stream) >= HOLDOUT_EVERY * BLOCK_BYTES:
        rule = (f"files joined in sorted order, cut into {BLOCK_BYTES // 1024} KiB blocks; every "
                f"{HOLDOUT_EVERY}th block held out")
    else:
        rule = f"files joined in sorted order; the last 1/{HOLDOUT_EVERY} held out (corpus under " \
               f"{HOLDOUT_EVERY * BLOCK_BYTES // 1024} KiB)"
    suffix = f", first {used} of {len(files)} files" if used < len(files) else f", {len(files)} files"
    return Corpus(description=what + suffix, source=str(root), n_files=used, n_bytes=int(len(stream)),
                  train=train, heldout=heldout, split_rule=rule)
