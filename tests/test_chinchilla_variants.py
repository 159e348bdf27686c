"""Beyond the compute-optimal point: inference-aware sizing (Sardana et al. 2024) and data-constrained scaling
(Muennighoff et al. 2023)."""

import math

import pytest

from llmplan.errors import LlmplanError
from llmplan.estimate import data_constrained as dc
from llmplan.estimate.inference_aware import compute_optimal_for_loss, inference_aware, tokens_for_loss
from llmplan.estimate.laws import get_law


def rel(a, b):
    return abs(a - b) / abs(b)


@pytest.mark.parametrize("name", ["hoffmann", "epoch"])
def test_no_inference_gives_back_the_compute_optimal_model(name):
    law = get_law(name)
    target = law.loss(7e9, law.optimal_tokens(7e9))
    r = inference_aware(law, 0.0, target)
    assert rel(r.best.params, 7e9) < 0.01
    assert r.saved_fraction < 1e-4


@pytest.mark.parametrize("name", ["hoffmann", "epoch"])
def test_inference_aware_model_is_smaller_reaches_the_target_and_saves_flops(name):
    # Sardana et al. 2024: with heavy inference demand, a smaller model trained longer is cheaper overall.
    law = get_law(name)
    target = law.loss(7e9, law.optimal_tokens(7e9))
    r = inference_aware(law, 2e12, target)
    assert r.best.params < 7e9 and r.best.tokens_per_param > r.compute_optimal.tokens_per_param
    assert rel(law.loss(r.best.params, r.best.tokens), target) < 1e-9
    assert rel(r.best.total_flops, 6 * r.best.params * r.best.tokens + 2 * r.best.params * 2e12) < 1e-12
    assert r.saved_flops > 0
    assert rel(r.saved_flops, r.compute_optimal.total_flops - r.best.total_flops) < 1e-9
    # no model on the iso-loss curve does better (brute-force scan)
    scan = []
    for i in range(1, 3000):
        n = r.best.params * 10 ** ((i - 1500) / 1000)
        d = tokens_for_loss(law, n, target)
        if math.isfinite(d):
            scan.append(6 * n * d + 2 * n * 2e12)
    assert min(scan) >= r.best.total_flops * (1 - 1e-6)


def test_sardana_figure1_13b_with_2t_inference_tokens():
    # Sardana et al. 2024, Figure 1: a 13B model (Chinchilla law) expecting 2T tokens of inference demand; a 7B
    # model trained on more data reaches the same quality and saves 1.7e22 FLOPs (17%) in total.
    law = get_law("hoffmann")
    r = inference_aware(law, 2e12, law.loss(13e9, law.optimal_tokens(13e9)))
    assert rel(r.best.params, 7e9) < 0.03
    assert rel(r.saved_flops, 1.7e22) < 0.06
    assert abs(r.saved_fraction - 0.17) < 0.01


def test_more_inference_means_a_smaller_model():
    law = get_law("hoffmann")
    target = law.loss(13e9, law.optimal_tokens(13e9))
    sizes = [inference_aware(law, t, target).best.params for t in (1e11, 1e12, 1e13, 1e14)]
    assert all(b < a for a, b in zip(sizes, sizes[1:]))


def test_compute_optimal_for_loss_inverts_the_frontier():
    law = get_law("epoch")
    n, d = law.optimal(3e23)
    n2, d2 = compute_optimal_for_loss(law, law.loss(n, d))
    assert rel(n2, n) < 1e-6 and rel(d2, d) < 1e-6


def test_unreachable_loss_is_a_user_error():
    with pytest.raises(LlmplanError):
        inference_aware(get_law("hoffmann"), 1e12, 1.5)  # below E = 1.69
    with pytest.raises(LlmplanError):
        inference_aware(get_law("rule20"), 1e12, 2.0)


def test_inference_cli_json(cli):
    r = cli("chinchilla", "--params", "7B", "--inference-tokens", "2T", "--json")
    assert r.code == 0, r.stderr
    out = r.json()
    assert out["law"] == "hoffmann"  # rule20 has no loss, so the fitted law is used and a note says so
    assert {"inference_flops", "total_flops", "saved_flops", "params", "tokens", "flops", "loss", "laws"} <= set(out)
    assert out["saved_flops"] > 0 and out["params"] < 7e9
    by_loss = cli("chinchilla", "--loss", str(out["target_loss"]), "--inference-tokens", "2T", "--law", "hoffmann",
                  "--json").json()
    assert rel(by_loss["params"], out["params"]) < 1e-4


# ---- data-constrained (Muennighoff et al. 2023) ----

def test_effective_tokens_follow_equation_5():
    u = 100e9
    assert dc.effective_tokens(50e9, u) == 50e9  # under one epoch every token is fresh
    assert dc.effective_tokens(u, u) == u
    four = dc.effective_tokens(4 * u, u)  # R_D = 3
    assert rel(four, u * (1 + 15.387756 * (1 - math.exp(-3 / 15.387756)))) < 1e-12
    assert 0.9 < four / (4 * u) < 0.95  # Muennighoff et al.: 4 epochs are almost as good as fresh data
    # No amount of repetition is worth more than U (1 + R_D*) fresh tokens (section 3.1).
    assert dc.effective_tokens(100 * u, u) < u * (1 + 15.387756)
    assert rel(dc.effective_tokens(1e6 * u, u), u * (1 + 15.387756)) < 1e-9


def test_repetition_costs_little_at_4_epochs_and_more_at_40():
    law = get_law("muennighoff")
    n = 8.7e9
    u = 178e9
    four = dc.point(law, n, 4 * u, u)
    forty = dc.point(law, n, 40 * u, u)
    assert four.epochs == 4 and four.loss >= four.loss_fresh_data
    assert (four.loss - four.loss_fresh_data) / four.loss_fresh_data < 0.005
    assert (forty.loss - forty.loss_fresh_data) > 5 * (four.loss - four.loss_fresh_data)


def test_best_allocation_given_unique_tokens():
    law = get_law("muennighoff")
    flops, u = 1e23, 50e9
    result = dc.data_constrained(law, u, flops=flops)
    best, free = result.best, result.unconstrained
    assert rel(6 * best.params * best.tokens, flops) < 1e-9
    assert best.loss <= free.loss + 1e-12
    # Scarce data: the best plan repeats the data, and since excess parameters lose value faster than repeated
    # tokens (R_N* < R_D*), it puts the compute into more epochs and fewer parameters than the unconstrained
    # optimum (Muennighoff et al. 2023, Figure 1 right and section 5).
    assert best.epochs > free.epochs > 1
    assert best.params < free.params
    # with plentiful data the best allocation is the ordinary compute-optimal point
    plenty = dc.data_constrained(law, 1e16, flops=flops)
    assert rel(plenty.best.params, law.optimal(flops)[0]) < 0.01


def test_data_constrained_cli_json(cli):
    r = cli("chinchilla", "--flops", "1e23", "--unique-tokens", "50B", "--json")
    assert r.code == 0, r.stderr
    out = r.json()
    assert out["law"] == "muennighoff" and out["epochs"] > 1
    assert {"params", "tokens", "flops", "tokens_per_param", "loss", "epochs", "laws"} <= set(out)
    assert {"muennighoff", "hoffmann", "epoch"} <= set(out["laws"])
    run = cli("chinchilla", "--params", "8.7B", "--tokens", "712B", "--unique-tokens", "178B", "--json").json()
    assert run["epochs"] == pytest.approx(4.0) and run["run"]["params"] == 8.7e9
