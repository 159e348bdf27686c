"""What one layer is made of: its token mixer (an attention kind, or a recurrent mixer) and its feed-forward network.

A 2022 transformer repeats one block; a 2026 model does not (Gemma 3: five sliding layers to one global; DeepSeek-V3:
three dense MLA layers, then 58 MoE MLA layers; Nemotron-H: Mamba-2, attention and MLP-only layers in a pattern).
Following vLLM's KV-cache manager (vllm/v1/kv_cache_interface.py: one small spec per kind of layer state), each
component here is a frozen spec that answers the questions every estimator asks of it: how many parameters, how
many values a layer keeps per token or per sequence, how many tokens it keeps. A model is a run-length list of
`LayerGroup`s, so that parameters, KV cache and FLOPs are sums over groups.

Parameter counts follow the module shapes that Hugging Face transformers allocates (a linear d_in -> d_out holds
d_in * d_out weights and d_out biases with bias); each class names the modules it counts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from llmplan.errors import LlmplanError

ATTENTION_KINDS = ("full", "sliding", "chunked")
QK_NORMS = ("", "head", "proj")


def linear(d_in: int, d_out: int, bias: bool) -> int:
    return d_in * d_out + (d_out if bias else 0)


def _check_ints(owner: object, names: tuple[str, ...], minimum: int) -> None:
    for name in names:
        value = getattr(owner, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum or value > 10**15:
            kind = "a positive" if minimum else "a non-negative"
            shown = (f"about 1e{int(value.bit_length() * 0.30103)}" if isinstance(value, int) and value > 10**15
                     else repr(value))
            raise LlmplanError(f"{type(owner).__name__.lower()} {name} must be {kind} integer up to 1e15, got "
                               f"{shown}")


@dataclass(frozen=True)
class Attention:
    """Self-attention of one layer: multi-head, grouped-query or multi-query; full, sliding-window or chunked;
    optionally multi-head latent attention (MLA, DeepSeek-V2 section 2.1)."""

    heads: int                 # query heads
    kv_heads: int              # key/value heads (MLA: equal to heads; the cache holds the latent instead)
    head_dim: int              # query/key width per head (MLA: qk_nope_head_dim + qk_rope_head_dim)
    v_head_dim: int = 0        # value width per head; 0 means head_dim
    kind: str = "full"         # see ATTENTION_KINDS
    window: int = 0            # sliding: keys a query sees (HF `sliding_window`); chunked: the chunk (Llama 4)
    rope: bool = True          # False: no positional encoding on this layer (NoPE; Llama 4's every 4th layer)
    qkv_bias: bool = False
    out_bias: bool = False
    qk_norm: str = ""          # "head": RMSNorm over each head (Qwen3, Gemma 3); "proj": over the whole q and k
                               # projections (OLMo 2); see QK_NORMS
    sinks: bool = False        # one learned sink logit per head (gpt-oss)
    output_gate: bool = False  # q_proj also yields a sigmoid gate on the attention output, doubling its width
                               # (Qwen3-Next / Qwen3.5 attn_output_gate: Qwen3NextAttention q_proj)
    k_eq_v: bool = False       # the keys serve as values: no v_proj, the cache holds K only (Gemma 4 attention_k_eq_v)
    kv_shared: bool = False    # reuses an earlier layer's K and V: no k/v projections or norms, no cache of its own
                               # (Gemma 4 num_kv_shared_layers)
    # Multi-head latent attention: kv_lora_rank > 0 turns it on (DeepSeek-V2 eq. 9-11, Kimi K2, GLM-5)
    q_lora_rank: int = 0       # 0: q is a plain hidden -> heads x head_dim projection
    kv_lora_rank: int = 0      # width of the compressed KV latent c_KV
    qk_rope_head_dim: int = 0  # the decoupled rotary part of each query/key head, shared by all heads for the key
    # DeepSeek Sparse Attention's lightning indexer (DeepSeek-V3.2): scores keys and keeps index_topk of them
    index_heads: int = 0
    index_head_dim: int = 0
    index_topk: int = 0

    def __post_init__(self) -> None:
        _check_ints(self, ("heads", "kv_heads", "head_dim"), 1)
        _check_ints(self, ("v_head_dim", "window", "q_lora_rank", "kv_lora_rank", "qk_rope_head_dim",
                           "index_heads", "index_head_dim", "index_topk"), 0)
        if self.kind not in ATTENTION_KINDS:
            raise LlmplanError(f"unknown attention kind {self.kind!r}; accepted: {', '.join(ATTENTION_KINDS)}")
        if self.kind != "full" and self.window < 1:
            raise LlmplanError(f"{self.kind} attention needs a window (tokens) of at least 1")
        if self.qk_norm not in QK_NORMS:
            raise LlmplanError(f"unknown qk_norm {self.qk_norm!r}; accepted: head, proj or none")
        if self.heads % self.kv_heads:
            raise LlmplanError(f"{self.heads} query heads cannot be grouped over {self.kv_heads} key/value heads")
        if self.is_mla and not 0 < self.qk_rope_head_dim < self.head_dim:
            raise LlmplanError("MLA needs 0 < qk_rope_head_dim < head_dim (head_dim = qk_nope + qk_rope)")
        if bool(self.index_heads) != bool(self.index_head_dim):
            raise LlmplanError("a sparse-attention indexer needs both index_heads and index_head_dim")

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def d_v(self) -> int:
        return self.v_head_dim or self.head_dim

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    def params(self, hidden: int) -> int:
        """Weights of the projections, and the norms and sinks that live inside the attention module."""
        h = hidden
        if self.is_mla:  # transformers DeepseekV3Attention
            if self.q_lora_rank:  # q_a_proj, q_a_layernorm (RMSNorm), q_b_proj
                q = linear(h, self.q_lora_rank, self.qkv_bias) + self.q_lora_rank + self.q_lora_rank * self.q_dim
            else:
                q = h * self.q_dim
            qk_nope = self.head_dim - self.qk_rope_head_dim
            kv = (linear(h, self.kv_lora_rank + self.qk_rope_head_dim, self.qkv_bias)  # kv_a_proj_with_mqa
                  + self.kv_lora_rank                                                # kv_a_layernorm
                  + self.kv_lora_rank * self.heads * (qk_nope + self.d_v))           # kv_b_proj
            total = q + kv + linear(self.heads * self.d_v, h, self.out_bias)
        else:
            kv_width = self.kv_heads * (self.head_dim + (0 if self.k_eq_v else self.d_v))
            if self.kv_shared:
                kv_width = 0
            q_width = self.q_dim * (2 if self.output_gate else 1)
            total = (linear(h, q_width, self.qkv_bias) + h * kv_width + (kv_width if self.qkv_bias else 0)
                     + linear(self.heads * self.d_v, h, self.out_bias))
        if self.qk_norm == "head":
            total += self.head_dim * (1 if self.kv_shared else 2)
        elif self.qk_norm == "proj":
            total += self.q_dim + self.kv_heads * self.head_dim
        if self.sinks:
            total += self.heads
        if self.index_heads:  # DeepSeek-V3.2 Indexer: wq_b, wk, k_norm (LayerNorm), weights_proj
            q_in = self.q_lora_rank or h
            total += (q_in * self.index_heads * self.index_head_dim + h * self.index_head_dim
                      + 2 * self.index_head_dim + h * self.index_heads)
        return total

    def kv_values_per_token(self, expanded_mla: bool = False) -> int:
        """Values one layer caches per token: K and V per KV head; for MLA the latent and the shared rotary key
        (kv_lora_rank + qk_rope_head_dim, as vLLM and SGLang cache it), or the K and V that the latent expands
        to when `expanded_mla`; plus the indexer's key for sparse attention."""
        if self.kv_shared:
            return 0  # the producing layer's cache serves this one
        if self.is_mla:
            values = (self.heads * (self.head_dim + self.d_v) if expanded_mla
                      else self.kv_lora_rank + self.qk_rope_head_dim)
        else:
            values = self.kv_heads * (self.head_dim + (0 if self.k_eq_v else self.d_v))
        return values + self.index_head_dim

    def tokens_held(self, seq: int) -> int:
        """Tokens a layer keeps for a sequence of `seq` tokens: all of them, or at most the window or chunk."""
        return seq if self.kind == "full" else min(seq, self.window)

    def keys_attended(self, position: int) -> int:
        """Keys the query at 0-based `position` attends to (causal)."""
        if self.kind == "sliding":
            return min(position + 1, self.window)
        if self.kind == "chunked":
            return position % self.window + 1
        return position + 1


