"""The bench's model is built exactly from a ModelSpec: parameter counts equal count_params for the layers built."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from llmplan.bench.model import build_model, built_params, unbuilt  # noqa: E402
from llmplan.estimate.shapes import truncated  # noqa: E402
from llmplan.errors import LlmplanError  # noqa: E402
from llmplan.models import ModelSpec, count_params, load_presets  # noqa: E402


def tiny(**kw) -> ModelSpec:
    base = dict(name="tiny", arch="decoder", layers=2, hidden=32, heads=4, ffn=64, vocab=97, context=64)
    base.update(kw)
    return ModelSpec(**base)


SHAPES = {
    "gpt-style": tiny(qkv_bias=True, out_bias=True, mlp_bias=True, position="learned", norm="layernorm"),
    "llama-style-gqa": tiny(kv_heads=2, mlp="gated", activation="silu", position="rotary", norm="rmsnorm",
                            tied_embeddings=False),
    "multi-query": tiny(kv_heads=1, position="rotary", norm="rmsnorm"),
    "head-dim-apart": tiny(head_dim=16, kv_heads=2, position="rotary"),
    "parallel-one-norm": tiny(parallel_layers=True, norms_per_layer=1, position="rotary"),
    "parallel-two-norms": tiny(parallel_layers=True, position="rotary", tied_embeddings=False),
    "opt-like": tiny(position_offset=2, embed_dim=16, qkv_bias=True, out_bias=True, mlp_bias=True),
    "bloom-like-alibi": tiny(position="alibi", embedding_norm=True, qkv_bias=True),
    "relative-bias": tiny(position="relative", relative_buckets=8),
    "sandwich-norms": tiny(norms_per_layer=4, norm="rmsnorm", position="rotary"),
    "head-bias": tiny(tied_embeddings=False, lm_head_bias=True, norm="rmsnorm", norm_bias=True),
    "moe": tiny(experts=4, experts_per_token=2, mlp="gated", position="rotary", norm="rmsnorm"),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_parameter_count_equals_count_params(name):
    spec = SHAPES[name]
    model = build_model(spec)
    assert sum(p.numel() for p in model.parameters()) == count_params(spec).total


# every decoder preset, flat or described per layer (MLA, sliding windows, MoE with shared experts, hybrids, DeepSeek-V4)
DECODER_PRESETS = sorted(n for n, s in load_presets().items() if s.arch == "decoder")


def test_deepseek_v4_blocks_train_with_its_parameters():
    """DeepSeek-V4's layers (llmplan.bench.blocks_v4): the parameters count_params counts, a forward and backward
    that runs, and gradients everywhere but in CSA's indexer, whose top-k choice carries none (as in transformers)."""
    from llmplan.models.hf_config import read_hf_config

    spec = read_hf_config(Path(__file__).resolve().parent / "data" / "hf_configs" / "DeepSeek-V4-reduced" /
                          "config.json")
    torch.manual_seed(0)
    model = build_model(spec)
    assert sum(p.numel() for p in model.parameters()) == count_params(spec).total
    tokens = torch.randint(0, spec.vocab, (2, 40))
    loss = model(tokens, tokens)
    loss.backward()
    assert torch.isfinite(loss) and 0.0 < loss.item() < 2 * 6.908  # of the order of ln(vocab 1000) at initialisation
    no_grad = {n.split(".attn.")[1].split(".")[0] for n, p in model.named_parameters() if p.grad is None}
    assert no_grad == {"indexer"}
    selective = build_model(spec, recompute="selective")
    selective.load_state_dict(model.state_dict())
    assert torch.allclose(selective(tokens, tokens), loss)
    from torch.utils.flop_counter import FlopCounterMode  # benchmarks/accuracy.py counts FLOPs this way

    with FlopCounterMode(display=False) as counter:  # its module hooks must accept the indexer's no_grad inputs
        model(tokens, tokens).backward()
    assert counter.get_total_flops() > 0


def test_hyper_connections_without_compressed_attention_are_refused():
    from llmplan.models.layers import LayerGroup

    spec = SHAPES["llama-style-gqa"]
    g = spec.layer_groups[0]
    odd = spec.with_(groups=(LayerGroup(g.count, g.mixer, g.ffn, g.norms, hyper=4),))
    assert "hyper-connections or compressed attention apart" in unbuilt(odd)
    with pytest.raises(LlmplanError, match="which the bench does not build"):
        build_model(odd)


@pytest.mark.parametrize("name", DECODER_PRESETS)
def test_full_width_presets_on_meta_device_count_exactly(name):
    # The real widths (GQA, head_dim, biases, MoE experts...), the first layers (enough for each layer kind of the
    # common patterns: Gemma's 5:1, Llama 4's 3:1, DeepSeek's dense first layers), no memory allocated.
    spec = load_presets()[name]
    layers = min(spec.layers, 6 if spec.groups else 2)
    with torch.device("meta"):
        model = build_model(spec, layers=layers, device="meta")
    assert sum(p.numel() for p in model.parameters()) == built_params(spec, layers=layers)
    assert built_params(spec, layers=layers) == count_params(truncated(spec, layers)).total


