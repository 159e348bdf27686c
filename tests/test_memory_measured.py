"""The activation model checked against a measurement on the CPU: bytes of tensors saved for backward in a forward
pass of the bench's own transformer (llmplan.bench.model), counted once per storage, parameters left out."""

import functools

import pytest

torch = pytest.importorskip("torch")

from llmplan.bench.saved_tensors import count_saved_tensors, saved_tensor_bytes  # noqa: E402
from llmplan.estimate.activations import ActivationConfig, saved_bytes  # noqa: E402
from llmplan.models.spec import ModelSpec  # noqa: E402

model_mod = pytest.importorskip("llmplan.bench.model")

# GPT-style (Korthikanti's setting: LayerNorm, learned positions, 4h GELU MLP) and LLaMA-style (RMSNorm, rotary,
# grouped-query attention, SwiGLU with a non-4h ffn, untied head). Tiny shapes keep the test fast.
GPT = ModelSpec(name="gpt-tiny", arch="decoder", layers=2, hidden=64, heads=4, ffn=256, vocab=96, context=128,
                qkv_bias=True, out_bias=True, mlp_bias=True)
LLAMA = ModelSpec(name="llama-tiny", arch="decoder", layers=2, hidden=64, heads=4, kv_heads=2, ffn=160, vocab=96,
                  context=128, mlp="gated", activation="silu", position="rotary", norm="rmsnorm",
                  tied_embeddings=False)
DTYPES = {"fp32": (torch.float32, 4.0), "bf16": (torch.bfloat16, 2.0)}


@functools.lru_cache(maxsize=None)
def measure(spec, dtype, batch, seq, attention, recompute, dropout=0.0) -> int:
    torch.manual_seed(0)
    model = model_mod.build_model(spec, attention=attention, recompute=recompute, dropout=dropout,
                                  dtype=DTYPES[dtype][0])
    model.train()
    tokens = torch.randint(0, spec.vocab, (batch, seq))
    return saved_tensor_bytes(lambda: model(tokens, tokens), exclude=model.parameters())


def predict(spec, dtype, batch, seq, attention, recompute, impl, dropout=False) -> float:
    p = DTYPES[dtype][1]
    # PyTorch's CPU dropout keeps its scaled noise in the activation dtype, not a bool mask.
    c = ActivationConfig(seq=seq, batch=batch, bytes_per_value=p, attention=attention, recompute=recompute,
                         dropout=dropout, impl=impl, mask_bytes=p if impl == "pytorch" else 1.0)
    return saved_bytes(spec, c)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("attention", ["flash", "eager"])
@pytest.mark.parametrize("recompute", ["none", "selective", "full"])
@pytest.mark.parametrize("batch, seq", [(2, 32), (1, 64)])
def test_activations_within_10_percent_of_counted_saved_tensors(dtype, attention, recompute, batch, seq):
    for spec in (GPT, LLAMA):
        measured = measure(spec, dtype, batch, seq, attention, recompute)
        predicted = predict(spec, dtype, batch, seq, attention, recompute, "pytorch")
        assert predicted == pytest.approx(measured, rel=0.10), (spec.name, measured, predicted)
    # The GPT layer is where Korthikanti's fused accounting and plain PyTorch agree.
    measured = measure(GPT, dtype, batch, seq, attention, recompute)
    assert predict(GPT, dtype, batch, seq, attention, recompute, "fused") == pytest.approx(measured, rel=0.10)


@pytest.mark.parametrize("recompute", ["none", "selective", "full"])
def test_dropout_masks_counted(recompute):
    measured = measure(GPT, "fp32", 2, 32, "eager", recompute, dropout=0.1)
    without = measure(GPT, "fp32", 2, 32, "eager", recompute)
    assert measured > without  # masks are real memory
    predicted = predict(GPT, "fp32", 2, 32, "eager", recompute, "pytorch", dropout=True)
    assert predicted == pytest.approx(measured, rel=0.10)


