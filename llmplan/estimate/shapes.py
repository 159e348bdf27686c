"""The weight matrices of a model and how its parameters fall on one GPU under tensor and pipeline parallelism.

Shared by the memory model: LoRA adapters and weight quantization act on the linear layers of the transformer
blocks, Adafactor factors every matrix, and tensor/pipeline parallelism split parameters by where they live.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.models.params import count_params, norm_params
from llmplan.models.spec import ModelSpec

LINEAR_MODULES = ("q", "k", "v", "o", "gate", "up", "down")


@dataclass(frozen=True)
class Matrix:
    d_in: int
    d_out: int
    count: float  # how many of them the whole model holds (scaled for a model given by a bare count)


def block_linears(spec: ModelSpec) -> dict[str, Matrix]:
    """The linear layers of the transformer blocks by module name (q, k, v, o, gate, up, down, router).

    Counts cover every block of every stack (cross-attention adds a second q/k/v/o per decoder layer). For a model
    known only by its parameter count, counts are scaled so that the blocks hold the count's share of parameters.
    """
    h, f = spec.hidden, spec.ffn
    n_attn = spec.total_layers + (spec.layers if spec.arch == "encoder-decoder" else 0)
    n_mlp = spec.total_layers * spec.experts
    out = {
        "q": Matrix(h, spec.q_dim, n_attn),
        "k": Matrix(h, spec.kv_dim, n_attn),
        "v": Matrix(h, spec.kv_dim, n_attn),
        "o": Matrix(spec.q_dim, h, n_attn),
        "up": Matrix(h, f, n_mlp),
        "down": Matrix(f, h, n_mlp),
    }
    if spec.mlp == "gated":
        out["gate"] = Matrix(h, f, n_mlp)
    if spec.is_moe:
        out["router"] = Matrix(h, spec.experts, spec.total_layers)
    scale = body_scale(spec)
    if scale != 1.0:
        out = {k: Matrix(m.d_in, m.d_out, m.count * scale) for k, m in out.items()}
    return out


def body_scale(spec: ModelSpec) -> float:
    """1 for a model with a shape; for a bare count, stated body parameters / the inferred shape's body."""
    if spec.param_count is None:
        return 1.0
    shape, stated = count_params(spec.with_(param_count=None)), count_params(spec)
    body = shape.attention + shape.mlp + shape.norms
    return (stated.attention + stated.mlp + stated.norms) / body if body else 1.0


def matrix_params(m: Matrix) -> float:
    return m.d_in * m.d_out * m.count


@dataclass(frozen=True)
class StageParams:
    """Parameters one GPU holds, for the first and for the last pipeline stage (the same stage when pp = 1)."""

    first: float
    last: float
    largest_layer: float  # one block's parameters on one GPU (what ZeRO-3/FSDP gathers at a time)

    @property
    def most(self) -> float:
        return max(self.first, self.last)


def stage_params(spec: ModelSpec, tp: int = 1, pp: int = 1) -> StageParams:
    """Per-GPU parameters under Megatron-style tensor parallelism (Shoeybi et al. 2019) and pipeline stages.

    Tensor parallel: attention and MLP matrices and the vocabulary (embedding rows, output head) split over tp;
    norms and position embeddings are replicated. Pipeline: layers split evenly over pp; the first stage holds the
    embeddings, the last the final norm and output head, and both hold the embedding when it is tied (Megatron keeps
    a copy on the last stage to compute the logits).
    """
    b = count_params(spec)
    e = spec.embed_dim or spec.hidden
    token_emb = spec.vocab * e
    other_emb = b.embeddings - token_emb  # positions, token types, projections: replicated
    norms_final = norm_params(spec) * ((1 if spec.final_norm else 0) * (2 if spec.arch == "encoder-decoder" else 1)
                                       + (1 if spec.embedding_norm else 0))
    block_norms = max(b.norms - norms_final, 0)
    layers = spec.total_layers
    per_layer_split = (b.attention + b.mlp) / layers / tp
    per_layer_norms = block_norms / layers
    per_layer = per_layer_split + per_layer_norms
    stage_layers = layers / pp
    emb = token_emb / tp + other_emb
    head = b.output_head / tp + b.other
    if spec.tied_embeddings and pp > 1:
        head += token_emb / tp
    if pp == 1:
        total = emb + stage_layers * per_layer + head + norms_final
        return StageParams(first=total, last=total, largest_layer=per_layer)
    first = emb + stage_layers * per_layer
    last = stage_layers * per_layer + head + norms_final
    return StageParams(first=first, last=last, largest_layer=per_layer)


def kv_heads_per_gpu(spec: ModelSpec, tp: int) -> int:
    """Key/value heads on one GPU: split over tp, or replicated when there are fewer kv heads than GPUs."""
    return max(spec.n_kv_heads // tp, 1) if spec.n_kv_heads >= tp else 1


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)
