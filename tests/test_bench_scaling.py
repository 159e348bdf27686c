"""The scaling sweep: corpus and split, IsoFLOP grid and recipe, a micro sweep end to end, its CSV and law.json."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmplan.bench.corpus import HOLDOUT_EVERY, SEPARATOR, load_corpus, split_blocks
from llmplan.bench.scaling_grid import (Recipe, isoflop_grid, lr_at, peak_lr, plan_run, shape_ladder,
                                        sizes_for_budget)
from llmplan.errors import LlmplanError
from llmplan.models.params import count_params

MICRO = Recipe(seq=32, batch=8, eval_tokens=1024, min_steps=8)


# Corpus -----------------------------------------------------------------------------------------------------------
def test_default_corpus_is_the_standard_library_and_its_split_is_fixed():
    a = load_corpus(max_bytes=150_000)
    b = load_corpus(max_bytes=150_000)
    assert "standard library" in a.description
    assert a.n_bytes == 150_000 == len(a.train) + len(a.heldout)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.heldout, b.heldout)
    assert len(a.heldout) == 150_000 // HOLDOUT_EVERY  # small corpus: the last 1/20 held out


def test_block_split_holds_out_every_twentieth_block():
    stream = (np.arange(40 * 10) // 10).astype(np.uint8)  # block k is filled with the value k
    train, held = split_blocks(stream, block_bytes=10, every=HOLDOUT_EVERY)
    assert sorted(set(held.tolist())) == [19, 39]
    assert not {19, 39} & set(train.tolist())
    assert len(train) + len(held) == len(stream)


def test_data_folder_reads_text_files_in_sorted_order(tmp_path):
    (tmp_path / "b.txt").write_text("second file\n" * 20)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.md").write_text("first file\n" * 20)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "skip.txt").write_text("hidden\n")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01binary")
    c = load_corpus(tmp_path)
    joined = bytes(np.concatenate([c.train, c.heldout]))
    assert c.n_files == 2
    assert joined.startswith(b"first file\n" * 20 + SEPARATOR + b"second file\n")
    assert b"hidden" not in joined and b"binary" not in joined
    assert c.summary()["tokens"] == len(joined)


def test_data_single_file_and_bad_paths(tmp_path):
    f = tmp_path / "one.txt"
    f.write_text("hello world " * 100)
    assert load_corpus(f).n_bytes == len(f.read_bytes()) + len(SEPARATOR)
    with pytest.raises(LlmplanError, match="does not exist"):
        load_corpus(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LlmplanError, match="no text files"):
        load_corpus(tmp_path / "empty")


# Grid and recipe --------------------------------------------------------------------------------------------------
def test_ladder_grows_and_isoflop_runs_spend_their_budget():
    ladder = shape_ladder(64)
    sizes = [count_params(s).total for s in ladder]
    assert sizes == sorted(sizes) and all(b >= 1.25 * a for a, b in zip(sizes, sizes[1:]))
    recipe = Recipe(seq=64, batch=16)
    grid = isoflop_grid(1e13, 3, 4, ladder, recipe)
    budgets = sorted({r.budget_flops for r in grid})
    assert len(budgets) == 3 and budgets[-1] == pytest.approx(1e13)
    for r in grid:
        assert r.tokens == r.steps * recipe.tokens_per_step
        assert r.flops == 6 * r.params * r.tokens
        assert abs(r.flops - r.budget_flops) <= 6 * r.params * recipe.tokens_per_step  # within one step
    for c in budgets:
        group = [r.params for r in grid if r.budget_flops == c]
        assert len(set(group)) == len(group) >= 3  # several distinct sizes per budget


def test_too_short_runs_are_left_out_of_the_grid():
    ladder = shape_ladder(32)
    runs = sizes_for_budget(1e8, ladder, MICRO, 4)
    assert all(r.steps >= MICRO.min_steps for r in runs)


def test_schedule_warms_up_then_decays_to_a_tenth():
    recipe = Recipe()
    steps, peak = 100, 1e-3
    lrs = [lr_at(i, steps, peak, recipe) for i in range(steps)]
    warm = round(recipe.warmup_fraction * steps)
    assert lrs[:warm] == sorted(lrs[:warm]) and lrs[warm - 1] == pytest.approx(peak)
    assert lrs[warm:] == sorted(lrs[warm:], reverse=True)
    assert lrs[-1] == pytest.approx(recipe.final_lr_fraction * peak)
    # The power law through GPT-3's Table 2.1: within 20 % of its rows from d_model 1024 to 5120 (125M's 6e-4 at
    # 768 and 175B's 0.6e-4 at 12288 sit further off, 26 % and 13 %).
    for d_model, lr in ((1024, 3e-4), (2048, 2e-4), (4096, 1.2e-4), (5120, 1e-4)):
        assert peak_lr(d_model) == pytest.approx(lr, rel=0.2)
    assert peak_lr(64) > peak_lr(128) > peak_lr(256)


# A micro sweep end to end -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def micro_sweep():
    from llmplan.bench.scaling import run_sweep

    corpus = load_corpus(max_bytes=120_000)
    return run_sweep(corpus, MICRO, "cpu", n_budgets=2, per_budget=4, max_budget=2.4e9, bootstrap=0)


@pytest.mark.slow
def test_micro_sweep_trains_fits_and_validates(micro_sweep):
    r = micro_sweep
    assert len(r.runs) >= 6 and not r.interrupted
    for run in r.runs:
        assert math.isfinite(run.loss) and run.loss < math.log(256)  # better than a uniform guess over bytes
        assert run.flops == 6 * run.params * run.tokens
    assert r.fit is not None and r.fit.n_runs == len(r.runs)
    p = r.prediction
    assert p["flops"] > 3 * max(run.flops for run in r.runs)  # the held-back run is about 4x the largest budget
    assert p["predicted_loss"] == pytest.approx(r.fit.loss(p["params"], p["tokens"]))
    assert math.isfinite(p["measured_loss"])
    assert p["relative_error"] == pytest.approx((p["predicted_loss"] - p["measured_loss"]) / p["measured_loss"])
    assert r.corpus["bytes"] == 120_000


@pytest.mark.slow
def test_runs_csv_reads_back_through_the_fit_reader_and_law_loads(micro_sweep, tmp_path):
    from llmplan.bench.scaling_io import write_outputs
    from llmplan.estimate.laws import get_law
    from llmplan.fit.runs import read_runs

    files = write_outputs(micro_sweep, tmp_path / "out", tmp_path / "law.json")
    runs = read_runs(files["runs_csv"])
    assert list(runs.params) == [float(r.params) for r in micro_sweep.runs]
    assert list(runs.tokens) == [float(r.tokens) for r in micro_sweep.runs]
    assert list(runs.losses) == pytest.approx([r.loss for r in micro_sweep.runs], abs=1e-6)
    for path in (files["law_json"], files["saved_law"]):
        law = get_law(path)
        n, d = 5e4, 1e6
        assert law.loss(n, d) == pytest.approx(micro_sweep.fit.loss(n, d), rel=1e-9)


def test_ctrl_c_keeps_the_finished_runs():
    from llmplan.bench.scaling import NullProgress, run_sweep

    class StopAtThird(NullProgress):
        def start(self, index, total, run, label):
            if index == 3:
                raise KeyboardInterrupt

    corpus = load_corpus(max_bytes=60_000)
    r = run_sweep(corpus, MICRO, "cpu", n_budgets=2, per_budget=4, max_budget=1.2e9, bootstrap=0,
                  progress=StopAtThird())
    assert r.interrupted and len(r.runs) == 2 and r.fit is None and r.prediction is None


# The command ------------------------------------------------------------------------------------------------------
def test_scaling_rejects_bad_inputs_before_training(cli, tmp_path):
    r = cli("bench", "--scaling", "--data", tmp_path / "missing", "--device", "cpu")
    assert r.code == 2 and "does not exist" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("bench", "--scaling", "--save-law", tmp_path, "--device", "cpu")
    assert r.code == 2 and "is a folder" in r.stderr
    r = cli("bench", "--scaling", "--budget-seconds", "0", "--device", "cpu")
    assert r.code == 2 and "--budget-seconds" in r.stderr


def test_scaling_refuses_options_it_does_not_use(cli):
    r = cli("bench", "--scaling", "--model", "gpt2", "--device", "cpu")
    assert r.code == 2 and "--model" in r.stderr and "--scaling" in r.stderr
    r = cli("bench", "--data", "somewhere", "--device", "cpu")
    assert r.code == 2 and "--scaling" in r.stderr


@pytest.mark.slow
def _sweep_returns(monkeypatch, result):
    """The command around a sweep already trained (the micro sweep above): its options, files and output."""
    import llmplan.bench.scaling as scaling

    seen = {}

    def fake(corpus, recipe, device, n_budgets, per_budget, **kwargs):
        seen.update(recipe=recipe, n_budgets=n_budgets, per_budget=per_budget, **kwargs)
        return result

    monkeypatch.setattr(scaling, "run_sweep", fake)
    return seen


def test_scaling_command_json_has_runs_fit_prediction_and_corpus(micro_sweep, tmp_path, capsys, monkeypatch):
    import json

    from llmplan.cli.bench_scaling import run_scaling

    seen = _sweep_returns(monkeypatch, micro_sweep)
    run_scaling(quick=True, budget_seconds=None, data=None, device="cpu", out=tmp_path / "out",
                save_law=None, as_json=True, budgets=2, sizes=4, max_flops=2.4e9, max_corpus_bytes=120_000,
                progress=False, recipe_overrides={"seq": 32, "batch": 8, "eval_tokens": 1024, "min_steps": 8})
    assert seen["recipe"].seq == 32 and seen["max_budget"] == 2.4e9 and seen["budget_seconds"] is None
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema_version"] == 1 and len(doc["runs"]) >= 6
    for key in ("E", "A", "B", "alpha", "beta", "a", "b", "intervals", "n_runs", "residual_rms"):
        assert key in doc["fit"]
    assert {"flops", "predicted_loss", "measured_loss"} <= set(doc["prediction"])
    assert doc["corpus"]["bytes"] == 120_000 and "standard library" in doc["corpus"]["description"]
    assert doc["optimal"][-1]["tokens_per_param"] > 0
    budgets = sorted({r["budget_flops"] for r in doc["runs"]})
    for g in doc["isoflop_minima"]:  # one parabola per budget that has three sizes or more
        assert min(abs(g["flops"] / c - 1) for c in budgets) < 1e-9
    assert (tmp_path / "out" / "runs.csv").exists() and (tmp_path / "out" / "law.json").exists()


def test_an_interrupted_sweep_prints_and_keeps_what_finished_then_exits_130(micro_sweep, tmp_path, capsys,
                                                                          monkeypatch):
    from dataclasses import replace

    import typer

    from llmplan.cli.bench_scaling import run_scaling

    _sweep_returns(monkeypatch, replace(micro_sweep, interrupted=True, prediction=None))
    with pytest.raises(typer.Exit) as stop:
        run_scaling(quick=True, budget_seconds=None, data=None, device="cpu", out=tmp_path / "out",
                    save_law=None, as_json=False, max_corpus_bytes=120_000, progress=False)
    assert stop.value.exit_code == 130
    captured = capsys.readouterr()
    assert "Runs (held-out loss" in captured.out and "interrupted" in captured.err
    assert (tmp_path / "out" / "runs.csv").read_text().count("\n") == len(micro_sweep.runs) + 1


def test_tables_render_the_sweep(micro_sweep, tmp_path, capsys):
    from llmplan.bench.scaling import optimal_points
    from llmplan.cli.bench_scaling import render

    render(micro_sweep, optimal_points(micro_sweep.fit, [1e9, 4e9]), {"runs_csv": str(tmp_path / "runs.csv")})
    out = capsys.readouterr().out
    assert "Fitted L(N, D)" in out and "tokens per param" in out and "predicted loss" in out
    assert micro_sweep.runs[0].name in out


def test_plan_run_rounds_to_whole_steps():
    spec = shape_ladder(32)[0]
    run = plan_run(1e9, spec, MICRO)
    assert run.steps == round(1e9 / (6 * run.params * MICRO.tokens_per_step))
