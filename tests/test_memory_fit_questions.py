"""The questions users bring to `llmplan memory --gpu`, answered end to end: does it fit, with how much to spare, on
how many GPUs, and which sharding would be needed when the chosen one cannot fit."""

import re

import pytest

from llmplan.estimate.gpu_fit import fit_on_gpu
from llmplan.estimate.memory import MemoryConfig, estimate_memory
from llmplan.hardware import get_gpu
from llmplan.models import get_preset

GiB = 2**30


def test_7b_zero3_on_8_h100s_at_4k(cli):
    # "Will a 7B model train on 8 H100s with ZeRO-3 at 4k context?" Model states are 16 bytes/param / 8 GPUs.
    d = cli("memory", "--model", "llama-2-7b", "--zero", "3", "--dp", "8", "--seq", "4096", "--gpu", "h100",
            "--json").json()
    assert abs(d["model_states_bytes"] - 16 * d["params"] / 8) <= 3  # three parts, each rounded to a byte
    assert d["fits"] is True and d["spare_bytes"] == d["usable_bytes"] - d["total_bytes"] > 0
    assert d["gpus_needed"] <= 8 and d["plan"].startswith("ZeRO-3 over dp")


def test_70b_fsdp_names_the_gpus_each_remedy_takes(cli):
    # Llama-3-70B at 8k tokens without recomputation: the activations of one micro-batch (about 220 GiB) exceed an
    # H100 however far the states are sharded, so no dp fits and the answer lists remedies with their GPU counts.
    for dp in ("8", "16", "32"):
        d = cli("memory", "--model", "llama-3-70b", "--fsdp", "--dp", dp, "--seq", "8192", "--gpu", "h100",
                "--json").json()
        assert d["fits"] is False and d["gpus_needed"] == min(r["gpus"] for r in d["remedies"])
        assert d["breakdown"]["activations"] > 80 * GiB
        assert "--recompute full" in d["suggestion"]
        assert all(int(n) >= 1 for n in re.findall(r"(\d+) GPUs?", d["suggestion"]))
    # With full recomputation: 16 bytes/param x 70.6B = 1.05 TiB of states, so 8 GPUs cannot hold them, 32 can.
    full = {dp: cli("memory", "--model", "llama-3-70b", "--fsdp", "--dp", dp, "--seq", "8192", "--recompute", "full",
                    "--gpu", "h100", "--json").json() for dp in ("8", "16", "32")}
    assert not full["8"]["fits"] and full["32"]["fits"]
    assert full["8"]["gpus_needed"] == full["32"]["gpus_needed"]
    assert 16 < full["8"]["gpus_needed"] <= 32


def test_suggestion_counts_the_gpus_of_tensor_parallelism():
    spec = get_preset("llama-3-70b")
    cfg = MemoryConfig(spec=spec, seq=8192, zero=3, dp=8)
    fit = fit_on_gpu(cfg, get_gpu("h100").memory_bytes)
    m = re.search(r"--tp (\d+) --sp --dp (\d+): (\d+) GPUs", fit.suggestion)
    assert m and int(m.group(1)) * int(m.group(2)) == int(m.group(3))


def test_qlora_70b_on_a_48gb_card(cli):
    # QLoRA (Dettmers et al. 2023) fine-tunes a 65B model on one 48 GB GPU, with gradient checkpointing.
    plain = cli("memory", "--model", "llama-2-70b", "--mode", "qlora", "--seq", "2048", "--gpu", "a6000",
                "--json").json()
    assert plain["fits"] is False and "--recompute full" in plain["suggestion"]
    ckpt = cli("memory", "--model", "llama-2-70b", "--mode", "qlora", "--seq", "2048", "--recompute", "full",
               "--gpu", "48GiB", "--json").json()
    assert ckpt["fits"] is True and ckpt["gpu_memory_bytes"] == 48 * GiB and ckpt["gpus_needed"] == 1
    # NF4 with double quantization: 4.127 bits for the block linears, the rest in bf16
    assert 0.5 * ckpt["params"] < ckpt["breakdown"]["weights"] < 0.55 * ckpt["params"]


def test_mixtral_inference_with_fp8_kv_cache(cli):
    # Mixtral-8x7B: 32 layers, 8 kv heads, head_dim 128; fp8 cache = 1 byte per value.
    d = cli("memory", "--model", "mixtral-8x7b", "--mode", "infer", "--seq", "32768", "--batch", "8",
            "--kv-dtype", "fp8", "--gpu", "h100", "--json").json()
    assert d["breakdown"]["kv_cache"] == 2 * 32 * 8 * 128 * 32768 * 8 * 1 == 16 * GiB
    assert d["fits"] is False and d["gpus_needed"] == 2 and "tp 2" in d["plan"]


