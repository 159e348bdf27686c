"""`llmplan plan` and `compute` with a layout: JSON keys, ranking, held options, bad layouts, goodput."""

import pytest


def test_plan_json_ranks_fitting_layouts(cli):
    r = cli("plan", "--model", "gpt3-175b", "--gpu", "a100", "--gpus", "256", "--seq", "2048",
            "--global-batch", "512", "--top", "3", "--json")
    assert r.code == 0, r.stderr
    out = r.json()
    assert out["searched"] > 100 and len(out["layouts"]) == 3
    times = [e["prediction"]["step_seconds"] for e in out["layouts"]]
    assert times == sorted(times)
    for e in out["layouts"]:
        t = e["layout"]
        assert t["tp"] * t["pp"] * t["cp"] * t["dp"] == 256 and e["prediction"]["fits"]
        assert e["prediction"]["memory_bytes"] <= e["prediction"]["gpu_memory_bytes"]
        for key in ("tp", "pp", "vp", "cp", "ep", "zero", "sp", "micro_batch", "global_batch", "recompute"):
            assert key in t
        for key in ("step_seconds", "tokens_per_second_per_gpu", "mfu", "step_breakdown", "fits"):
            assert key in e["prediction"]


def test_plan_holds_the_options_given(cli):
    out = cli("plan", "--model", "gpt3-175b", "--gpu", "a100", "--gpus", "256", "--seq", "2048",
              "--global-batch", "512", "--tp", "8", "--recompute", "full", "--json").json()
    assert all(e["layout"]["tp"] == 8 and e["layout"]["recompute"] == "full" for e in out["layouts"])


def test_plan_table_fits_80_columns(cli):
    r = cli("plan", "--model", "llama-2-7b", "--gpu", "h100", "--gpus", "64", "--seq", "4096")
    assert r.code == 0 and "Fastest layouts" in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80


def test_plan_efficiency_note_wraps_and_is_whole(cli):
    r = cli("plan", "--model", "deepseek-v3", "--gpu", "h100", "--gpus", "64", "--seq", "4096",
            "--global-batch", "512", "--top", "3")
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    note = " ".join(lines[next(i for i, ln in enumerate(lines) if ln.startswith("efficiencies:")):])
    assert "tile and wave quantization" in " ".join(note.split())  # wrapped at 80 columns, never cut


@pytest.mark.parametrize("args, says", [
    (("--tp", "3"), "multiple of --tp"),
    (("--tp", "5", "--gpus", "320"), "attention heads"),
    (("--pp", "128", "--tp", "1"), "model chunks"),
    (("--global-batch", "100", "--tp", "8", "--pp", "1"), "valid:"),
])
def test_bad_layouts_exit_2_with_one_line(cli, args, says):
    base = ["compute", "--model", "gpt3-175b", "--tokens", "300B", "--gpu", "a100", "--seq", "2048"]
    if "--gpus" not in args:
        base += ["--gpus", "256"]
    r = cli(*base, *args)
    assert r.code == 2 and says in r.stderr and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1


def test_compute_with_a_layout_uses_the_step_time_model(cli):
    args = ["compute", "--model", "gpt3-175b", "--tokens", "300B", "--gpu", "a100", "--gpus", "1024", "--seq",
            "2048", "--tp", "8", "--pp", "8", "--global-batch", "1536", "--recompute", "full", "--json"]
    out = cli(*args).json()
    assert out["mfu_source"].startswith("step-time model") and out["layout"]["dp"] == 16
    p = out["prediction"]
    steps = 300e9 / (1536 * 2048)
    assert out["wall_seconds"] == pytest.approx(steps * p["step_seconds"], rel=1e-6)
    half = cli(*args, "--goodput", "0.5").json()
    assert half["wall_seconds"] == pytest.approx(2 * out["wall_seconds"])
    assert half["gpu_hours"] == pytest.approx(2 * out["gpu_hours"])


def test_compute_without_mfu_or_layout_plans_and_says_so(cli):
    r = cli("compute", "--model", "llama-2-7b", "--tokens", "1T", "--gpu", "h100", "--gpus", "64", "--json")
    assert r.code == 0 and "fastest layout" in r.stderr
    out = r.json()
    assert "plan" in out["mfu_source"] and out["prediction"]["fits"]


def test_mfu_and_a_layout_conflict(cli):
    r = cli("compute", "--model", "llama-2-7b", "--tokens", "1T", "--gpu", "h100", "--gpus", "8", "--tp", "8",
            "--mfu", "0.4")
    assert r.code == 2 and "one or the other" in r.stderr


def test_tp_across_nodes_warns(cli):
    r = cli("compute", "--model", "gpt3-175b", "--tokens", "300B", "--gpu", "a100", "--gpus", "256", "--seq",
            "2048", "--tp", "16", "--pp", "8", "--global-batch", "512", "--recompute", "full")
    assert r.code == 0 and "NVLink domain" in r.stderr
