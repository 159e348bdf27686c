"""Real tiny training runs on the CPU: timing fields, FLOP counting cross-checked with FlopCounterMode, memory
counted beside llmplan's prediction, out-of-memory and Ctrl-C handling."""

import pytest

torch = pytest.importorskip("torch")

from llmplan.bench import ladder as ladder_mod  # noqa: E402
from llmplan.bench import runner as runner_mod  # noqa: E402
from llmplan.bench.device import detect_device  # noqa: E402
from llmplan.bench.ladder import ladder_spec, run_ladder, run_model  # noqa: E402
from llmplan.bench.model import build_model  # noqa: E402
from llmplan.bench.runner import BenchConfig, RunResult, run_config  # noqa: E402
from llmplan.errors import LlmplanError  # noqa: E402
from llmplan.estimate.flops import forward_parts, train_flops_per_token  # noqa: E402
from llmplan.models import ModelSpec, count_params  # noqa: E402

GPT = ModelSpec(name="tiny-gpt", arch="decoder", layers=2, hidden=64, heads=4, ffn=256, vocab=512, context=64,
                qkv_bias=True, out_bias=True, mlp_bias=True)
LLAMA = ladder_spec(64, 2, 512, 64).with_(heads=4, kv_heads=2, name="tiny-llama-gqa")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def cpu():
    return detect_device("cpu")


def test_a_real_cpu_run_reports_consistent_figures(cpu):
    r = run_config(BenchConfig(GPT, batch=2, seq=32, warmup_steps=1, timed_steps=3), cpu)
    assert r.status == "ok" and r.params == count_params(GPT).total
    assert len(r.step_times) == 3 and r.step_seconds_min <= r.step_seconds <= r.step_seconds_max
    assert r.tokens_per_second == pytest.approx(2 * 32 / r.step_seconds)
    assert r.flops_per_token == train_flops_per_token(GPT, 32)
    assert r.achieved_flops == pytest.approx(r.flops_per_token * r.tokens_per_second)
    assert r.mfu is None  # a CPU has no catalog peak: none is invented
    assert 5.0 < r.loss < 8.0  # random tokens: about ln(512) = 6.2 after a few steps
    assert r.memory_method.startswith("counted bytes")


def test_mfu_uses_a_given_peak(cpu):
    dev = detect_device("cpu", peak_tflops=0.5)
    assert dev.peak_flops == 0.5e12 and "--peak-tflops" in dev.peak_source
    r = run_config(BenchConfig(GPT, batch=1, seq=16, warmup_steps=0, timed_steps=1, count_memory=False), dev)
    assert r.mfu == pytest.approx(r.achieved_flops / 0.5e12)


@pytest.mark.parametrize("spec", [GPT, LLAMA], ids=["gpt-style", "llama-gqa"])
def test_flop_count_agrees_with_flop_counter_mode(spec):
    """llmplan's count vs torch.utils.flop_counter.FlopCounterMode over one real training step.

    Expected agreement, exact once two known differences are accounted for:
    - llmplan counts 2 FLOPs per bias and norm weight per token (it counts 2 x every non-embedding parameter);
      FlopCounterMode counts matmuls only (addmm as 2 m n k, the bias add not counted). Forward + backward: 6 x
      those parameters per token; about 1/hidden of the total (1-2% at width 64, 0.05% at width 4096).
    - Flash attention on the CPU: FlopCounterMode has no formula for the CPU flash kernel, so it misses the
      attention term (QK^T and AV: 3 x 4 x layers x seq x q_dim per token). With eager attention it sees those
      batched matmuls, and agrees.
    """
    from torch.utils.flop_counter import FlopCounterMode

    b, s = 2, 32
    tokens = torch.randint(0, spec.vocab, (b, s))
    predicted = train_flops_per_token(spec, s) * b * s
    for attention in ("eager", "flash"):
        model = build_model(spec, attention=attention)
        with FlopCounterMode(display=False) as counter:
            model(tokens, tokens).backward()
        counted = counter.get_total_flops()
        vector_params = sum(p.numel() for p in model.parameters() if p.ndim == 1)  # biases and norm weights
        expected = predicted - 6 * vector_params * b * s
        if attention == "flash":
            expected -= 3 * forward_parts(spec, s).attention * b * s
        assert counted == pytest.approx(expected, rel=1e-9)
        assert counted == pytest.approx(predicted, rel=0.25 if attention == "flash" else 0.02)


