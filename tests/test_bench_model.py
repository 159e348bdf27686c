"""The bench's model is built exactly from a ModelSpec: parameter counts equal count_params for the layers built."""

import pytest

torch = pytest.importorskip("torch")

from llmplan.bench.model import build_model, built_params  # noqa: E402
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


# presets described per layer (groups: MLA, sliding windows, MoE with shared experts) are built once the bench
# walks the layer groups; the flat ones here
DECODER_PRESETS = sorted(n for n, s in load_presets().items() if s.arch == "decoder" and not s.groups)


@pytest.mark.parametrize("name", DECODER_PRESETS)
def test_full_width_presets_on_meta_device_count_exactly(name):
    # The real widths (GQA, head_dim, biases, MoE experts...), two layers, no memory allocated.
    spec = load_presets()[name]
    with torch.device("meta"):
        model = build_model(spec, layers=2, device="meta")
    assert sum(p.numel() for p in model.parameters()) == built_params(spec, layers=2)
    assert built_params(spec, layers=2) == count_params(spec.with_(layers=2)).total


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