@dataclass(frozen=True)
class Mamba2:
    """A Mamba-2 mixer (Dao and Gu 2024, "Transformers are SSMs"; transformers NemotronHMamba2Mixer)."""

    heads: int            # mamba_num_heads
    head_dim: int         # mamba_head_dim
    state: int            # ssm_state_size (N)
    groups: int = 1       # n_groups of B and C
    conv_kernel: int = 4
    bias: bool = False    # use_bias on in_proj and out_proj
    conv_bias: bool = True
    gated_norm: bool = True  # the gated RMSNorm before out_proj (Falcon-H1 builds it only with mamba_rms_norm)

    def __post_init__(self) -> None:
        _check_ints(self, ("heads", "head_dim", "state", "groups", "conv_kernel"), 1)

    @property
    def inner(self) -> int:
        return self.heads * self.head_dim

    @property
    def conv_dim(self) -> int:
        return self.inner + 2 * self.groups * self.state

    def params(self, hidden: int) -> int:
        # in_proj -> [z, x, B, C, dt]; depthwise conv1d over x, B, C; dt_bias, A_log, D; gated RMSNorm; out_proj
        in_proj = linear(hidden, 2 * self.inner + 2 * self.groups * self.state + self.heads, self.bias)
        conv = self.conv_dim * self.conv_kernel + (self.conv_dim if self.conv_bias else 0)
        norm = self.inner if self.gated_norm else 0
        return in_proj + conv + 3 * self.heads + norm + linear(self.inner, hidden, self.bias)

    def state_values(self) -> int:
        """Values kept per sequence, whatever its length: the conv window and the SSM state (vLLM MambaSpec)."""
        return self.conv_dim * (self.conv_kernel - 1) + self.heads * self.head_dim * self.state