@pytest.mark.parametrize("spec", [GPT, LLAMA], ids=["gpt-style", "llama-gqa"])
@pytest.mark.parametrize("attention, recompute", [("flash", "none"), ("eager", "none"), ("flash", "full"),
                                                  ("eager", "selective")])
def test_memory_prediction_within_10_percent_of_counted_bytes(cpu, spec, attention, recompute):
    pytest.importorskip("llmplan.estimate.memory")
    cfg = BenchConfig(spec, batch=2, seq=64, attention=attention, recompute=recompute, warmup_steps=1,
                      timed_steps=1)
    r = run_config(cfg, cpu)
    counted = r.measured_breakdown
    assert counted["weights"] == counted["gradients"] == 4 * r.params  # fp32 on the CPU
    assert counted["optimizer"] >= 8 * r.params  # AdamW moments (+ a step counter per tensor)
    assert counted["activations"] > 0
    assert r.peak_bytes_measured == sum(counted.values())
    assert abs(r.memory_error_pct) < 10, (r.measured_breakdown, r.predicted_breakdown)


@pytest.mark.parametrize("spec", [GPT, LLAMA], ids=["gpt-style", "llama-gqa"])
def test_bf16_autocast_memory_is_predicted_as_autocast_keeps_it(spec):
    """Autocast keeps fp32 weights, gradients and states, a bf16 copy of each matmul weight and an fp32 residual
    stream: the prediction (llmplan memory --amp) within 1% of the counted bytes (16-bit activations: -2%/+1.6%)."""
    pytest.importorskip("llmplan.estimate.memory")
    dev = detect_device("cpu", dtype="bf16")
    r = run_config(BenchConfig(spec, batch=2, seq=64, warmup_steps=1, timed_steps=1), dev)
    assert r.measured_breakdown["autocast_weight_copies"] > 0
    assert abs(r.memory_error_pct) < 1, (r.measured_breakdown, r.predicted_breakdown)


def test_the_prediction_describes_the_device_the_bench_runs_on():
    from types import SimpleNamespace

    from llmplan.bench.memory_check import memory_config
    from llmplan.estimate.memory import MemoryConfig

    cfg = BenchConfig(LLAMA)
    gpu = memory_config(MemoryConfig, cfg, SimpleNamespace(kind="cuda", dtype="bf16"))
    cpu = memory_config(MemoryConfig, cfg, SimpleNamespace(kind="cpu", dtype="fp32"))
    assert (gpu.impl, gpu.amp, gpu.dtype) == ("pytorch-cuda", True, "bf16")
    assert (cpu.impl, cpu.amp, cpu.dtype) == ("pytorch", False, "fp32")


def test_out_of_memory_is_recorded_not_raised(cpu, monkeypatch):
    def boom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(runner_mod, "_run", boom)
    r = run_config(BenchConfig(GPT, batch=4, seq=16), cpu)
    assert r.status == "oom" and r.step_seconds is None and "out of memory" in r.notes[0]