def test_gpu_given_as_a_memory_size(cli):
    # "24GB" as on a card's name is what the catalog's 24GB cards hold (RTX-4090: 24 GiB)
    d = cli("memory", "--model", "llama-2-7b", "--mode", "infer", "--gpu", "24GB", "--json").json()
    from llmplan.hardware import get_gpu

    assert d["gpu_memory_bytes"] == 24 * 2**30 == get_gpu("rtx4090").memory_bytes and "24GB" in d["gpu"]
    assert cli("memory", "--model", "llama-2-7b", "--gpu", "24GiB", "--json").json()["gpu_memory_bytes"] == 24 * 2**30
    r = cli("memory", "--model", "llama-2-7b", "--gpu", "24 parsecs")
    assert r.code == 2 and r.stdout == "" and "memory size such as 48GiB" in r.stderr


def test_table_states_headroom_and_margin(cli):
    r = cli("memory", "--model", "llama-2-7b", "--mode", "infer", "--gpu", "h100")
    assert r.code == 0 and "after 5% headroom" in r.stdout and "to spare" in r.stdout
    r = cli("memory", "--model", "llama-2-70b", "--gpu", "h100", "--headroom", "2GiB")
    assert "after 2 GiB headroom" in r.stdout and "short" in r.stdout


def test_fit_agrees_with_the_estimate():
    spec = get_preset("llama-2-7b")
    cfg = MemoryConfig(spec=spec, seq=4096, zero=3, dp=8)
    usable = int(get_gpu("h100").memory_bytes * 0.95)
    assert fit_on_gpu(cfg, get_gpu("h100").memory_bytes).fits == (estimate_memory(cfg).total_bytes <= usable)


def test_qlora_abstract_65b_under_48gb(cli):
    # Dettmers et al. 2023 (QLoRA), abstract: finetuning a 65B model drops from more than 780 GB of GPU memory
    # (16-bit full finetuning) to less than 48 GB (QLoRA, with gradient checkpointing; their sequences were short).
    q = cli("memory", "--model", "llama-65b", "--mode", "qlora", "--seq", "512", "--recompute", "full",
            "--json").json()
    assert q["total_bytes"] < 48e9
    full = cli("memory", "--model", "llama-65b", "--mode", "finetune", "--seq", "512", "--json").json()
    assert full["model_states_bytes"] > 780e9


def test_inference_that_no_split_can_hold_says_what_to_lower(cli):
    r = cli("memory", "--model", "llama-2-7b", "--mode", "infer", "--seq", "100000", "--batch", "64", "--gpu", "l4")
    out = " ".join(r.stdout.split())
    assert r.code == 0 and "does not fit" in out and "no tensor x pipeline split fits" in out and "--kv-dtype" in out


@pytest.mark.parametrize("args", [
    ("--model", "llama-3-70b", "--fsdp", "--dp", "8", "--seq", "8192", "--gpu", "h100"),
    ("--model", "llama-2-70b", "--gpu", "h100"),
    ("--model", "llama-2-7b", "--mode", "finetune", "--gpu", "rtx4090"),
    ("--model", "llama-2-7b", "--mode", "lora", "--gpu", "8GB"),
    ("--model", "llama-2-70b", "--mode", "infer", "--gpu", "a6000", "--seq", "4096"),
])
def test_every_remedy_applied_fits_on_the_gpus_it_states(cli, args):
    d = cli("memory", *args, "--json").json()
    assert d["fits"] is False and d["remedies"], d["suggestion"]
    assert d["gpus_needed"] is not None
    now = d["config"]["gpus"] if d["config"]["zero"] else d["config"]["tp"] * d["config"]["pp"]
    singles = [r["gpus"] == now for r in d["remedies"]]
    assert singles == sorted(singles, reverse=True)  # single-GPU remedies first
    for r in d["remedies"]:
        applied = cli("memory", *args, *r["options"].split(), "--json").json()  # the last value of an option wins
        assert applied["fits"] is True, r
        assert applied["config"]["gpus"] == r["gpus"] or applied["config"]["tp"] * applied["config"]["pp"] == r[
            "gpus"], r
    text = cli("memory", *args).stdout
    assert "cannot fit on any number" not in text and d["remedies"][0]["options"] in text
