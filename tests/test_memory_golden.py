"""Published numbers the memory model must reproduce (see ../shared/reference/README.md)."""

import pytest

from llmplan.estimate.activations import ActivationConfig, layer_terms
from llmplan.estimate.memory import MemoryConfig, estimate_memory, kv_cache_bytes
from llmplan.estimate.quantization import NF4_BITS, raw_weight_bytes
from llmplan.models import resolve_model, spec_from_params
from llmplan.models.spec import ModelSpec
from llmplan.units import GiB


# ZeRO paper (Rajbhandari et al. 2019), Figure 1: 7.5B parameters, Nd = 64, mixed-precision Adam (2 + 2 + 12 bytes
# per parameter): baseline 120 GB, Pos 31.4 GB, Pos+g 16.6 GB, Pos+g+p 1.9 GB per GPU (decimal GB).
@pytest.mark.parametrize("stage, published_gb", [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)])
def test_zero_figure1_model_states(stage, published_gb):
    spec = spec_from_params(7.5e9)
    est = estimate_memory(MemoryConfig(spec=spec, dtype="fp16", optimizer="adamw", dp=64, zero=stage))
    assert est.params == 7_500_000_000
    assert round(est.model_states_bytes / 1e9, 1) == published_gb


def test_zero_figure1_from_the_cli_json(cli):
    for stage, published_gb in ((0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)):
        data = cli("memory", "--params", "7.5B", "--dtype", "fp16", "--dp", "64", "--zero", stage, "--json").json()
        b = data["breakdown"]
        assert round((b["weights"] + b["gradients"] + b["optimizer"]) / 1e9, 1) == published_gb
        assert data["model_states_bytes"] == b["weights"] + b["gradients"] + b["optimizer"]
    fsdp = cli("memory", "--params", "7.5B", "--dtype", "fp16", "--dp", "64", "--fsdp", "--json").json()
    assert round(fsdp["model_states_bytes"] / 1e9, 1) == 1.9


def _gpt_layer(h=12288, a=96):
    """A GPT-3-style layer: hidden h, 4h GELU MLP, learned positions, LayerNorm, dropout (Korthikanti's setting)."""
    return ModelSpec(name="gpt", arch="decoder", layers=1, hidden=h, heads=a, ffn=4 * h, vocab=51200, context=2048,
                     qkv_bias=True, out_bias=True, mlp_bias=True)


def _paper_bytes(spec, c):
    """Sum of one layer's terms without the LayerNorm statistics, which the paper leaves out."""
    return sum(t.bytes for t in layer_terms(spec, c) if not t.name.endswith("_stats"))


# Korthikanti et al. 2022, Table 2 (activation memory per transformer layer, 16-bit, with dropout):
#   no parallelism:                s b h (34 + 5 a s / h)
#   tensor parallel:               s b h (10 + 24/t + 5 a s / (h t))
#   tensor + sequence parallel:    s b h / t (34 + 5 a s / h)
#   tensor + selective recompute:  s b h (10 + 24/t)
#   tensor + sequence + selective: 34 s b h / t
#   full recomputation:            2 s b h (sequence parallel: 2 s b h / t)
@pytest.mark.parametrize("h, a, s, b", [(12288, 96, 2048, 1), (4096, 32, 2048, 4), (1024, 16, 512, 8)])
@pytest.mark.parametrize("t", [1, 2, 8])
def test_korthikanti_table2(h, a, s, b, t):
    spec = _gpt_layer(h, a)
    c = ActivationConfig(seq=s, batch=b, bytes_per_value=2, attention="eager", dropout=True, tp=t)
    sbh = s * b * h
    assert _paper_bytes(spec, c) == pytest.approx(sbh * (10 + 24 / t + 5 * a * s / (h * t)), rel=1e-12)
    sp = ActivationConfig(**{**c.__dict__, "sp": True})
    assert _paper_bytes(spec, sp) == pytest.approx(sbh / t * (34 + 5 * a * s / h), rel=1e-12)
    sel = ActivationConfig(**{**c.__dict__, "recompute": "selective"})
    assert _paper_bytes(spec, sel) == pytest.approx(sbh * (10 + 24 / t), rel=1e-12)
    sel_sp = ActivationConfig(**{**sel.__dict__, "sp": True})
    assert _paper_bytes(spec, sel_sp) == pytest.approx(34 * sbh / t, rel=1e-12)
    full = ActivationConfig(**{**c.__dict__, "recompute": "full"})
    assert _paper_bytes(spec, full) == pytest.approx(2 * sbh, rel=1e-12)
    full_sp = ActivationConfig(**{**full.__dict__, "sp": True})
    assert _paper_bytes(spec, full_sp) == pytest.approx(2 * sbh / t, rel=1e-12)