@dataclass(frozen=True)
class GatedDeltaNet:
    """A Gated DeltaNet linear-attention mixer (Yang et al. 2024; transformers Qwen3NextGatedDeltaNet)."""

    k_heads: int          # linear_num_key_heads
    v_heads: int          # linear_num_value_heads
    k_head_dim: int
    v_head_dim: int
    conv_kernel: int = 4  # linear_conv_kernel_dim

    def __post_init__(self) -> None:
        _check_ints(self, ("k_heads", "v_heads", "k_head_dim", "v_head_dim", "conv_kernel"), 1)
        if self.v_heads % self.k_heads:
            raise LlmplanError(f"{self.v_heads} value heads cannot be grouped over {self.k_heads} key heads")

    @property
    def conv_dim(self) -> int:
        return 2 * self.k_heads * self.k_head_dim + self.v_heads * self.v_head_dim

    def params(self, hidden: int) -> int:
        key, value = self.k_heads * self.k_head_dim, self.v_heads * self.v_head_dim
        # in_proj_qkvz, in_proj_ba, bias-free depthwise conv1d, dt_bias and A_log, RMSNormGated, out_proj
        return (hidden * (2 * key + 2 * value) + hidden * 2 * self.v_heads + self.conv_dim * self.conv_kernel
                + 2 * self.v_heads + self.v_head_dim + value * hidden)

    def state_values(self) -> int:
        """Values kept per sequence: the conv window and one k x v state matrix per value head."""
        return self.conv_dim * (self.conv_kernel - 1) + self.v_heads * self.k_head_dim * self.v_head_dim


@dataclass(frozen=True)
class Dense:
    """A feed-forward network: up and down (standard), or gate, up and down (gated: SwiGLU, GeGLU)."""

    ffn: int
    gated: bool = True
    bias: bool = False
    act_params: int = 0  # learned parameters of the activation itself (Apertus xIELU: alpha_p and alpha_n, 2)

    def __post_init__(self) -> None:
        _check_ints(self, ("ffn",), 1)
        _check_ints(self, ("act_params",), 0)

    def params(self, hidden: int) -> int:
        return ((2 if self.gated else 1) * linear(hidden, self.ffn, self.bias) + linear(self.ffn, hidden, self.bias)
                + self.act_params)

    def active_params(self, hidden: int) -> int:
        return self.params(hidden)


