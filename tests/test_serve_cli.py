"""`llmplan serve` on the command line: JSON keys, tables within 80 columns, one-line errors."""

import pytest

KEYS = ("ttft_seconds", "tpot_seconds", "output_tokens_per_second", "output_tokens_per_second_per_gpu",
        "requests_per_second", "max_concurrency", "memory_per_gpu", "step")


def test_json_has_the_issue_keys(cli):
    r = cli("serve", "--model", "llama-3-70b", "--gpu", "h100", "--tp", "4", "-i", "1000", "-o", "500",
            "--concurrency", "64", "--json")
    assert r.code == 0, r.stderr
    out = r.json()
    assert out["schema_version"] and all(k in out for k in KEYS)
    assert out["output_tokens_per_second_per_gpu"] == pytest.approx(out["output_tokens_per_second"] / 4)
    step = out["step"]["decode_only"]
    assert step["seconds"] == pytest.approx(step["gemm_seconds"] + step["attention_seconds"]
                                            + step["comm_seconds"] + step["fixed_seconds"]
                                            + step["elementwise_seconds"])


@pytest.mark.parametrize("load", [["--concurrency", "16"], ["--rate", "2"], ["--max-throughput"]])
def test_tables_fit_80_columns(cli, load):
    r = cli("serve", "--model", "mixtral-8x7b", "--gpu", "h100", "--gpus", "4", "--tp", "2", "-i", "2000", "-o",
            "200", "--kv-dtype", "fp8", "--engine", "vllm", *load)
    assert r.code == 0, r.stderr
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    assert "TTFT" in r.stdout and "TPOT" in r.stdout and "KV pool" in r.stdout


def test_slo_layouts_and_fewest_gpus(cli):
    r = cli("serve", "--model", "llama-3-70b", "--gpu", "h100", "--gpus", "8", "-i", "2000", "-o", "500",
            "--max-throughput", "--slo-ttft", "2s", "--slo-tpot", "50ms", "--dtype", "fp8", "--json")
    assert r.code == 0, r.stderr
    layouts = r.json()["layouts"]
    assert layouts and all(x["tpot_seconds"] <= 0.05 and x["gpus"] == 8 for x in layouts)
    r = cli("serve", "--model", "llama-3-70b", "--gpu", "h100", "-i", "2000", "-o", "500", "--rate", "10",
            "--slo-ttft", "2s", "--slo-tpot", "50ms", "--dtype", "fp8", "--json")
    out = r.json()
    assert r.code == 0 and out["fewest_gpus"] == min(x["gpus"] for x in out["layouts"])
    assert out["max_gpus"] is None
    fewest = out["fewest_gpus"]
    # --gpus bounds the answer: no layout beyond it, and one line naming what would work below it
    r = cli("serve", "--model", "llama-3-70b", "--gpu", "h100", "-i", "2000", "-o", "500", "--rate", "10",
            "--slo-ttft", "2s", "--slo-tpot", "50ms", "--dtype", "fp8", "--gpus", str(fewest + 2), "--json")
    out = r.json()
    assert r.code == 0 and out["max_gpus"] == fewest + 2 and out["fewest_gpus"] == fewest
    assert out["layouts"] and all(x["gpus"] <= fewest + 2 for x in out["layouts"])
    r = cli("serve", "--model", "llama-3-70b", "--gpu", "h100", "-i", "2000", "-o", "500", "--rate", "10",
            "--slo-ttft", "2s", "--slo-tpot", "50ms", "--dtype", "fp8", "--gpus", str(fewest - 1))
    assert r.code == 2 and f"raise --gpus to {fewest}" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args,message", [
    (["--tp", "3"], "attention heads"),
    (["--concurrency", "100000"], "does not fit"),
    (["-i", "200000"], "context"),
    (["--slo-tpot", "1ms", "--max-throughput"], "relax the targets"),
    (["--slo-tpot", "1ms", "--rate", "5", "--gpus", "3"], "the best on up to 3 GPUs"),
    (["--slo-tpot", "3ms", "--rate", "5", "--gpus", "3"], "raise --gpus to 4"),
    (["--slo-tpot", "soon", "--max-throughput"], "duration"),
    (["--dtype", "fp3"], "dtype"),
    (["--engine", "tgi"], "--engine"),
    (["--rate", "1", "--concurrency", "2"], "one load"),
])
def test_bad_input_is_one_line_exit_2(cli, args, message):
    base = ["serve", "--model", "llama-3-8b", "--gpu", "h100", "-i", "1000", "-o", "100"]
    if not any(a in args for a in ("--concurrency", "--rate", "--max-throughput")):
        base += ["--concurrency", "8"]
    r = cli(*base, *args)
    assert r.code == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr


def test_a_measured_bandwidth_from_a_profile_replaces_the_default(cli, tmp_path):
    import json

    path = tmp_path / "h100.json"
    path.write_text(json.dumps({"schema_version": 1, "kind": "llmplan.profile",
                                "device": {"name": "NVIDIA H100 80GB HBM3", "peak_flops": 989.4e12},
                                "runs": [{"params": 1e8, "mfu": 0.3}], "hbm_bytes_per_s": 2.0e12}))
    args = ("serve", "--model", "llama-3-8b", "--gpu", "h100", "-i", "500", "-o", "200", "--concurrency", "1",
            "--json")
    default, measured = cli(*args).json(), cli(*args, "--profile", str(path)).json()
    assert measured["rates"]["hbm_bytes_per_s"] == 2.0e12 and "measured" in measured["rates"]["source"]
    # batch 1 decode streams the weights: slower bandwidth, slower tokens, in proportion
    ratio = measured["step"]["decode_only"]["gemm_seconds"] / default["step"]["decode_only"]["gemm_seconds"]
    assert ratio == pytest.approx(default["rates"]["hbm_bytes_per_s"] / 2.0e12, rel=0.1)