@pytest.mark.parametrize("attention", ["flash", "eager"])
@pytest.mark.parametrize("recompute", ["none", "selective", "full"])
def test_forward_backward_and_attention_kinds_agree(attention, recompute):
    spec = SHAPES["llama-style-gqa"]
    torch.manual_seed(0)
    ref = build_model(spec, attention="flash")
    model = build_model(spec, attention=attention, recompute=recompute)
    model.load_state_dict(ref.state_dict())
    tokens = torch.randint(0, spec.vocab, (2, 16))
    logits = model(tokens)
    assert logits.shape == (2, 16, spec.vocab)
    torch.testing.assert_close(logits, ref(tokens), rtol=1e-4, atol=1e-4)
    loss = model(tokens, tokens)
    assert loss.ndim == 0
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", ["bloom-like-alibi", "relative-bias", "moe", "opt-like", "sandwich-norms"])
def test_every_shape_trains_one_step(name):
    spec = SHAPES[name]
    for attention in ("flash", "eager"):
        torch.manual_seed(0)
        model = build_model(spec, attention=attention)
        tokens = torch.randint(0, spec.vocab, (2, 12))
        loss = model(tokens, tokens)
        assert torch.isfinite(loss)
        loss.backward()


def test_causality_future_tokens_do_not_change_the_past():
    spec = SHAPES["gpt-style"]
    model = build_model(spec, attention="eager").eval()
    a = torch.randint(0, spec.vocab, (1, 10))
    b = a.clone()
    b[0, 7:] = (b[0, 7:] + 1) % spec.vocab
    torch.testing.assert_close(model(a)[0, :7], model(b)[0, :7])


def test_rejections_are_clear_errors():
    with pytest.raises(LlmplanError, match="decoder-only"):
        build_model(tiny(arch="encoder"))
    with pytest.raises(LlmplanError, match="attention"):
        build_model(tiny(), attention="paged")
    with pytest.raises(LlmplanError, match="recompute"):
        build_model(tiny(), recompute="some")
    with pytest.raises(LlmplanError, match="layers"):
        build_model(tiny(), layers=0)


# Current architectures, layer group by layer group (tiny shapes) ------------------------------------------------
from llmplan.models.layers import Attention, Dense, GatedDeltaNet, LayerGroup, Mamba2, MoE, merge_runs  # noqa: E402


def grouped(groups, **kw) -> ModelSpec:
    base = dict(name="tiny-groups", arch="decoder", hidden=32, vocab=97, context=64, position="rotary",
                norm="rmsnorm", mlp="gated", activation="silu", tied_embeddings=False)
    return ModelSpec.from_groups(groups=tuple(groups), **{**base, **kw})


MLA = Attention(heads=4, kv_heads=4, head_dim=12, v_head_dim=8, q_lora_rank=16, kv_lora_rank=8, qk_rope_head_dim=4)
FULL = Attention(heads=4, kv_heads=2, head_dim=8)
LOCAL = Attention(heads=4, kv_heads=2, head_dim=8, kind="sliding", window=5)
CHUNK = Attention(heads=4, kv_heads=2, head_dim=8, kind="chunked", window=4)
SHARED = MoE(4, 2, 24, shared_ffn=16)
GROUPED = {
    "mla-dense-first": grouped([LayerGroup(1, MLA, Dense(48)), LayerGroup(2, MLA, SHARED)]),
    "mla-no-q-lora": grouped([LayerGroup(2, Attention(heads=4, kv_heads=4, head_dim=12, v_head_dim=8,
                                                       kv_lora_rank=8, qk_rope_head_dim=4), Dense(48))]),
    "sliding-global": grouped(list(merge_runs([(LOCAL if i % 2 == 0 else FULL, Dense(48), 4) for i in range(4)]))),
    "chunked-nope-moe": grouped([LayerGroup(1, CHUNK, SHARED), LayerGroup(1, Attention(4, 2, 8, rope=False),
                                                                          SHARED)]),
    "sinks-biased-experts": grouped([LayerGroup(2, Attention(4, 2, 8, kind="sliding", window=3, sinks=True,
                                                             qkv_bias=True, out_bias=True),
                                                MoE(4, 2, 24, bias=True, router_bias=True))]),
    "qk-norm-gate": grouped([LayerGroup(1, Attention(4, 2, 8, qk_norm="head", output_gate=True),
                                        MoE(4, 2, 24, shared_ffn=16, shared_gate=True)),
                             LayerGroup(1, Attention(4, 2, 8, qk_norm="proj"), Dense(48))]),
    "gemma4-like": grouped([LayerGroup(1, Attention(4, 2, 8, kind="sliding", window=5, qk_norm="head"),
                                       MoE(4, 2, 24, shared_ffn=16, router_scales=True), 7),
                            LayerGroup(1, Attention(4, 1, 8, k_eq_v=True, qk_norm="head"), Dense(48), 4),
                            LayerGroup(1, Attention(4, 2, 8, kind="sliding", window=5, qk_norm="head",
                                                    kv_shared=True), Dense(48), 4)]),
    "hybrid": grouped([LayerGroup(1, Mamba2(heads=4, head_dim=8, state=4, groups=2), None, 1),
                       LayerGroup(1, FULL, None, 1), LayerGroup(1, None, Dense(48, gated=False), 1),
                       LayerGroup(1, GatedDeltaNet(2, 4, 8, 8), MoE(4, 2, 24, latent=16))], position="none",
                      activation="relu2"),
    # Falcon-H1: attention beside a Mamba-2 mixer without its gated norm; Apertus: xIELU's two learned scalars
    "falcon-h1-xielu": grouped([LayerGroup(1, FULL, None, 1),
                                LayerGroup(1, Mamba2(heads=4, head_dim=8, state=4, groups=2, gated_norm=False),
                                           Dense(48, gated=False, act_params=2), 1)], activation="xielu"),
}


