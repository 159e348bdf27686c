"""ModelSpec: one description of decoder-only, encoder-only and encoder-decoder transformers.

Every field is a shape or a structural choice that changes the exact parameter count, the FLOPs or the memory. The
spec is validated on construction, so estimators never see an impossible shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from llmplan.errors import LlmplanError

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
    embed_dim: int = 0             # token-embedding width when it differs from hidden (OPT-350m projects in/out)
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
                     "relative_buckets", "embed_dim", "norms_per_layer"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise bad(f"{name} must be a non-negative integer, got {value!r}")
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

    def with_(self, **changes) -> "ModelSpec":
        return replace(self, **changes)

    def shape_dict(self) -> dict:
        """The spec as plain data (JSON-ready), without provenance fields."""
        skip = {"source", "published_params", "param_count", "assumptions", "name"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


SPEC_FIELDS = {f.name for f in fields(ModelSpec)}