@dataclass(frozen=True)
class MoE:
    """A mixture-of-experts layer: routed experts, an optional always-on shared expert (DeepSeekMoE, Dai et al.
    2024), a bias-free or biased router. Grouped or limited routing fields of configs change no count."""

    experts: int               # routed experts
    top_k: int                 # routed experts per token
    expert_ffn: int            # inner width of one routed expert (HF `moe_intermediate_size`)
    gated: bool = True
    bias: bool = False         # biases inside each expert (gpt-oss)
    router_bias: bool = False  # the router linear has a bias (gpt-oss)
    shared_ffn: int = 0        # total inner width of the shared expert(s); 0: none
    shared_gate: bool = False  # Qwen2-MoE: a sigmoid gate (hidden -> 1) on the shared expert
    latent: int = 0            # routed experts work in a latent width, between two projections hidden <-> latent
                               # (Nemotron 3 Super moe_latent_size: NemotronHMoE fc1/fc2_latent_proj); 0: none
    router_scales: bool = False  # a learned scale per hidden unit and per expert on the router (Gemma4TextRouter)
    shared_bias: bool = False  # biases in the shared expert only (DeepSeek-V4 mlp_bias: DeepseekV4MLP)

    def __post_init__(self) -> None:
        _check_ints(self, ("experts", "top_k", "expert_ffn"), 1)
        _check_ints(self, ("shared_ffn", "latent"), 0)
        if self.top_k > self.experts:
            raise LlmplanError(f"top_k ({self.top_k}) exceeds the {self.experts} experts")

    def expert_params(self, hidden: int) -> int:
        return Dense(self.expert_ffn, self.gated, self.bias).params(self.latent or hidden)

    def latent_params(self, hidden: int) -> int:
        """The hidden -> latent and latent -> hidden projections (biased like the experts); always active."""
        return linear(hidden, self.latent, self.bias) + linear(self.latent, hidden, self.bias) if self.latent else 0

    def shared_params(self, hidden: int) -> int:
        if not self.shared_ffn:
            return 0
        return (Dense(self.shared_ffn, self.gated, self.shared_bias).params(hidden)
                + (hidden if self.shared_gate else 0))

    def router_params(self, hidden: int) -> int:
        # DeepSeek-V3's e_score_correction_bias is a buffer in transformers, not a parameter: not counted
        scales = hidden + self.experts if self.router_scales else 0
        return linear(hidden, self.experts, self.router_bias) + scales

    def params(self, hidden: int) -> int:
        return (self.experts * self.expert_params(hidden) + self.shared_params(hidden) + self.router_params(hidden)
                + self.latent_params(hidden))

    def active_params(self, hidden: int) -> int:
        """Parameters one token uses: its top_k experts, the shared expert and the router."""
        return self.params(hidden) - (self.experts - self.top_k) * self.expert_params(hidden)


Mixer = Attention | Mamba2 | GatedDeltaNet
FFN = Dense | MoE


@dataclass(frozen=True)
class LayerGroup:
    """`count` consecutive layers of the same make. A layer may lack a mixer (Nemotron-H's MLP-only layers) or a
    feed-forward network (its Mamba-only and attention-only layers), not both."""

    count: int
    mixer: Mixer | None
    ffn: FFN | None
    norms: int = 2  # norms of the layer outside its components: 2 pre-norm, 4 sandwich (Gemma 2/3), 1 Nemotron-H
    hyper: int = 0  # residual streams of the hyper-connections around each sub-block (DeepSeek-V4 hc_mult); 0: none

    def __post_init__(self) -> None:
        _check_ints(self, ("count",), 1)
        _check_ints(self, ("norms", "hyper"), 0)
        if self.mixer is None and self.ffn is None:
            raise LlmplanError("a layer needs a token mixer, a feed-forward network, or both")

    @property
    def attention(self) -> Attention | None:
        return self.mixer if isinstance(self.mixer, Attention) else None

    def params(self, hidden: int, norm_params: int) -> int:
        mixer = self.mixer.params(hidden) if self.mixer else 0
        ffn = self.ffn.params(hidden) if self.ffn else 0
        return self.count * (mixer + ffn + self.norms * norm_params + self.hyper_params(hidden))

    def hyper_params(self, hidden: int) -> int:
        """One layer's hyper-connections: one per sub-block (DeepSeek-V4: attn_hc and ffn_hc)."""
        if not self.hyper:
            return 0
        from llmplan.models.layers_v4 import hyper_params

        return ((self.mixer is not None) + (self.ffn is not None)) * hyper_params(self.hyper, hidden)

    def state_values(self) -> int:
        """Per-sequence recurrent state of one layer (0 for attention and MLP-only layers)."""
        return self.mixer.state_values() if isinstance(self.mixer, (Mamba2, GatedDeltaNet)) else 0