def test_saved_tensor_counter_dedups_storages_and_skips_parameters():
    lin = torch.nn.Linear(16, 8)
    h = torch.randn(4, 16, requires_grad=True) * 1.0  # an activation: not a leaf

    def fwd():
        y = lin(h)                       # saves its input h (4 x 16 fp32) and the weight (a parameter)
        return (y * y).sum()             # saves y twice: one storage

    found = count_saved_tensors(fwd, exclude=lin.parameters())
    assert found.total_bytes == 4 * 16 * 4 + 4 * 8 * 4
    assert found.parameter_bytes == 8 * 16 * 4  # the weight, seen and left out
    # Views share their storage: a (4 x 16) tensor saved through two views of it counts once.
    base = lin(h)
    assert saved_tensor_bytes(lambda: (base.view(32) * base.view(2, 16).reshape(32)).sum()) == 4 * 8 * 4


@pytest.mark.parametrize("recompute", ["none", "selective", "full"])
def test_autocast_residual_stream_and_weight_copies(recompute):
    """PyTorch autocast (fp32 model, bf16 matmuls): fp32 residual stream and norm inputs, and a bf16 copy of every
    matmul weight saved for backward (under full recomputation only the output head's, outside the recomputed
    blocks; autocast's cache still holds the others until the forward ends, which the planner counts). Flash attention only: CPU autocast runs softmax in bf16 where CUDA runs it in fp32."""
    from llmplan.estimate.memory import matmul_fraction
    from llmplan.models import count_params

    for spec in (GPT, LLAMA):
        model = model_mod.build_model(spec, attention="flash", recompute=recompute)
        model.train()
        tokens = torch.randint(0, spec.vocab, (2, 32))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            measured = saved_tensor_bytes(lambda: model(tokens, tokens), exclude=model.parameters())
        c = ActivationConfig(seq=32, batch=2, bytes_per_value=2, attention="flash", recompute=recompute,
                             dropout=False, impl="pytorch", residual_fp32=True)
        copies = 2 * (spec.vocab * spec.hidden if recompute == "full"
                      else count_params(spec).total * matmul_fraction(spec))
        assert saved_bytes(spec, c) + copies == pytest.approx(measured, rel=0.10), (spec.name, measured)


@pytest.mark.parametrize("name", ["mla-dense-first", "mla-no-q-lora", "sliding-global", "chunked-nope-moe",
                                  "sinks-biased-experts", "qk-norm-gate"])
@pytest.mark.parametrize("attention", ["flash", "eager"])
@pytest.mark.parametrize("recompute", ["none", "selective", "full"])
def test_current_blocks_within_10_percent_of_counted_saved_tensors(name, attention, recompute):
    """MLA, sliding/chunked windows, MoE with shared experts and biased routers, sinks, QK-norm and the output gate,
    built from layer groups (tests/test_bench_model.py's GROUPED shapes): the same check as the dense shapes."""
    from test_bench_model import GROUPED

    spec = GROUPED[name]
    measured = measure(spec, "fp32", 2, 32, attention, recompute)
    predicted = predict(spec, "fp32", 2, 32, attention, recompute, "pytorch")
    assert predicted == pytest.approx(measured, rel=0.10), (name, measured, predicted)


@pytest.mark.parametrize("recompute", ["none", "selective", "full"])
@pytest.mark.parametrize("batch, seq", [(2, 32), (1, 96)])
def test_deepseek_v4_within_10_percent_of_counted_saved_tensors(recompute, batch, seq):
    """DeepSeek-V4's layers (hyper-connection streams, compressed attention with HCA / CSA compressors and the
    indexer, the MoE with its shared expert), the reduced config of tests/data/hf_configs: the same check."""
    from pathlib import Path

    from llmplan.models.hf_config import read_hf_config

    spec = read_hf_config(Path(__file__).resolve().parent / "data" / "hf_configs" / "DeepSeek-V4-reduced" /
                          "config.json")
    measured = measure(spec, "fp32", batch, seq, "flash", recompute)
    predicted = predict(spec, "fp32", batch, seq, "flash", recompute, "pytorch")
    assert predicted == pytest.approx(measured, rel=0.10), (measured, predicted)
