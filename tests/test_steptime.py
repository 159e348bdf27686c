"""The step-time model: its parts add up, each part follows its formula, bad layouts say what is valid."""

import dataclasses

import pytest

from llmplan.errors import LlmplanError
from llmplan.estimate.collectives import Group, collective_seconds, nccl_latency_seconds
from llmplan.estimate.layout import make_layout
from llmplan.estimate.steptime import estimate_step, make_system, stage_layers
from llmplan.hardware import get_gpu
from llmplan.models import get_preset


@pytest.fixture(scope="module")
def gpt3():
    return get_preset("gpt3-175b")


def _est(spec, gpus, gpu="a100", **kw):
    kw.setdefault("seq", 2048)
    return estimate_step(spec, make_system(get_gpu(gpu), gpus), make_layout(gpus, spec, **kw))


def test_parts_add_up_and_mfu_is_model_flops_over_time(gpt3):
    e = _est(gpt3, 64, tp=8, pp=8, micro_batch=1, global_batch=64, recompute="full")
    assert sum(e.step_breakdown.values()) == pytest.approx(e.step_seconds)
    peak = get_gpu("a100").peak("bf16")
    assert e.mfu == pytest.approx(e.model_flops_per_step / (e.step_seconds * 64 * peak))
    assert e.tokens_per_second_per_gpu == pytest.approx(64 * 2048 / e.step_seconds / 64)
    assert 0.2 < e.mfu < 0.7 and e.fits


def test_bubble_is_pp_minus_one_over_m_times_vp(gpt3):
    one = _est(gpt3, 64, tp=8, pp=8, micro_batch=1, global_batch=64, recompute="full")
    inter = _est(gpt3, 64, tp=8, pp=8, vp=2, micro_batch=1, global_batch=64, recompute="full")
    work = sum(v for k, v in one.step_breakdown.items() if k in ("gemm", "attention_core", "memory_bound", "logits",
                                                                 "recompute", "tp_comm", "pp_p2p"))
    assert one.step_breakdown["pipeline_bubble"] == pytest.approx(work * 7 / 64, rel=1e-9)
    assert inter.step_breakdown["pipeline_bubble"] < 0.6 * one.step_breakdown["pipeline_bubble"]


def test_recompute_costs_time_and_saves_memory(gpt3):
    full = _est(gpt3, 64, tp=8, pp=8, micro_batch=1, global_batch=64, recompute="full")
    none = _est(gpt3, 64, tp=8, pp=8, micro_batch=1, global_batch=64, recompute="none")
    assert full.step_seconds > none.step_seconds and full.memory_bytes < none.memory_bytes
    assert none.step_breakdown["recompute"] == 0 and full.step_breakdown["recompute"] > 0


def test_collective_factors_and_tiers():
    eff = make_system(get_gpu("a100"), 16).eff  # A100's NVSwitch has no NVLS: every collective is NCCL's ring
    inside, across = Group(8, 1, 8), Group(16, 1, 8)
    s = 1e9

    def lat(op, n, nodes):  # a 1 GB collective runs NCCL's ring with the Simple protocol
        return nccl_latency_seconds("ring", "simple", op, n, nodes)

    ar = collective_seconds(eff, "all_reduce", s, inside) - lat("all_reduce", 8, 1)
    ag = collective_seconds(eff, "all_gather", s, inside) - lat("all_gather", 8, 1)
    assert ar == pytest.approx(2 * ag)  # 2(n-1)/n against (n-1)/n
    assert ag == pytest.approx(s * 7 / 8 / eff.collective_bus_bytes_per_s("scaleup"))
    assert across.tier == "scaleout" and collective_seconds(eff, "all_reduce", s, across) > ar
    # a group one rank per node (stride 8) is limited by one NIC per GPU
    lone = Group(4, 8, 8)
    assert lone.members_per_node == 1
    assert lone.nodes == 4 and collective_seconds(eff, "all_gather", s, lone) == pytest.approx(
        lat("all_gather", 4, 4) + s * 3 / 4 / eff.collective_bus_bytes_per_s("scaleout"))


def test_hopper_all_reduce_inside_the_node_takes_nvls_when_faster():
    eff = make_system(get_gpu("h100"), 16).eff
    inside = Group(8, 1, 8)
    big, small = 1e9, 1e5
    nvls = 25e-6 + big / (0.565 * 450e9)  # the switch reduces: the tensor once each way
    assert collective_seconds(eff, "all_reduce", big, inside) == pytest.approx(nvls)
    ring = nccl_latency_seconds("ring", "simple", "all_reduce", 8, 1) + big * 7 / 4 / eff.collective_bus_bytes_per_s(
        "scaleup")
    assert nvls < ring
    # small tensors keep the ring's low latency; across nodes there is no NVLS
    assert collective_seconds(eff, "all_reduce", small, inside) < 25e-6 + small / (0.565 * 450e9)
    assert collective_seconds(eff, "all_reduce", big, Group(16, 1, 8)) > nvls


