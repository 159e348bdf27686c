"""`llmplan fit` says when a few runs dominate the fit, which --drop-highest leaves them out, how far the law moves,
and flags constants the runs do not determine (issue 15)."""

import math
from pathlib import Path

import numpy as np

from llmplan.fit.influence import drop_highest_for, influential_runs, threshold

DATA = Path(__file__).resolve().parent / "data" / "chinchilla_figure4_points.csv"
TRUTH = {"E": 1.9, "A": 500.0, "B": 1500.0, "alpha": 0.36, "beta": 0.31}


class Law:
    def loss(self, n, d):
        return TRUTH["E"] + TRUTH["A"] / n ** TRUTH["alpha"] + TRUTH["B"] / d ** TRUTH["beta"]


def runs(count=40, spoiled=(), factor=1.4, seed=5):
    rng = np.random.default_rng(seed)
    n = np.exp(rng.uniform(math.log(1e7), math.log(3e9), count))
    d = n * np.exp(rng.uniform(math.log(2), math.log(300), count))
    loss = np.array([Law().loss(a, b) for a, b in zip(n, d)]) * np.exp(rng.normal(0, 0.003, count))
    for i in spoiled:
        loss[i] *= factor
    return list(n), list(d), list(loss)


def write(path, n, d, loss):
    path.write_text("params,tokens,loss\n" + "".join(f"{a:.6g},{b:.6g},{c:.6g}\n" for a, b, c in zip(n, d, loss)))
    return path


def test_spoiled_runs_are_found_and_ranked_by_loss():
    n, d, loss = runs(spoiled=(3, 17))
    flagged = influential_runs(Law(), n, d, loss)
    assert sorted(x.index for x in flagged) == [3, 17]
    assert all(x.z < -3.5 for x in flagged)  # observed above predicted: negative log residual
    assert drop_highest_for(flagged, len(n), 6) == max(x.loss_rank for x in flagged)
    assert not influential_runs(Law(), *runs())  # clean runs flag nothing


def test_the_threshold_grows_with_the_number_of_runs():
    assert threshold(40) == 3.5 and 4.4 < threshold(10_000) < 4.7


def test_fit_warns_and_says_which_drop_highest_removes_them(cli, tmp_path):
    n, d, loss = runs(spoiled=(3, 17), factor=1.3)
    path = write(tmp_path / "runs.csv", n, d, loss)
    r = cli("fit", path, "--bootstrap", "0", "--json")
    assert r.code == 0, r.stderr
    info = r.json()["influential"]
    spoiled = sorted(loss[i] for i in (3, 17))
    assert sorted(x["loss"] for x in info["runs"][:2]) == [float(f"{v:.6g}") for v in spoiled]  # the largest |z|
    assert info["drop_highest"] is not None
    err = " ".join(r.stderr.split())
    assert "dominate the fit" in err and f"--drop-highest {info['drop_highest']}" in err
    clean = cli("fit", write(tmp_path / "clean.csv", *runs()), "--bootstrap", "0", "--json")
    assert not (clean.json()["influential"] or {}).get("dominant") and "dominate" not in clean.stderr


def test_the_chinchilla_points_point_at_the_five_runs_the_replication_drops(cli):
    # Besiroglu et al. 2024 leave out five runs of the 245 (llmplan: --drop-highest 5); the warning finds them.
    r = cli("fit", DATA, "--bootstrap", "0", "--json")
    assert r.code == 0 and r.json()["influential"]["drop_highest"] == 5
