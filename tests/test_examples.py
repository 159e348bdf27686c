"""Every example a user is shown runs as written: the README's commands and each command's --help examples
(docs/cli.md is generated from --help, and tests/test_docs.py checks that it is current).

Examples are collected when the test runs, so a new command's examples are checked as soon as they exist. They run
in a scratch folder holding a link to examples/ (the files the examples name are shipped there) and a data folder
with an H100 calibration profile (what `--profile auto` finds after `llmplan bench` on an H100). Bench examples run
with a smaller budget (`--budget-seconds`, steps, rungs) appended, since the last value of an option wins; those
that build a 7B model or start torchrun need a GPU and are skipped without one.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SMALLER = {  # what a bench example gets appended in the test (the budget, not the question)
    "ladder": ["--budget-seconds", "4", "--max-rungs", "2", "--steps", "1", "--warmup", "0"],
    "model": ["--steps", "1", "--warmup", "0"],
    "scaling": ["--budget-seconds", "20"],
    "calibrate": ["--steps", "1", "--warmup", "0"],
}


def help_examples() -> list[tuple[str, str]]:
    from typer.main import get_command

    from llmplan.cli import app

    group = get_command(app)
    texts = [("llmplan --help", group.help or "")]
    texts += [(f"llmplan {name} --help", group.get_command(None, name).help or "")
              for name in group.list_commands(None)]
    out = []
    for source, text in texts:
        for line in text.split("Examples:", 1)[1].splitlines() if "Examples:" in text else []:
            if line.strip().startswith("llmplan "):
                out.append((source, line.strip()))
    return out


def readme_examples() -> list[tuple[str, str]]:
    out, in_code = [], False
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        text = line.strip().removeprefix("$ ")
        if in_code and "llmplan " in text:
            for part in text.split("&&"):  # a chain runs in order, in one folder
                if part.strip().startswith("llmplan "):
                    out.append(("README.md", part.strip()))
    return out


def examples() -> list[tuple[str, str]]:
    seen, out = set(), []
    for source, line in readme_examples() + help_examples():
        key = tuple(shlex.split(line, comments=True))  # the same command with another comment runs once
        if key not in seen:
            seen.add(key)
            out.append((source, line))
    return out


def test_there_are_examples_from_every_source():
    sources = {s for s, _ in examples()}
    assert "README.md" in sources and "llmplan memory --help" in sources and "llmplan fit --help" in sources


def _needs_gpu(argv: list[str]) -> bool:
    return "--nproc" in argv or ("--model" in argv and argv[argv.index("--model") + 1] not in ("gpt2-124m",))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("examples")
    (folder / "examples").symlink_to(ROOT / "examples")
    profiles = folder / "data" / "profiles"
    profiles.mkdir(parents=True)
    runs = [{"status": "ok", "name": f"run-{n:.0e}", "params": n, "layers": 12, "batch": 8, "seq": 2048,
             "dtype": "bf16", "step_seconds": 0.5, "tokens_per_second": 3e4, "achieved_flops": 0.4 * 989.4e12,
             "mfu": 0.4} for n in (1.25e8, 3.5e8, 7.6e8, 1.3e9)]
    (profiles / "nvidia-h100-80gb-hbm3.json").write_text(json.dumps({
        "schema_version": 1, "kind": "llmplan.profile", "created": "2026-12-01T00:00:00Z",
        "device": {"name": "NVIDIA H100 80GB HBM3", "kind": "cuda", "memory_bytes": 85520809984,
                   "peak_flops": 989.4e12, "dtype": "bf16"}, "versions": {}, "runs": runs, "fit": None,
        "overhead_bytes": 2**30, "overhead_method": "test fixture"}))
    return folder


@pytest.mark.parametrize("source, line", examples(), ids=[line[8:60] for _, line in examples()])
def test_the_example_runs_as_written(scratch, monkeypatch, source, line):
    argv = shlex.split(line, comments=True)[1:]
    if argv and argv[0] == "bench":
        torch = pytest.importorskip("torch")
        if _needs_gpu(argv) and not torch.cuda.is_available():
            pytest.skip("a 7B model or torchrun: checked on a GPU machine")
        kind = ("scaling" if "--scaling" in argv else "calibrate" if "--calibrate" in argv else
                "model" if "--model" in argv else "ladder")
        argv += SMALLER[kind]
    monkeypatch.chdir(scratch)
    monkeypatch.setenv("LLMPLAN_DATA_DIR", str(scratch / "data"))
    result = CliRunner().invoke(__import__("llmplan.cli", fromlist=["app"]).app, argv)
    assert result.exit_code == 0, f"{source}: {line}\n{result.stderr[-1500:]}"
    assert "Traceback" not in result.stderr
    if "--json" in argv:
        json.loads(result.stdout)
