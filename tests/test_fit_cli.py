"""`llmplan fit`: CSV validation, JSON output, law.json round trip, plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parent / "data" / "chinchilla_figure4_points.csv"
TRUTH = {"E": 1.9, "A": 500.0, "B": 1500.0, "alpha": 0.36, "beta": 0.31}


def write_runs(path: Path, count: int = 40, noise: float = 0.003, header: str = "params,tokens,loss") -> Path:
    rng = np.random.default_rng(11)
    n = np.exp(rng.uniform(math.log(1e7), math.log(3e9), count))
    d = n * np.exp(rng.uniform(math.log(2), math.log(300), count))
    loss = (TRUTH["E"] + TRUTH["A"] / n ** TRUTH["alpha"] + TRUTH["B"] / d ** TRUTH["beta"]) * \
        np.exp(rng.normal(0, noise, count))
    lines = [header] + [f"{a:.6g},{b:.6g},{c:.6g}" for a, b, c in zip(n, d, loss)]
    path.write_text("\n".join(lines) + "\n")
    return path


def one_line_error(run, *needles: str) -> None:
    assert run.code == 2, (run.code, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmplan: error:"), run.stderr
    assert run.stdout == ""
    for needle in needles:
        assert needle in lines[0], lines[0]


JSON_KEYS = {"schema_version", "E", "A", "B", "alpha", "beta", "a", "b", "intervals", "n_runs", "residual_rms"}


def test_json_on_the_chinchilla_runs(cli):
    run = cli("fit", DATA, "--drop-highest", "5", "--bootstrap", "0", "--json")
    assert run.code == 0, run.stderr
    out = run.json()
    assert JSON_KEYS <= set(out)
    assert out["n_runs"] == 240 and out["dropped"] == 5 and out["tokens_from_flops"] is True
    assert out["intervals"] is None
    # Besiroglu et al. 2024, Table 1 (see tests/test_fit_chinchilla.py for the tolerance).
    assert out["alpha"] == pytest.approx(0.3478, rel=0.01) and out["beta"] == pytest.approx(0.3658, rel=0.01)
    assert out["a"] == pytest.approx(out["beta"] / (out["alpha"] + out["beta"]))
    at = out["at_flops"]
    assert at["flops"] == 1e23 and at["tokens_per_param"] == pytest.approx(at["tokens"] / at["params"])
    assert out["envelope"]["gamma"] > 0 and out["envelope"]["n_points"] >= 4


def test_bootstrap_intervals_in_json_and_progress_off_stdout(cli, tmp_path):
    runs = write_runs(tmp_path / "runs.csv")
    run = cli("fit", runs, "--bootstrap", "8", "--json", "--at-flops", "1e21")
    assert run.code == 0, run.stderr
    out = run.json()  # stdout is exactly one JSON object
    assert set(out["intervals"]) == {"E", "A", "B", "alpha", "beta", "a", "b"}
    for key, (lo, hi) in out["intervals"].items():
        assert lo <= out[key] <= hi or key in ("A", "B"), key
    assert out["bootstrap_samples"] == 8 and out["at_flops"]["flops"] == 1e21


def test_table_output(cli, tmp_path):
    run = cli("fit", write_runs(tmp_path / "runs.csv"), "--bootstrap", "3")
    assert run.code == 0, run.stderr
    for text in ("alpha", "tokens per parameter", "RMS log residual", "95% bootstrap"):
        assert text in run.stdout


def test_save_round_trip_through_the_law_reader(cli, tmp_path):
    from llmplan.estimate.laws import get_law

    target = tmp_path / "law.json"
    run = cli("fit", write_runs(tmp_path / "runs.csv"), "--bootstrap", "4", "--save", target, "--json",
              "--name", "team-law")
    assert run.code == 0, run.stderr
    doc = json.loads(target.read_text())
    assert doc["kind"] == "llmplan.law" and doc["schema_version"] == 1 and doc["name"] == "team-law"
    assert doc["form"] == "E + A/N^alpha + B/D^beta" and doc["n_runs"] == 40
    assert set(doc["intervals"]) == {"E", "A", "B", "alpha", "beta"}
    out = run.json()
    law = get_law(str(target))
    for key in ("E", "A", "B", "alpha", "beta"):
        assert getattr(law, key) == pytest.approx(out[key], rel=1e-12)
    assert law.optimal(1e23)[0] == pytest.approx(out["at_flops"]["params"], rel=1e-9)
    assert not list(tmp_path.glob(".law-*"))  # no temporary file left behind
    planned = cli("chinchilla", "--law", target, "--flops", "1e23", "--json")
    assert planned.code == 0, planned.stderr


def test_plot_is_written(cli, tmp_path):
    target = tmp_path / "fit.png"
    run = cli("fit", write_runs(tmp_path / "runs.csv"), "--bootstrap", "0", "--plot", target)
    assert run.code == 0, run.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_flops_column_gives_tokens(cli, tmp_path):
    path = tmp_path / "runs.csv"
    rows = write_runs(tmp_path / "tmp.csv").read_text().splitlines()[1:]
    lines = ["Params,FLOPs,Loss"] + [f"{n},{6 * float(n) * float(d):.9g},{loss}"
                                     for n, d, loss in (r.split(",") for r in rows)]
    path.write_text("\n".join(lines) + "\n")
    by_flops = cli("fit", path, "--bootstrap", "0", "--json").json()
    by_tokens = cli("fit", tmp_path / "tmp.csv", "--bootstrap", "0", "--json").json()
    assert by_flops["tokens_from_flops"] is True and by_tokens["tokens_from_flops"] is False
    assert by_flops["alpha"] == pytest.approx(by_tokens["alpha"], rel=1e-4)


@pytest.mark.parametrize("content, needles", [
    ("params,loss\n1e8,3.0\n", ("tokens or flops",)),
    ("tokens,loss\n1e9,3.0\n", ("params",)),
    ("params,tokens\n1e8,1e9\n", ("loss",)),
    ("params,tokens,loss\n1e8,1e9,3.0\n2e8,2e9,2.9\n", ("2 run(s)", "at least 6")),
    ("params,tokens,loss\n" + "1e8,1e9,3.0\n" * 6 + "-2e8,1e9,3.0\n", ("line 8", "params")),
    ("params,tokens,loss\n" + "1e8,1e9,3.0\n" * 6 + "2e8,1e9,0\n", ("line 8", "loss")),
    ("params,tokens,loss\n" + "1e8,1e9,3.0\n" * 6 + "2e8,1e9,nan\n", ("line 8", "finite")),
    ("params,tokens,loss\n" + "1e8,1e9,3.0\n" * 6 + "2e8,inf,3\n", ("line 8", "tokens")),
    ("params,tokens,loss\n" + "1e8,1e9,3.0\n" * 6 + "abc,1e9,3\n", ("line 8", "params")),
    ("params,tokens,loss\n" + "1e8,1e9,3.0\n" * 6 + "2e8,,3\n", ("line 8", "tokens nor flops")),
    ("", ("empty",)),
])
def test_bad_csv_exits_2_with_one_line(cli, tmp_path, content, needles):
    path = tmp_path / "runs.csv"
    path.write_text(content)
    one_line_error(cli("fit", path, "--bootstrap", "0"), *needles)


def test_unreadable_inputs(cli, tmp_path):
    one_line_error(cli("fit", tmp_path / "missing.csv"), "no such runs file")
    one_line_error(cli("fit", tmp_path), "folder")
    binary = tmp_path / "runs.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 20)
    one_line_error(cli("fit", binary), "cannot read")


def test_runs_that_do_not_vary_are_rejected(cli, tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss\n" + "".join(f"1e8,{i}e9,{3 - i / 10}\n" for i in range(1, 9)))
    one_line_error(cli("fit", path, "--bootstrap", "0"), "vary")


@pytest.mark.parametrize("option, value, needle", [
    ("--delta", "0", "--delta"),
    ("--bootstrap", "1", "--bootstrap"),
    ("--bootstrap", "-3", "--bootstrap"),
    ("--at-flops", "lots", "--at-flops"),
    ("--drop-highest", "38", "--drop-highest"),
    ("--isoflop-tol", "-1", "--isoflop-tol"),
    ("--plot", "fit.txt", "--plot"),
])
def test_bad_options_exit_2(cli, tmp_path, option, value, needle):
    one_line_error(cli("fit", write_runs(tmp_path / "runs.csv"), option, value), needle)


def test_bad_output_paths_write_nothing(cli, tmp_path):
    runs = write_runs(tmp_path / "runs.csv")
    one_line_error(cli("fit", runs, "--save", tmp_path / "no" / "law.json"), "--save")
    one_line_error(cli("fit", runs, "--plot", tmp_path / "no" / "fit.png"), "--plot")
    # A bad plot path stops the run before law.json is written.
    one_line_error(cli("fit", runs, "--save", tmp_path / "law.json", "--plot", tmp_path / "no" / "fit.png"))
    assert not (tmp_path / "law.json").exists()
