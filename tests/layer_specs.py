"""Current architectures built by hand from their config.json files (shared/reference/hf-configs), for the estimator
tests; each count is checked against transformers' (expected_params.json) in tests/test_estimate_layers.py."""

from llmplan.models.layers import Attention, Dense, LayerGroup, Mamba2, MoE, merge_runs
from llmplan.models.spec import ModelSpec
from llmplan.models.weight_format import WeightFormat

MLA = Attention(heads=128, kv_heads=128, head_dim=192, v_head_dim=128, q_lora_rank=1536, kv_lora_rank=512,
                qk_rope_head_dim=64)


def deepseek_v3() -> ModelSpec:
    """3 dense MLA layers, then 58 MoE MLA layers (256 routed experts, top 8, one shared); fp8 128 x 128 blocks."""
    return ModelSpec.from_groups(
        name="dsv3", arch="decoder", hidden=7168, vocab=129280, context=163840, position="rotary", norm="rmsnorm",
        tied_embeddings=False, mtp_layers=1,
        weight_format=WeightFormat("fp8", 8, 128 * 128, 4.0),
        groups=(LayerGroup(3, MLA, Dense(18432)), LayerGroup(58, MLA, MoE(256, 8, 2048, shared_ffn=2048))))


def gemma2_9b() -> ModelSpec:
    """42 layers alternating sliding (window 4096, even layers) and full attention, sandwich norms."""
    full = Attention(heads=16, kv_heads=8, head_dim=256)
    local = Attention(heads=16, kv_heads=8, head_dim=256, kind="sliding", window=4096)
    groups = merge_runs([(local if i % 2 == 0 else full, Dense(14336), 4) for i in range(42)])
    return ModelSpec.from_groups(name="gemma-2-9b", arch="decoder", hidden=3584, vocab=256000, context=8192,
                                 norm="rmsnorm", position="rotary", activation="gelu_pytorch_tanh", groups=groups)


def gemma3_4b() -> ModelSpec:
    """34 layers, five sliding (window 1024) to one full; QK-norm per head."""
    full = Attention(heads=8, kv_heads=4, head_dim=256, qk_norm="head")
    local = Attention(heads=8, kv_heads=4, head_dim=256, qk_norm="head", kind="sliding", window=1024)
    groups = merge_runs([(full if (i + 1) % 6 == 0 else local, Dense(10240), 4) for i in range(34)])
    return ModelSpec.from_groups(name="gemma-3-4b", arch="decoder", hidden=2560, vocab=262208, context=131072,
                                 norm="rmsnorm", position="rotary", activation="gelu_pytorch_tanh", groups=groups)


def gpt_oss_20b() -> ModelSpec:
    """24 layers alternating sliding (window 128) and full, sinks, 32 biased experts top 4; MXFP4 experts."""
    kw = dict(heads=64, kv_heads=8, head_dim=64, qkv_bias=True, out_bias=True, sinks=True)
    full, local = Attention(**kw), Attention(**kw, kind="sliding", window=128)
    moe = MoE(32, 4, 2880, bias=True, router_bias=True)
    groups = merge_runs([(local if i % 2 == 0 else full, moe, 2) for i in range(24)])
    return ModelSpec.from_groups(name="gpt-oss-20b", arch="decoder", hidden=2880, vocab=201088, context=131072,
                                 norm="rmsnorm", position="rotary", tied_embeddings=False, groups=groups,
                                 weight_format=WeightFormat("mxfp4", 4, 32, 1.0, "experts"))


def llama4_scout() -> ModelSpec:
    """48 layers: three chunked (8192) to one full NoPE layer, every layer MoE 16 experts top 1 + shared."""
    chunk = Attention(heads=40, kv_heads=8, head_dim=128, kind="chunked", window=8192)  # L2 qk-norm: no weights
    full = Attention(heads=40, kv_heads=8, head_dim=128, rope=False)
    moe = MoE(16, 1, 8192, shared_ffn=8192)
    groups = merge_runs([(full if (i + 1) % 4 == 0 else chunk, moe, 2) for i in range(48)])
    return ModelSpec.from_groups(name="llama-4-scout", arch="decoder", hidden=5120, vocab=202048, context=10485760,
                                 norm="rmsnorm", position="rotary", tied_embeddings=False, groups=groups)


def nemotron_h_56b() -> ModelSpec:
    """hybrid_override_pattern: M = Mamba-2, * = attention, - = MLP (squared ReLU); one norm per layer."""
    pattern = ("M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*"
               "-M-M-M-M-M*-M-M-M-M-M-")
    mamba = Mamba2(heads=256, head_dim=64, state=256, groups=8, conv_kernel=4)
    attn = Attention(heads=64, kv_heads=8, head_dim=128, rope=False)
    mlp = Dense(32768, gated=False)
    make = {"M": (mamba, None, 1), "*": (attn, None, 1), "-": (None, mlp, 1)}
    return ModelSpec.from_groups(name="nemotron-h-56b", arch="decoder", hidden=8192, vocab=131072, context=8192,
                                 norm="rmsnorm", position="none", activation="relu2", tied_embeddings=False,
                                 groups=merge_runs([make[c] for c in pattern]))
