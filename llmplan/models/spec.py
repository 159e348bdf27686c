"""ModelSpec: one description of decoder-only, encoder-only and encoder-decoder transformers.

Every field is a shape or a structural choice that changes the exact parameter count, the FLOPs or the memory. The
spec is validated on construction, so estimators never see an impossible shape.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from llmplan.errors import LlmplanError
from llmplan.models.layers import Attention, Dense, LayerGroup, MoE, group_dict
from llmplan.models.weight_format import WeightFormat

ARCHS = ("decoder", "encoder", "encoder-decoder")
MLP_KINDS = ("standard", "gated")  # standard: up + down (GELU/ReLU); gated: gate + up + down (SwiGLU/GeGLU)
POSITIONS = ("learned", "rotary", "relative", "alibi", "sinusoidal", "none")
NORMS = ("layernorm", "rmsnorm")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    arch: str                      # "decoder" | "encoder" | "encoder-decoder"
    layers: int                    # decoder layers (encoder layers for an encoder-only model)
    hidden: int                    # d_model
    heads: int                     # query heads
    ffn: int                       # feed-forward inner size (per expert for MoE)
    vocab: int
    context: int = 2048            # maximum sequence length
    kv_heads: int = 0              # key/value heads; 0 means = heads (multi-head). 1 is multi-query.
    head_dim: int = 0              # 0 means hidden // heads
    encoder_layers: int = 0        # encoder-decoder only: the encoder stack (`layers` is the decoder stack)
    mlp: str = "standard"          # see MLP_KINDS
    activation: str = "gelu"       # informational: gelu, relu, silu, ...
    position: str = "learned"      # see POSITIONS
    tied_embeddings: bool = True   # output head shares the input embedding matrix
    qkv_bias: bool = False         # bias on the query/key/value projections
    out_bias: bool = False         # bias on the attention output projection
    mlp_bias: bool = False         # bias on the feed-forward matrices
    norm: str = "layernorm"        # layernorm has weight and bias (2h), rmsnorm weight only (h)
    norm_bias: bool | None = None  # None: layernorm -> True, rmsnorm -> False
    norms_per_layer: int = 2       # per self-attention + MLP layer; cross-attention layers add one
    final_norm: bool = True        # a norm after the last layer of each stack
    experts: int = 1               # mixture-of-experts: experts per MoE layer (1 = dense)
    experts_per_token: int = 1     # experts each token is routed to
    parallel_layers: bool = False  # attention and MLP read the same input (GPT-J, PaLM, Falcon)
    position_offset: int = 0       # extra learned position rows (OPT keeps 2)
    type_vocab: int = 0            # token-type embeddings (BERT: 2)
    embedding_norm: bool = False   # a norm right after the embeddings (BERT, BLOOM)
    pooler: bool = False           # BERT's pooler: one h x h dense layer with bias
    lm_head_bias: bool = False
    relative_buckets: int = 0      # T5 relative position bias: buckets x heads, once per stack
    relative_per_layer: bool = False  # UMT5: that bias in every layer, not only the first of each stack
    relative_embeddings: int = 0   # DeBERTa-v2/v3: rows of the shared relative-position embedding (rel_embeddings)
    relative_embedding_norm: bool = False  # DeBERTa's LayerNorm on them (norm_rel_ebd "layer_norm")
    per_layer_input: int = 0       # Gemma 4 per-layer embeddings: width per layer (hidden_size_per_layer_input)
    per_layer_vocab: int = 0       # ... and their vocabulary (vocab_size_per_layer_input)
    embed_dim: int = 0             # token-embedding width when it differs from hidden (OPT-350m projects in/out)
    # Layers that differ (llmplan.models.layers): the stack as run-length groups. Empty: `layers` copies of the one
    # block the flat fields above describe. When given, the flat fields hold the first attention layer's shape and
    # the first MoE's experts, for display; every estimator walks `layer_groups`.
    groups: tuple[LayerGroup, ...] = ()
    mtp_layers: int = 0            # multi-token-prediction modules (DeepSeek-V3), counted apart: HF does not build them
    mtp_layer: LayerGroup | None = None  # DeepSeek-V4: the MTP modules' own layer make; embedding and head shared
    weight_format: WeightFormat | None = None  # how the published checkpoint stores its weights
    source: str = ""               # where the shape comes from
    published_params: float | None = None  # the count the source states, for comparison
    param_count: int | None = None  # set only for a model given as a bare count: the count the user stated
    assumptions: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        def bad(msg: str) -> LlmplanError:
            return LlmplanError(f"model {self.name!r}: {msg}")

        if self.arch not in ARCHS:
            raise bad(f"unsupported architecture {self.arch!r}; accepted: {', '.join(ARCHS)}")
        if self.mlp not in MLP_KINDS:
            raise bad(f"unknown MLP kind {self.mlp!r}; accepted: {', '.join(MLP_KINDS)}")
        if self.position not in POSITIONS:
            raise bad(f"unknown position embedding {self.position!r}; accepted: {', '.join(POSITIONS)}")
        if self.norm not in NORMS:
            raise bad(f"unknown norm {self.norm!r}; accepted: {', '.join(NORMS)}")
        for name in ("layers", "hidden", "heads", "ffn", "vocab", "context", "experts", "experts_per_token"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(f"{name} must be a positive integer, got {value!r}")
        for name in ("kv_heads", "head_dim", "encoder_layers", "position_offset", "type_vocab",
                     "relative_buckets", "embed_dim", "norms_per_layer", "relative_embeddings", "per_layer_input",
                     "per_layer_vocab"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise bad(f"{name} must be a non-negative integer, got {value!r}")
        for f in fields(self):  # a size beyond any real model (and beyond what float arithmetic downstream holds)
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and value > 10**15:
                raise bad(f"{f.name} must be at most 1e15, got about 1e{int(value.bit_length() * 0.30103)}")
        if self.head_dim == 0 and self.hidden % self.heads:
            raise bad(f"hidden size {self.hidden} is not divisible by {self.heads} heads; give head_dim")
        if self.heads % self.n_kv_heads:
            raise bad(f"{self.heads} query heads cannot be grouped over {self.n_kv_heads} key/value heads")
        if self.experts_per_token > self.experts:
            raise bad(f"experts_per_token ({self.experts_per_token}) exceeds experts ({self.experts})")
        if self.arch == "encoder-decoder" and self.encoder_layers < 1:
            raise bad("an encoder-decoder model needs encoder_layers >= 1")
        if self.arch != "encoder-decoder" and self.encoder_layers:
            raise bad("encoder_layers is only for encoder-decoder models; use layers")
        if not isinstance(self.mtp_layers, int) or isinstance(self.mtp_layers, bool) or self.mtp_layers < 0:
            raise bad(f"mtp_layers must be a non-negative integer, got {self.mtp_layers!r}")
        if self.groups:
            if self.arch == "encoder-decoder":
                raise bad("layer groups describe one stack; encoder-decoder models use the flat fields")
            if sum(g.count for g in self.groups) != self.layers:
                raise bad(f"the layer groups hold {sum(g.count for g in self.groups)} layers, not {self.layers}")

    # Derived shape --------------------------------------------------------------------------------------------
    @property
    def n_kv_heads(self) -> int:
        return self.kv_heads or self.heads

    @property
    def d_head(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def q_dim(self) -> int:
        """Width of the concatenated query heads (equals hidden unless head_dim is set apart)."""
        return self.heads * self.d_head

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.d_head

    @property
    def has_norm_bias(self) -> bool:
        return self.norm == "layernorm" if self.norm_bias is None else self.norm_bias

    @property
    def is_moe(self) -> bool:
        return self.experts > 1

    @property
    def total_layers(self) -> int:
        return self.layers + self.encoder_layers

    @property
    def attention_kind(self) -> str:
        if self.n_kv_heads == self.heads:
            return "multi-head"
        return "multi-query" if self.n_kv_heads == 1 else f"grouped-query ({self.n_kv_heads} kv heads)"

    @property
    def layer_groups(self) -> tuple[LayerGroup, ...]:
        """The stack as groups of equal layers (for encoder-decoder models: one decoder layer's make)."""
        if self.groups:
            return self.groups
        attention = Attention(heads=self.heads, kv_heads=self.n_kv_heads, head_dim=self.d_head,
                              rope=self.position == "rotary", qkv_bias=self.qkv_bias, out_bias=self.out_bias)
        gated = self.mlp == "gated"
        ffn = (MoE(self.experts, self.experts_per_token, self.ffn, gated=gated, bias=self.mlp_bias)
               if self.is_moe else Dense(self.ffn, gated=gated, bias=self.mlp_bias))
        return (LayerGroup(self.layers, attention, ffn, self.norms_per_layer),)

    @classmethod
    def from_groups(cls, *, groups: tuple[LayerGroup, ...], **fields_) -> "ModelSpec":
        """A spec whose flat shape fields are taken from its groups (first attention layer, first MoE or MLP)."""
        attn = next((g.attention for g in groups if g.attention), None)
        moe = next((g.ffn for g in groups if isinstance(g.ffn, MoE)), None)
        dense = next((g.ffn for g in groups if isinstance(g.ffn, Dense)), None)
        ffn = moe or dense
        flat = dict(layers=sum(g.count for g in groups),
                    heads=attn.heads if attn else 1, kv_heads=attn.kv_heads if attn else 0,
                    head_dim=attn.head_dim if attn else fields_["hidden"],
                    ffn=(moe.expert_ffn if moe else dense.ffn) if ffn else 1,
                    mlp="gated" if ffn is None or ffn.gated else "standard",
                    experts=moe.experts if moe else 1, experts_per_token=moe.top_k if moe else 1)
        if attn:
            flat.update(qkv_bias=attn.qkv_bias, out_bias=attn.out_bias)
        return cls(groups=tuple(groups), **{**flat, **fields_})

    def with_(self, **changes) -> "ModelSpec":
        return replace(self, **changes)

    def shape_dict(self) -> dict:
        """The spec as plain data (JSON-ready), without provenance fields."""
        skip = {"source", "published_params", "param_count", "assumptions", "name", "groups", "weight_format",
                "mtp_layer"}
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        if self.groups:
            out["groups"] = [group_dict(g) for g in self.groups]
        if self.mtp_layer is not None:
            out["mtp_layer"] = group_dict(self.mtp_layer)
        if self.weight_format:
            out["weight_format"] = asdict(self.weight_format)
        return out


SPEC_FIELDS = {f.name for f in fields(ModelSpec)}