def test_collective_latency_is_nccls_cost_model():
    """NCCL src/graph/tuning.cc: ring latency = base + (steps - inter-node steps) x NVLink hop + inter-node steps x
    network hop; tree = base + 2 (chain in the node + log2(nodes) network hops); the fastest protocol per size."""
    us = 1e-6
    assert nccl_latency_seconds("ring", "simple", "all_reduce", 8, 1) == pytest.approx((8.4 + 14 * 3.4) * us)
    assert nccl_latency_seconds("ring", "simple", "all_gather", 16, 2) == pytest.approx((8.4 + 14 * 3.4 + 14.0) * us)
    assert nccl_latency_seconds("tree", "simple", "all_reduce", 1024, 128) == pytest.approx(2 * (7 * 28 + 7 * 28) * us)
    eff = make_system(get_gpu("h100"), 1024).eff
    tiny = collective_seconds(eff, "all_reduce", 1024, Group(8, 1, 8))  # LL: 6.6 + 14 x 0.6 us and the bytes
    assert tiny == pytest.approx((6.6 + 14 * 0.6) * us + 1024 * 7 / 4 / (eff.collective_bus_bytes_per_s("scaleup") / 4))
    small, large = Group(8, 1, 8), Group(1024, 1, 8)
    assert collective_seconds(eff, "all_gather", 1e6, large) > 50 * collective_seconds(eff, "all_gather", 1e6, small)


def test_fsdp_pays_a_collective_latency_per_layer(gpt3):
    """FSDP gathers each block: at 1,024 GPUs each of the 96 layers' gathers pays the ring's latency."""
    e = _est(gpt3, 1024, zero=3, micro_batch=1, global_batch=1024, recompute="full")
    ag_latency = nccl_latency_seconds("ring", "simple", "all_gather", 1024, 128)
    gathers = e.step_breakdown["zero_param_gather"] + e.hidden_comm_seconds["zero_param_gather"]
    assert gathers >= 2 * 96 * ag_latency


def test_tp_across_nodes_is_legal_with_a_warning(gpt3):
    e = _est(gpt3, 128, tp=16, pp=8, micro_batch=1, global_batch=64, recompute="full")
    assert any("NVLink domain" in w for w in e.warnings)
    inside = _est(gpt3, 128, tp=8, pp=16, micro_batch=1, global_batch=64, recompute="full")
    assert e.step_breakdown["tp_comm"] > inside.step_breakdown["tp_comm"]


def test_uneven_stages_are_legal():
    spec = get_preset("llama-3.1-405b")
    stages = stage_layers(126, 16, 1)
    assert sorted(len(s) for s in stages) == [7] * 2 + [8] * 14 or sum(map(len, stages)) == 126
    assert len(stages[0]) == 7 and len(stages[-1]) == 7
    e = _est(spec, 16384, gpu="h100", tp=8, pp=16, micro_batch=1, global_batch=2048, seq=8192, zero=1, sp=True)
    assert e.step_seconds > 0 and e.memory_bytes > 0


@pytest.mark.parametrize("kw, says", [
    (dict(tp=3), "does not divide --gpus"),
    (dict(tp=64, pp=1), "attention heads"),
    (dict(pp=128, tp=1), "model chunks"),
    (dict(tp=8, global_batch=100), "valid:"),
    (dict(tp=8, ep=2), "mixture-of-experts"),
])
def test_bad_layouts_say_what_is_valid(gpt3, kw, says):
    kw = {"global_batch": 128, **kw}
    with pytest.raises(LlmplanError, match=says):
        make_layout(128, gpt3, seq=2048, **kw)


def test_moe_experts_and_all_to_all():
    spec = get_preset("mixtral-8x7b")
    e1 = _est(spec, 64, gpu="h100", tp=1, pp=1, ep=1, micro_batch=1, global_batch=64, seq=4096, zero=1)
    e8 = _est(spec, 64, gpu="h100", tp=1, pp=1, ep=8, micro_batch=1, global_batch=64, seq=4096, zero=1)
    assert e1.step_breakdown["ep_comm"] == 0 < e8.step_breakdown["ep_comm"]
    assert e8.memory_bytes < e1.memory_bytes


def test_a_measured_profile_changes_the_time(gpt3):
    gpu = get_gpu("a100")
    layout = make_layout(64, gpt3, tp=8, pp=8, micro_batch=1, global_batch=64, seq=2048, recompute="full")
    slow = {"gemm_curve": [{"m": 4096, "n": 4096, "k": 4096, "dtype": "bf16", "flops_per_s": 100e12}]}
    base = estimate_step(gpt3, make_system(gpu, 64), layout, memory=False)
    prof = estimate_step(gpt3, make_system(gpu, 64, profile=slow), layout, memory=False)
    assert prof.step_breakdown["gemm"] > 2 * base.step_breakdown["gemm"]
    assert prof.efficiency_source.startswith("measured")
    assert dataclasses.asdict(prof)["layout"]["tp"] == 8