@pytest.mark.parametrize("name", sorted(GROUPED))
def test_current_blocks_count_and_train(name):
    spec = GROUPED[name]
    torch.manual_seed(0)
    model = build_model(spec)
    assert sum(p.numel() for p in model.parameters()) == count_params(spec).total
    tokens = torch.randint(0, spec.vocab, (2, 12))
    loss = model(tokens, tokens)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())
    eager = build_model(spec, attention="eager")
    eager.load_state_dict(model.state_dict())
    torch.testing.assert_close(eager(tokens), model(tokens), rtol=1e-4, atol=1e-4)


def test_a_window_wider_than_the_sequence_is_full_attention():
    torch.manual_seed(0)
    wide = grouped([LayerGroup(2, Attention(4, 2, 8, kind="sliding", window=64), Dense(48))])
    full = grouped([LayerGroup(2, Attention(4, 2, 8), Dense(48))])
    a, b = build_model(wide), build_model(full)
    b.load_state_dict(a.state_dict())
    tokens = torch.randint(0, 97, (1, 16))
    torch.testing.assert_close(a(tokens), b(tokens))
    narrow = build_model(grouped([LayerGroup(2, LOCAL, Dense(48))]))
    narrow.load_state_dict(a.state_dict())
    assert not torch.allclose(narrow(tokens), a(tokens))
    # a sliding layer's output at position i depends only on the last `window` tokens
    changed = tokens.clone()
    changed[0, 0] = (changed[0, 0] + 1) % 97
    one_layer = build_model(grouped([LayerGroup(1, LOCAL, None, 1)]))
    torch.testing.assert_close(one_layer(tokens)[0, 5:], one_layer(changed)[0, 5:])


def test_truncated_group_spec_keeps_its_first_layers():
    spec = GROUPED["mla-dense-first"]
    assert built_params(spec, layers=1) == count_params(truncated(spec, 1)).total
    assert isinstance(truncated(spec, 1).layer_groups[-1].ffn, Dense)
    with torch.device("meta"):
        model = build_model(spec, layers=2, device="meta")
    assert sum(p.numel() for p in model.parameters()) == built_params(spec, layers=2)


def test_bench_trains_a_current_architecture_from_its_config(cli, tmp_path):
    """`llmplan bench --model config.json` of a tiny DeepSeek-V3-style config (MLA, a dense first layer, routed and
    shared experts): the measurement stands beside the prediction, the model built has count_params' parameters."""
    import json

    config = {"model_type": "deepseek_v3", "hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32,
              "num_hidden_layers": 3, "first_k_dense_replace": 1, "n_routed_experts": 8, "num_experts_per_tok": 2,
              "n_shared_experts": 1, "num_attention_heads": 4, "num_key_value_heads": 4, "q_lora_rank": 32,
              "kv_lora_rank": 16, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16,
              "vocab_size": 256, "max_position_embeddings": 512, "tie_word_embeddings": False, "n_group": 1,
              "topk_group": 1, "num_nextn_predict_layers": 0}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    from llmplan.models.hf_config import read_hf_config

    spec = read_hf_config(path)
    data = cli("bench", "--model", str(path), "--layers", "3", "--batch", "1", "--seq", "16", "--device", "cpu",
               "--dtype", "fp32", "--steps", "1", "--warmup", "0", "--no-save", "--json").json()
    run = data["runs"][0]
    assert run["params"] == count_params(spec).total
    assert run["peak_bytes_predicted"] == pytest.approx(run["peak_bytes_measured"], rel=0.10)