def merge_runs(layers: list[tuple[Mixer | None, FFN | None, int]]) -> tuple[LayerGroup, ...]:
    """Per-layer (mixer, ffn, norms) in order -> run-length groups of equal consecutive layers."""
    groups: list[LayerGroup] = []
    for mixer, ffn, norms in layers:
        if groups and (groups[-1].mixer, groups[-1].ffn, groups[-1].norms) == (mixer, ffn, norms):
            last = groups[-1]
            groups[-1] = LayerGroup(last.count + 1, mixer, ffn, norms)
        else:
            groups.append(LayerGroup(1, mixer, ffn, norms))
    return tuple(groups)


# Plain data (presets.json, --json) ----------------------------------------------------------------------------
_COMPONENTS = {"attention": Attention, "mamba2": Mamba2, "gated_deltanet": GatedDeltaNet, "dense": Dense,
               "moe": MoE}
_NAMES = {cls: name for name, cls in _COMPONENTS.items()}


def component_dict(component: Mixer | FFN | None) -> dict | None:
    """A component as plain data: its type and the fields that differ from their defaults."""
    if component is None:
        return None
    defaults = {f.name: f.default for f in fields(component)}
    return {"type": _NAMES[type(component)],
            **{k: v for k, v in asdict(component).items() if v != defaults.get(k, object())}}


def component_from_dict(data: dict | None, allowed: tuple[str, ...]) -> Mixer | FFN | None:
    if data is None:
        return None
    if not isinstance(data, dict) or data.get("type") not in allowed:
        raise LlmplanError(f"a layer component must be an object with type one of {', '.join(allowed)}")
    cls = _COMPONENTS[data["type"]]
    known = {f.name for f in fields(cls)}
    extra = set(data) - known - {"type"}
    if extra:
        raise LlmplanError(f"{data['type']}: unknown fields {', '.join(sorted(extra))}")
    return cls(**{k: v for k, v in data.items() if k != "type"})


def group_dict(group: LayerGroup) -> dict:
    out = {"count": group.count, "mixer": component_dict(group.mixer), "ffn": component_dict(group.ffn),
           "norms": group.norms}
    return {**out, "hyper": group.hyper} if group.hyper else out


def group_from_dict(data: dict) -> LayerGroup:
    if not isinstance(data, dict):
        raise LlmplanError("a layer group must be an object with count, mixer, ffn and norms")
    extra = set(data) - {"count", "mixer", "ffn", "norms", "hyper"}
    if extra:
        raise LlmplanError(f"layer group: unknown fields {', '.join(sorted(extra))}")
    mixers = ("attention", "compressed_attention", "mamba2", "gated_deltanet")
    return LayerGroup(count=data.get("count", 1), mixer=component_from_dict(data.get("mixer"), mixers),
                      ffn=component_from_dict(data.get("ffn"), ("dense", "moe")), norms=data.get("norms", 2),
                      hyper=data.get("hyper", 0))


# DeepSeek-V4's compressed attention is an Attention (imported last: layers_v4 builds on the classes above)
from llmplan.models.layers_v4 import CompressedAttention  # noqa: E402

_COMPONENTS["compressed_attention"] = CompressedAttention
_NAMES[CompressedAttention] = "compressed_attention"