def test_other_errors_are_not_mistaken_for_out_of_memory(cpu, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(runner_mod, "_run", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_config(BenchConfig(GPT, batch=4, seq=16), cpu)


def _fake_result(cfg, status="ok", step=0.01):
    spec = cfg.built_spec
    fpt = train_flops_per_token(spec, cfg.seq)
    tps = cfg.batch * cfg.seq / step
    return RunResult(status=status, name=spec.name, params=count_params(spec).total, layers=spec.layers,
                     batch=cfg.batch, seq=cfg.seq, dtype="fp32", attention=cfg.attention, recompute=cfg.recompute,
                     compiled=False, step_seconds=step if status == "ok" else None, flops_per_token=fpt,
                     tokens_per_second=tps if status == "ok" else None,
                     achieved_flops=fpt * tps if status == "ok" else None, warmup_seconds=0.0)


def test_ladder_halves_the_batch_after_out_of_memory_and_goes_on(cpu, monkeypatch):
    seen = []

    def fake(cfg, device, on_step=None):
        seen.append((cfg.spec.hidden, cfg.batch))
        if cfg.spec.hidden == 128 and cfg.batch > 1:
            return _fake_result(cfg, "oom")
        return _fake_result(cfg)

    monkeypatch.setattr(ladder_mod, "run_config", fake)
    result = run_ladder(cpu, BenchConfig(GPT, batch=4, seq=16), budget_seconds=60, vocab=512, max_rungs=4)
    assert seen == [(64, 4), (128, 4), (128, 2), (128, 1), (192, 1), (256, 1)]
    assert [r.status for r in result.runs] == ["ok", "oom", "oom", "ok", "ok", "ok"]
    assert result.fit is not None and result.fit.n_points == 4
    assert any("halving" in n for n in result.notes)


def test_ladder_stops_when_nothing_fits_at_batch_one(cpu, monkeypatch):
    monkeypatch.setattr(ladder_mod, "run_config",
                        lambda cfg, device, on_step=None: _fake_result(cfg, "oom" if cfg.spec.hidden > 64 else "ok"))
    result = run_ladder(cpu, BenchConfig(GPT, batch=2, seq=16), budget_seconds=60, vocab=512)
    assert "does not fit even at batch 1" in result.stopped
    assert result.fit is None and "at least 3" in result.fit_note


def test_ctrl_c_keeps_what_was_measured(cpu, monkeypatch):
    calls = []

    def fake(cfg, device, on_step=None):
        calls.append(cfg.spec.hidden)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return _fake_result(cfg)

    monkeypatch.setattr(ladder_mod, "run_config", fake)
    result = run_ladder(cpu, BenchConfig(GPT, batch=2, seq=16), budget_seconds=60, vocab=512)
    assert result.interrupted and len(result.runs) == 2 and "interrupted" in result.stopped


def test_ladder_respects_the_time_budget(cpu, monkeypatch):
    # Each rung "takes" 1 s a step; the second rung's predicted cost overruns a 3 s budget.
    monkeypatch.setattr(ladder_mod, "run_config", lambda cfg, device, on_step=None: _fake_result(cfg, step=1.0))
    result = run_ladder(cpu, BenchConfig(GPT, batch=2, seq=16, timed_steps=2), budget_seconds=3, vocab=512)
    assert len(result.runs) == 1 and result.stopped.startswith("time budget")


def test_model_mode_extrapolates_linearly_in_depth(cpu, monkeypatch):
    def fake(cfg, device, on_step=None):  # 1 ms fixed + 2 ms per layer; 100 + 10 bytes per layer
        r = _fake_result(cfg, step=0.001 + 0.002 * cfg.built_layers)
        from dataclasses import replace
        return replace(r, peak_bytes_measured=100 + 10 * cfg.built_layers)

    monkeypatch.setattr(ladder_mod, "run_config", fake)
    spec = GPT.with_(layers=12)
    runs, ext = run_model(cpu, BenchConfig(spec, batch=2, seq=16), layers=4)
    assert [r.layers for r in runs] == [2, 4]
    assert ext.step_seconds == pytest.approx(0.001 + 0.002 * 12)
    assert ext.peak_bytes_measured == 100 + 10 * 12
    assert ext.tokens_per_second == pytest.approx(32 / ext.step_seconds)
    assert ext.full_params == count_params(spec).total
    with pytest.raises(LlmplanError, match="between 1 and tiny-gpt.s 12 layers"):
        run_model(cpu, BenchConfig(spec, batch=2, seq=16), layers=13)


def test_model_mode_with_noisy_timings_never_extrapolates_a_step_that_shrinks_with_depth(cpu, monkeypatch):
    """A busy CPU can run the deeper model no slower than the shallower one: a line through the two would fall
    with depth (a negative step at full depth). The deeper run is scaled by model FLOPs per token instead."""
    def fake(cfg, device, on_step=None):
        from dataclasses import replace
        r = _fake_result(cfg, step=0.010 if cfg.built_layers == 2 else 0.009)
        return replace(r, peak_bytes_measured=100 + 10 * cfg.built_layers)

    monkeypatch.setattr(ladder_mod, "run_config", fake)
    spec = GPT.with_(layers=12)
    runs, ext = run_model(cpu, BenchConfig(spec, batch=2, seq=16), layers=4)
    assert ext.step_seconds == pytest.approx(0.009 * ext.flops_per_token / runs[-1].flops_per_token)
    assert ext.step_seconds > 0.009 and "scaled by model FLOPs" in ext.method
    assert ext.peak_bytes_measured == 100 + 10 * 12  # memory is not noisy: still linear in depth


def test_bad_configurations_are_user_errors(cpu):
    with pytest.raises(LlmplanError, match="batch"):
        run_config(BenchConfig(GPT, batch=0), cpu)
    with pytest.raises(LlmplanError, match="learned positions"):
        run_config(BenchConfig(GPT, seq=65), cpu)
    with pytest.raises(LlmplanError, match="unknown device"):
        detect_device("tpu")
    with pytest.raises(LlmplanError, match="no CUDA"):
        if not torch.cuda.is_available():
            detect_device("cuda")
        else:
            raise LlmplanError("no CUDA (skipped: a GPU is present)")


def test_a_failed_run_stops_the_ladder_with_a_reason_and_keeps_earlier_runs(cpu, monkeypatch):
    calls = []

    def fake(cfg, device, on_step=None):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("BackendCompilerFailed: inductor could not compile\nlong traceback text")
        return _fake_result(cfg)

    monkeypatch.setattr(ladder_mod, "run_config", fake)
    result = run_ladder(cpu, BenchConfig(GPT, batch=2, seq=16), budget_seconds=60, vocab=512)
    assert len(result.runs) == 1 and result.stopped.startswith("failed on ladder-h128-l2: RuntimeError")
    assert "try --no-compile" in result.stopped and "\n" not in result.stopped


def test_a_run_that_cannot_start_is_a_one_line_run_error(cli, monkeypatch):
    def broken(cfg, device, on_step=None):
        raise RuntimeError("device lost")

    monkeypatch.setattr(ladder_mod, "run_config", broken)
    r = cli("bench", "--quick", "--device", "cpu", "--no-save")
    last = r.stderr.strip().splitlines()[-1]
    assert r.code == 1 and last.startswith("llmplan: error:") and "device lost" in last
    assert "Traceback" not in r.stderr


def test_a_busy_device_is_named_in_the_notes(cpu, monkeypatch):
    from dataclasses import replace

    def fake(cfg, device, on_step=None):
        return replace(_fake_result(cfg), step_spread_pct=60.0 if cfg.spec.hidden == 128 else 3.0)

    monkeypatch.setattr(ladder_mod, "run_config", fake)
    result = run_ladder(cpu, BenchConfig(GPT, batch=2, seq=16), budget_seconds=60, vocab=512, max_rungs=3)
    busy = [n for n in result.notes if "unreliable" in n]
    assert len(busy) == 1 and "ladder-h128-l2" in busy[0] and "ladder-h64-l2" not in busy[0]