def test_korthikanti_gpt3_175b_from_the_cli(cli):
    """The GPT-3 175B preset (h 12288, a 96) at s = 2048, eager attention, dropout: s b h (34 + 5 a s / h) per layer,
    here 114 s b h, read from the JSON's per-layer terms (LayerNorm statistics aside)."""
    data = cli("memory", "--model", "gpt3-175b", "--seq", "2048", "--attention", "eager", "--json").json()
    terms = data["activation_terms_per_layer"]
    paper = sum(v for k, v in terms.items() if not k.endswith("_stats"))
    assert paper == 2048 * 12288 * (34 + 5 * 96 * 2048 / 12288)
    sel = cli("memory", "--model", "gpt3-175b", "--seq", "2048", "--tp", "8", "--sp", "--recompute", "selective",
              "--json").json()["activation_terms_per_layer"]
    assert sum(v for k, v in sel.items() if not k.endswith("_stats")) == 34 * 2048 * 12288 / 8


def test_korthikanti_first_pipeline_stage_holds_all_layers():
    """Section 4.2.3: with 1F1B the first stage keeps pp micro-batches of L/pp layers, as much as L layers."""
    spec = _gpt_layer(4096, 32).with_(layers=32)
    base = dict(spec=spec, dtype="bf16", batch=1, seq=2048, attention="eager", dropout=True)
    one = estimate_memory(MemoryConfig(**base)).activation_detail
    staged = estimate_memory(MemoryConfig(**base, pp=4)).activation_detail
    assert staged["per_layer"] == one["per_layer"] and staged["microbatches_in_flight"] == 4


# KV cache: 2 x layers x kv_heads x head_dim x tokens x batch x bytes. Shapes from the models' config.json files
# (Llama-2-7B: 32 layers, 32 kv heads, head_dim 128; Llama-3-8B and Mistral-7B: 32 layers, 8 kv heads, head_dim 128).
@pytest.mark.parametrize("name, kv_heads", [("llama-2-7b", 32), ("llama-3-8b", 8), ("mistral-7b", 8)])
def test_kv_cache(name, kv_heads, cli):
    spec = resolve_model(name)
    expected = 2 * 32 * kv_heads * 128 * 4096 * 1 * 2
    assert kv_cache_bytes(spec, 4096, 1, "bf16") == expected
    data = cli("memory", "--model", name, "--mode", "infer", "--seq", "4096", "--json").json()
    assert data["breakdown"]["kv_cache"] == expected
    assert data["breakdown"]["gradients"] == data["breakdown"]["optimizer"] == 0
    if name == "llama-2-7b":
        assert expected == 2 * GiB  # exactly 2 GiB
    beams = cli("memory", "--model", name, "--mode", "infer", "--seq", "4096", "--beams", "4", "--json").json()
    assert beams["breakdown"]["kv_cache"] == 4 * expected


def test_weights_per_dtype_exact(cli):
    assert raw_weight_bytes(1e9, "fp32") == 4e9
    assert raw_weight_bytes(1e9, "bf16") == 2e9
    assert raw_weight_bytes(1e9, "int8") == 1e9
    data = cli("memory", "--params", "1B", "--mode", "infer", "--dtype", "fp32", "--json").json()
    assert data["weights_by_dtype"] == {"fp32": 4_000_000_000, "bf16": 2_000_000_000, "int8": 1_000_000_000,
                                        "int4": 500_000_000}
    assert data["breakdown"]["weights"] == 4_000_000_000
    bf16 = cli("memory", "--params", "1B", "--mode", "infer", "--dtype", "bf16", "--json").json()
    assert bf16["breakdown"]["weights"] == 2_000_000_000


def test_quantized_weights_count_their_scales():
    spec = resolve_model("llama-2-7b")
    int4 = estimate_memory(MemoryConfig(spec=spec, mode="infer", dtype="int4", seq=128)).breakdown["weights"]
    int8 = estimate_memory(MemoryConfig(spec=spec, mode="infer", dtype="int8", seq=128)).breakdown["weights"]
    n = 6_738_415_616
    emb = 2 * 32000 * 4096
    blocks = n - emb - 65 * 4096  # every linear of the blocks; embeddings, head and norms stay 16-bit
    assert int4 == pytest.approx(blocks * (4 + 16 / 128) / 8 + (n - blocks) * 2, rel=1e-9)
    rows = 32 * (3 * 4096 + 4096 + 2 * 11008 + 4096)  # one fp32 absmax per output row (LLM.int8)
    assert int8 == pytest.approx(blocks + 4 * rows + (n - blocks) * 2, rel=1e-9)
    # QLoRA (Dettmers et al. 2023): NF4 + double quantization = 4 + 8/64 + 32/(64*256) bits
    assert round(NF4_BITS - 4, 3) == 0.127
