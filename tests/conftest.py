"""Shared fixtures: a CLI runner that goes through llmplan's own error handling, and an isolated data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmplan.cli import app

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path, monkeypatch):
    """Profiles and caches go to a temporary folder, never the user's own."""
    monkeypatch.setenv("LLMPLAN_DATA_DIR", str(tmp_path / "llmplan-data"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)


@pytest.fixture(scope="module")
def torch_one_thread():
    """One torch thread for a module's runs: the CPU is shared, and oversubscription only slows timing runs."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Run:
    def __init__(self, result):
        self.code = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.exception = result.exception

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture
def cli():
    """cli("memory", "--model", "llama-7b") -> Run with code, stdout, stderr and .json()."""
    runner = CliRunner()

    def invoke(*args: str) -> Run:
        result = runner.invoke(app, [str(a) for a in args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Run(result)

    return invoke