def test_the_test_copy_of_the_published_runs_matches_the_shared_reference():
    from pathlib import Path

    here = Path(__file__).resolve().parent / "data" / "published_runs.json"
    shared = Path(__file__).resolve().parents[2] / "shared" / "reference" / "throughput" / "published_runs.json"
    if not shared.exists():
        pytest.skip("shared reference folder not beside the repository")
    assert shared.read_bytes() == here.read_bytes()


def test_optimizer_step_is_30_bytes_per_parameter_of_the_shard():
    spec = get_preset("llama-2-7b")
    sys1 = make_system(get_gpu("h100"), 8)
    z0 = estimate_step(spec, sys1, make_layout(8, spec, micro_batch=1, global_batch=8, seq=4096, zero=0),
                       memory=False)
    z1 = estimate_step(spec, sys1, make_layout(8, spec, micro_batch=1, global_batch=8, seq=4096, zero=1),
                       memory=False)
    from llmplan.models import count_params

    n = count_params(spec).total
    assert z0.step_breakdown["optimizer"] == pytest.approx(30 * n / sys1.eff.hbm_bytes_per_s, rel=1e-3)
    assert z1.step_breakdown["optimizer"] == pytest.approx(z0.step_breakdown["optimizer"] / 8, rel=1e-3)
    assert z0.step_breakdown["zero_param_gather"] == 0 < z1.step_breakdown["zero_param_gather"] + \
        z1.hidden_comm_seconds["zero_param_gather"]


def test_context_parallel_halves_the_attention_per_rank_and_hides_its_exchange():
    spec = get_preset("llama-3.1-8b")
    system = make_system(get_gpu("h100"), 8)
    one = estimate_step(spec, system, make_layout(8, spec, tp=8, micro_batch=1, global_batch=8, seq=65536,
                                                   recompute="full"), memory=False)
    two = estimate_step(spec, make_system(get_gpu("h100"), 16), make_layout(16, spec, tp=8, cp=2, micro_batch=1,
                        global_batch=8, seq=65536, recompute="full"), memory=False)
    assert two.step_breakdown["attention_core"] == pytest.approx(one.step_breakdown["attention_core"] / 2, rel=0.02)
    assert two.hidden_comm_seconds["cp_comm"] > 0


def test_fsdp_gathers_every_micro_batch():
    spec = get_preset("llama-2-7b")
    system = make_system(get_gpu("a100"), 64)

    def comm(gb):
        e = estimate_step(spec, system, make_layout(64, spec, micro_batch=1, global_batch=gb, seq=4096, zero=3),
                          memory=False)
        return e.step_breakdown["zero_param_gather"] + e.hidden_comm_seconds["zero_param_gather"]

    assert comm(256) == pytest.approx(4 * comm(64), rel=1e-6)  # 4 micro-batches: 4 x the gathers


def test_host_dispatch_sets_the_pace_of_small_kernels(gpt3):
    from llmplan.estimate.opcosts import HOST_BWD_OP_SECONDS, HOST_FWD_OP_SECONDS

    small = get_preset("gpt2")  # 124M: kernels of microseconds at one short sequence
    e = _est(small, 4, tp=4, micro_batch=1, global_batch=1, seq=128, attention="unfused")
    assert e.step_breakdown["host_overhead"] > 0
    # every layer's forward + backward can go no faster than its operators' dispatch (at least norms, residuals,
    # linears and the attention block: 2 + 4 + 4 + 16 forward operators)
    per_layer = 26 * (HOST_FWD_OP_SECONDS + HOST_BWD_OP_SECONDS)
    assert e.step_seconds > small.total_layers * per_layer
    big = _est(gpt3, 64, tp=8, pp=8, micro_batch=1, global_batch=64, recompute="full")
    assert big.step_breakdown["host_overhead"] == 0  # long kernels hide the host


def test_gradient_reduce_after_backward_is_exposed(gpt3):
    kw = dict(tp=8, pp=1, micro_batch=1, global_batch=64, recompute="full")
    over = _est(gpt3, 64, **kw)
    after = _est(gpt3, 64, grad_overlap=False, **kw)
    total = over.step_breakdown["dp_grad_reduce"] + over.hidden_comm_seconds["dp_grad_reduce"]
    assert over.hidden_comm_seconds["dp_grad_reduce"] > 0
    # the same bytes in one flat buffer: the overlapped buckets (Megatron-Core, max(40M, 1M x dp) parameters
    # each) add only their latencies
    assert 0.95 * total < after.step_breakdown["dp_grad_reduce"] < total
    assert after.hidden_comm_seconds["dp_grad_reduce"] == 0
