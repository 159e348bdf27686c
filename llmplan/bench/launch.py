"""`llmplan bench --nproc N`: start PyTorch's own launcher (torchrun) for the one-node case and relay its ranks.

The command becomes `python -m torch.distributed.run --standalone --nproc-per-node N -m llmplan bench ...` with the
same options less --nproc. Ranks record a failure in a temporary file (distributed.ERROR_FILE_ENV); when torchrun
ends badly, the root cause (the first failure not caused by another rank's death) becomes the one error line, and
torchrun's own log lines and failure summary are left out.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading

from llmplan.bench.distributed import ERROR_FILE_ENV
from llmplan.errors import LlmplanError, RunError

# torchrun's own log lines ("W1129 09:30:00.123 4242 torch/distributed/run.py:792] ...") and banners.
_TORCHRUN_LINE = re.compile(r"^[WEIF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ |^\*{10,}|^Setting OMP_NUM_THREADS|^\[[WEI] ")


def strip_option(argv: list[str], option: str) -> list[str]:
    """argv without `option VALUE` or `option=VALUE`."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == option:
            skip = True
            continue
        if arg.startswith(option + "="):
            continue
        out.append(arg)
    return out


def torchrun_command(nproc: int, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
            "-m", "llmplan", *args]


def read_failures(path: str) -> list[tuple[bool, str]]:
    """(primary, message) per failed rank, in the order they were written."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = [line.rstrip("\n") for line in fh if line.strip()]
    except OSError:
        return []
    out = []
    for line in lines:
        kind, _, message = line.partition("\t")
        out.append((kind == "primary", message or kind))
    return out


def root_cause(failures: list[tuple[bool, str]]) -> str | None:
    primary = [m for p, m in failures if p]
    return (primary or [m for _, m in failures] or [None])[0]


def _relay(stream, write, torchrun_lines: list[str], muted: threading.Event | None = None) -> None:
    """Copy the ranks' output through, keeping torchrun's own log lines and failure summary aside; nothing once
    `muted` is set (an interrupted run says so once, not once per rank)."""
    quiet = False
    for line in stream:
        if line.startswith("Traceback (most recent call last)") or "ChildFailedError" in line:
            quiet = True  # torchrun's failure summary: the error file says it in one line
        if quiet or (muted is not None and muted.is_set()) or _TORCHRUN_LINE.match(line):
            torchrun_lines.append(line)
            continue
        write(line)


STOP_SECONDS = 8.0  # SIGTERM, then SIGKILL: every rank is gone within 10 s of the interrupt


def stop(proc: subprocess.Popen, grace: float = STOP_SECONDS) -> None:
    """End torchrun and every worker of its session: SIGTERM to the group (torchrun stops its workers, each rank
    stops as on Ctrl-C), SIGKILL to whatever is left after `grace` seconds."""
    import signal

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        try:  # torchrun has exited; a worker it did not reap may still hold the group
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break


def launch(nproc: int, args: list[str]) -> None:
    """Run `llmplan *args` on nproc local processes under torchrun; RunError with one line if any rank fails."""
    if nproc < 1:
        raise LlmplanError(f"--nproc must be at least 1, got {nproc}")
    fd, errfile = tempfile.mkstemp(prefix="llmplan-dist-", suffix=".err")
    os.close(fd)
    env = dict(os.environ)
    env[ERROR_FILE_ENV] = errfile
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))  # torchrun warns otherwise
    env.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    logs: list[str] = []
    try:
        # torchrun and its workers in a session of their own: a signal to the launcher alone (SIGTERM from a
        # scheduler, SIGINT from kill) reaches them through stop(), and nothing is left behind.
        proc = subprocess.Popen(torchrun_command(nproc, args), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, bufsize=1, start_new_session=True)
        muted = threading.Event()
        threads = [threading.Thread(target=_relay, args=(proc.stdout, sys.stdout.write, logs, muted), daemon=True),
                   threading.Thread(target=_relay, args=(proc.stderr, sys.stderr.write, logs, muted), daemon=True)]
        for t in threads:
            t.start()
        try:
            code = proc.wait()
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop every rank within STOP_SECONDS, then say it once
            muted.set()
            stop(proc)
            raise
        for t in threads:
            t.join(timeout=10)
        sys.stdout.flush()
        if code != 0:
            cause = root_cause(read_failures(errfile))
            if cause is None:
                exit_lines = [ln.strip() for ln in logs if "exitcode" in ln]
                detail = f" ({exit_lines[0]})" if exit_lines else ""
                cause = (f"a rank ended without a message{detail}; run the same command under torchrun to see "
                         "every rank's output")
            raise RunError(f"distributed bench failed, all {nproc} processes stopped: {cause}")
    finally:
        try:
            os.unlink(errfile)
        except OSError:
            pass
