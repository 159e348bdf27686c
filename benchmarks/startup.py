"""Start-up speed of the planner commands against the floor of starting Python with Typer.

Runs each command REPEAT times in a fresh process (after one unmeasured warm-up run that fills the OS file cache),
interleaved so that machine noise hits all commands alike, and reports the median wall time, the spread (min-max)
and the ratio to the floor. Two floors are measured in the same run:

- `import typer`: starting Python and importing Typer;
- a one-command Typer app with one option (`hello --name x`): what any Typer CLI pays to parse a command line
  (Typer 0.2x builds a pydantic adapter per parameter, which `import typer` alone does not load).

Peers are timed where installed (import time only: `accelerate estimate-memory` needs the model hub).

Usage: python benchmarks/startup.py [--repeat 15] [--write docs/validation.md]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "data" / "hf_configs" / "Llama-2-7b-hf" / "config.json"

HELLO = (
    "import typer\n"
    "app = typer.Typer()\n"
    "@app.command()\n"
    "def hello(name: str = typer.Option('x')):\n"
    "    print(name)\n"
    "app()\n"
)


def commands() -> list[tuple[str, list[str]]]:
    py = sys.executable
    llm = [py, "-m", "llmplan"]
    cmds = [
        ("floor: python + import typer", [py, "-c", "import typer"]),
        ("floor: one-option Typer app", [py, "-c", HELLO, "--name", "x"]),
        ("llmplan memory (preset)", [*llm, "memory", "--model", "llama-2-7b", "--gpu", "h100", "--json"]),
        ("llmplan compute (preset)", [*llm, "compute", "--model", "llama-2-7b", "--tokens", "2T", "--gpu", "h100",
                                      "--gpus", "64", "--json"]),
        ("llmplan chinchilla", [*llm, "chinchilla", "--flops", "1e23", "--json"]),
    ]
    if CONFIG.exists():
        cmds += [
            ("llmplan memory (config.json)", [*llm, "memory", "--model", str(CONFIG), "--json"]),
            ("llmplan compute (config.json)", [*llm, "compute", "--model", str(CONFIG), "--tokens", "2T",
                                               "--json"]),
        ]
    for label, module in (("peer: import llm_analysis", "llm_analysis.analysis"),
                          ("peer: import accelerate estimate", "accelerate.commands.estimate")):
        probe = subprocess.run([py, "-c", f"import {module}"], capture_output=True)
        if probe.returncode == 0:
            cmds.append((label, [py, "-c", f"import {module}"]))
    return cmds


def time_once(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}... failed: {proc.stderr.decode()[-300:]}")
    return elapsed


def measure(repeat: int) -> list[dict]:
    cmds = commands()
    samples: dict[str, list[float]] = {label: [] for label, _ in cmds}
    for _, argv in cmds:
        time_once(argv)  # warm-up: file cache, .pyc files
    for _ in range(repeat):
        for label, argv in cmds:
            samples[label].append(time_once(argv))
    rows = []
    floor = statistics.median(samples["floor: one-option Typer app"])
    for label, _ in cmds:
        s = samples[label]
        med = statistics.median(s)
        rows.append({"command": label, "median_s": med, "min_s": min(s), "max_s": max(s), "ratio": med / floor})
    return rows


def markdown(rows: list[dict], repeat: int) -> str:
    lines = [
        f"Measured {date.today().isoformat()} on {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {_cpu()}; {repeat} runs each, interleaved, after one warm-up run; "
        "`python benchmarks/startup.py`. Ratio is to the one-option Typer app. Target: 1.3x or less.",
        "",
        "| command | median (ms) | min-max (ms) | ratio to floor |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['command']} | {r['median_s'] * 1e3:.0f} | {r['min_s'] * 1e3:.0f}-{r['max_s'] * 1e3:.0f} "
                     f"| {r['ratio']:.2f} |")
    return "\n".join(lines)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({shutil.os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{shutil.os.cpu_count()} cores"


def write_section(path: Path, name: str, body: str) -> None:
    """Replace the text between `<!-- section: name -->` and `<!-- end: name -->` in path."""
    text = path.read_text()
    start, end = f"<!-- section: {name} -->", f"<!-- end: {name} -->"
    if start not in text or end not in text:
        raise SystemExit(f"{path} has no section markers for {name!r}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{body}\n{end}{tail}")


def section_main(doc: str, name: str, render) -> None:
    """The command line of a script whose whole output is one generated section: print it; --write FILE puts it
    between FILE's `<!-- section: name -->` markers."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--write", type=Path, help=f"a markdown file with a `{name}` section to update")
    args = parser.parse_args()
    text = render()
    print(text)
    if args.write:
        write_section(args.write, name, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--write", type=Path, help="a markdown file with a `startup` section to update")
    args = parser.parse_args()
    rows = measure(args.repeat)
    text = markdown(rows, args.repeat)
    print(text)
    if args.write:
        write_section(args.write, "startup", text)


if __name__ == "__main__":
    main()
