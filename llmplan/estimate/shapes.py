"""The weight matrices of a model and how its parameters fall on one GPU under tensor, pipeline and expert parallelism.

Shared by the memory model: LoRA adapters and weight quantization act on the linear layers of the blocks, Adafactor
factors every matrix, and tensor/pipeline/expert parallelism split parameters by where they live. Both walk the
model's layer groups (llmplan.models.layers), so attention kinds, MLA, MoE and recurrent mixers are each exact.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llmplan.errors import LlmplanError
from llmplan.models.layers import Attention, GatedDeltaNet, LayerGroup, Mamba2, MoE, linear
from llmplan.models.layers_v4 import CompressedAttention
from llmplan.models.params import count_params, hyper_head, norm_params
from llmplan.models.spec import ModelSpec

LINEAR_MODULES = ("q", "k", "v", "o", "gate", "up", "down", "in_proj", "out_proj")
# Which LoRA target names a module answers to: MLA's low-rank projections (DeepSeek-V2 eq. 9-14) carry the query
# (q_a, q_b) or both key and value (kv_a, kv_b); Mamba-2 / Gated DeltaNet mixers have in_proj and out_proj.
TARGET_OF = {"q_a": {"q"}, "q_b": {"q"}, "kv_a": {"k", "v"}, "kv_b": {"k", "v"}, "kv": {"k", "v"}, "o_a": {"o"},
             "o_b": {"o"}}  # DeepSeek-V4: kv_proj is K and V at once, o_a / o_b the grouped output projection


@dataclass(frozen=True)
class Matrix:
    d_in: int
    d_out: int
    count: float       # how many of them the whole model holds (scaled for a model given by a bare count)
    name: str = ""     # module: q k v o (MLA q_a q_b kv_a kv_b), gate up down, in_proj out_proj, router, indexer
    kind: str = ""     # attention | recurrent | mlp | expert (routed) | shared (shared expert) | router

    def targeted(self, targets) -> bool:
        return bool(TARGET_OF.get(self.name, {self.name}) & set(targets))


def compressed_mats(m: CompressedAttention, h: int) -> list[tuple[str, int, int]]:
    """DeepseekV4Attention: q_a_proj, q_b_proj, kv_proj, o_a_proj (o_groups blocks of heads x head_dim / o_groups
    -> o_lora_rank, as one matrix of that many weights), o_b_proj; the compressor's kv_proj and gate_proj and the
    CSA indexer's kv_proj, gate_proj, q_b_proj and weights_proj."""
    out = [("q_a", h, m.q_lora_rank), ("q_b", m.q_lora_rank, m.q_dim), ("kv", h, m.head_dim),
           ("o_a", m.q_dim // m.o_groups, m.o_groups * m.o_lora_rank), ("o_b", m.o_groups * m.o_lora_rank, h)]
    if m.compress_ratio:
        width = m.head_dim * (2 if m.sparse else 1)
        out += [("compressor", h, width)] * 2
    if m.sparse:
        out += [("indexer", h, 2 * m.index_head_dim)] * 2 + [("indexer", m.q_lora_rank, m.index_heads *
                                                               m.index_head_dim), ("indexer", h, m.index_heads)]
    return out


def _attention_mats(m: Attention, h: int) -> list[tuple[str, int, int]]:
    if isinstance(m, CompressedAttention):
        return compressed_mats(m, h)
    if m.is_mla:  # transformers DeepseekV3Attention
        q = ([("q_a", h, m.q_lora_rank), ("q_b", m.q_lora_rank, m.q_dim)] if m.q_lora_rank
             else [("q", h, m.q_dim)])
        nope = m.head_dim - m.qk_rope_head_dim
        out = q + [("kv_a", h, m.kv_lora_rank + m.qk_rope_head_dim),
                   ("kv_b", m.kv_lora_rank, m.heads * (nope + m.d_v))]
    else:
        q_width = m.q_dim * (2 if m.output_gate else 1)  # Qwen3-Next: q_proj also yields the output gate
        out = [("q", h, q_width)]
        if not m.kv_shared:  # Gemma 4: KV-shared layers reuse an earlier layer's K and V; K-as-V layers have no v
            out.append(("k", h, m.kv_heads * m.head_dim))
            if not m.k_eq_v:
                out.append(("v", h, m.kv_heads * m.d_v))
    out.append(("o", m.heads * m.d_v, h))
    if m.index_heads:  # DeepSeek-V3.2 lightning indexer: wq_b, wk, weights_proj
        out += [("indexer", m.q_lora_rank or h, m.index_heads * m.index_head_dim),
                ("indexer", h, m.index_head_dim), ("indexer", h, m.index_heads)]
    return out


def _ffn_mats(gated: bool, h: int, f: int) -> list[tuple[str, int, int]]:
    return ([("gate", h, f)] if gated else []) + [("up", h, f), ("down", f, h)]


def group_linears(g: LayerGroup, h: int) -> list[Matrix]:
    """The linear layers of one group of layers (counts: per layer x the group's layers x experts)."""
    out: list[Matrix] = []
    m, f = g.mixer, g.ffn
    if isinstance(m, Attention):
        out += [Matrix(i, o, g.count, n, "attention") for n, i, o in _attention_mats(m, h)]
    elif isinstance(m, Mamba2):  # in_proj -> [z, x, B, C, dt], out_proj
        out += [Matrix(h, 2 * m.inner + 2 * m.groups * m.state + m.heads, g.count, "in_proj", "recurrent"),
                Matrix(m.inner, h, g.count, "out_proj", "recurrent")]
    elif isinstance(m, GatedDeltaNet):  # in_proj_qkvz, in_proj_ba, out_proj
        key, value = m.k_heads * m.k_head_dim, m.v_heads * m.v_head_dim
        out += [Matrix(h, 2 * key + 2 * value, g.count, "in_proj", "recurrent"),
                Matrix(h, 2 * m.v_heads, g.count, "in_proj", "recurrent"),
                Matrix(value, h, g.count, "out_proj", "recurrent")]
    if isinstance(f, MoE):
        width = f.latent or h  # latent MoE: experts between hidden -> latent and latent -> hidden projections
        out += [Matrix(i, o, g.count * f.experts, n, "expert")
                for n, i, o in _ffn_mats(f.gated, width, f.expert_ffn)]
        if f.latent:
            out += [Matrix(h, f.latent, g.count, "latent_proj", "mlp"), Matrix(f.latent, h, g.count, "latent_proj",
                                                                                "mlp")]
        if f.shared_ffn:
            out += [Matrix(i, o, g.count, n, "shared") for n, i, o in _ffn_mats(f.gated, h, f.shared_ffn)]
            if f.shared_gate:
                out.append(Matrix(h, 1, g.count, "router", "router"))
        out.append(Matrix(h, f.experts, g.count, "router", "router"))
    elif f is not None:
        out += [Matrix(i, o, g.count, n, "mlp") for n, i, o in _ffn_mats(f.gated, h, f.ffn)]
    return out


def block_linears(spec: ModelSpec) -> tuple[Matrix, ...]:
    """The linear layers of the blocks (equal matrices of several groups merged), by module name and kind.

    Counts cover every block of every stack (cross-attention adds a second q/k/v/o per decoder layer). For a model
    known only by its parameter count, counts are scaled so that the blocks hold the count's share of parameters.
    """
    if spec.arch == "encoder-decoder":
        h, f = spec.hidden, spec.ffn
        n_attn = spec.total_layers + spec.layers
        n_mlp = spec.total_layers * spec.experts
        mats = [Matrix(h, spec.q_dim, n_attn, "q", "attention"), Matrix(h, spec.kv_dim, n_attn, "k", "attention"),
                Matrix(h, spec.kv_dim, n_attn, "v", "attention"), Matrix(spec.q_dim, h, n_attn, "o", "attention")]
        kind = "expert" if spec.is_moe else "mlp"
        mats += [Matrix(i, o, n_mlp, n, kind) for n, i, o in _ffn_mats(spec.mlp == "gated", h, f)]
        if spec.is_moe:
            mats.append(Matrix(h, spec.experts, spec.total_layers, "router", "router"))
    else:
        mats = [m for g in spec.layer_groups for m in group_linears(g, spec.hidden)]
    merged: dict[tuple, float] = {}
    for m in mats:
        key = (m.d_in, m.d_out, m.name, m.kind)
        merged[key] = merged.get(key, 0.0) + m.count
    scale = body_scale(spec)
    return tuple(Matrix(i, o, c * scale, n, k) for (i, o, n, k), c in merged.items())


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
    """Parameters one GPU holds, for the first and for the last pipeline stage (the same stage when pp = 1), and
    for every stage with the share of routed-expert parameters (sharded by expert parallelism)."""

    first: float
    last: float
    largest_layer: float  # one block's parameters on one GPU (what ZeRO-3/FSDP gathers at a time)
    stages: tuple[float, ...] = ()        # every stage, first to last
    expert_stages: tuple[float, ...] = ()  # of which routed experts, per stage

    @property
    def most(self) -> float:
        return max(self.stages) if self.stages else max(self.first, self.last)


def kv_heads_on_gpu(kv_heads: int, tp: int) -> int:
    """Key/value heads on one GPU: split over tp, or one replicated head each when there are fewer than GPUs."""
    return max(kv_heads // tp, 1) if kv_heads >= tp else 1


def layer_params_on_gpu(g: LayerGroup, h: int, norm: int, tp: int = 1, ep: int = 1) -> tuple[float, float]:
    """(non-expert, routed-expert) parameters of one layer of group `g` on one GPU.

    Megatron-style tensor parallelism (Shoeybi et al. 2019) splits the heads of the attention projections and the
    inner width of the MLP and of each expert (expert tensor parallelism = tp); key/value heads are replicated when
    fewer than tp (vLLM). MLA's down projections q_a and kv_a and their norms are replicated, their up projections
    and the output split by heads (vLLM DeepseekV2MLAAttention: ReplicatedLinear, ColumnParallel, RowParallel).
    The router and the norms are whole on every GPU. Expert parallelism puts experts / ep routed experts on each
    GPU (Lepikhin et al. 2020, GShard; Megatron-Core's expert_model_parallel_size).
    """
    dense = expert = 0.0
    m, f = g.mixer, g.ffn
    if isinstance(m, CompressedAttention):
        # vLLM DeepseekV4 attention: q_a, kv and the compressor / indexer replicated; q_b and the sinks split by
        # heads, o_a by output groups (o_groups / tp per GPU), o_b row-parallel
        q, d = m.q_lora_rank, m.head_dim
        split = q * m.q_dim + m.q_dim * m.o_lora_rank + m.o_groups * m.o_lora_rank * h + m.heads
        dense += h * q + q + h * d + d + m.compressor_params(h) + split / tp
    elif isinstance(m, Attention):
        if m.is_mla:
            if m.q_lora_rank:
                dense += linear(h, m.q_lora_rank, m.qkv_bias) + m.q_lora_rank + m.q_lora_rank * m.q_dim / tp
            else:
                dense += h * m.q_dim / tp
            nope = m.head_dim - m.qk_rope_head_dim
            dense += (linear(h, m.kv_lora_rank + m.qk_rope_head_dim, m.qkv_bias) + m.kv_lora_rank
                      + m.kv_lora_rank * m.heads * (nope + m.d_v) / tp)
            kv_share = 1.0
        else:
            kv_g = kv_heads_on_gpu(m.kv_heads, tp)
            q_width = m.q_dim * (2 if m.output_gate else 1)
            kv_width = 0 if m.kv_shared else kv_g * (m.head_dim + (0 if m.k_eq_v else m.d_v))
            dense += linear(h, q_width, m.qkv_bias) / tp + (linear(h, kv_width, m.qkv_bias) if kv_width else 0)
            kv_share = kv_g / m.kv_heads
        dense += linear(m.heads * m.d_v, h, m.out_bias) / tp
        if m.qk_norm == "head":
            dense += m.head_dim * (1 if m.kv_shared else 2)
        elif m.qk_norm == "proj":
            dense += m.q_dim / tp + m.kv_heads * m.head_dim * kv_share
        if m.sinks:
            dense += m.heads / tp
        if m.index_heads:  # the indexer is small: replicated
            dense += (m.q_lora_rank or h) * m.index_heads * m.index_head_dim + h * m.index_head_dim \
                + 2 * m.index_head_dim + h * m.index_heads
    elif m is not None:  # Mamba-2 / Gated DeltaNet: heads split over tp (Megatron-Core MambaMixer)
        dense += m.params(h) / tp
    if isinstance(f, MoE):
        expert += f.experts / ep * f.expert_params(h) / tp
        dense += (f.shared_params(h) + f.latent_params(h)) / tp + f.router_params(h)
    elif f is not None:
        dense += f.params(h) / tp
    return dense + g.norms * norm + g.hyper_params(h), expert  # hyper-connections replicated


def stage_params(spec: ModelSpec, tp: int = 1, pp: int = 1, ep: int = 1) -> StageParams:
    """Per-GPU parameters under tensor parallelism, pipeline stages and expert parallelism.

    Tensor parallel: the blocks' matrices as `layer_params_on_gpu` says, and the vocabulary (embedding rows, output
    head) split over tp; norms and position embeddings are replicated. Pipeline: layers split evenly over pp, in
    order (a stage of DeepSeek-V3 may hold its dense first layers); the first stage holds the embeddings, the last
    the final norm and output head, and both hold the embedding when it is tied (Megatron keeps a copy on the last
    stage to compute the logits).
    """
    b = count_params(spec)
    e = spec.embed_dim or spec.hidden
    token_emb = spec.vocab * e
    other_emb = b.embeddings - token_emb  # positions, token types, projections: replicated
    norm = norm_params(spec)
    norms_final = norm * ((1 if spec.final_norm else 0) * (2 if spec.arch == "encoder-decoder" else 1)
                          + (1 if spec.embedding_norm else 0))
    emb = token_emb / tp + other_emb
    head = b.output_head / tp + b.other + hyper_head(spec)
    if spec.tied_embeddings and pp > 1:
        head += token_emb / tp
    scale = body_scale(spec)
    if spec.arch == "encoder-decoder" or spec.param_count is not None:
        # one average layer (encoder and decoder layers differ; a bare count has only an inferred shape)
        block_norms = max(b.norms - norms_final, 0)
        per_layer = (b.attention + b.mlp) / spec.total_layers / tp + block_norms / spec.total_layers
        layers = [(per_layer, 0.0)] * spec.total_layers
    else:
        layers = []
        for g in spec.layer_groups:
            dense, expert = layer_params_on_gpu(g, spec.hidden, norm, tp, ep)
            layers += [(dense * scale, expert * scale)] * g.count
    n = len(layers) // pp
    stages, experts = [], []
    for k in range(pp):
        chunk = layers[k * n:(k + 1) * n]
        total = sum(d + x for d, x in chunk)
        if k == 0:
            total += emb
        if k == pp - 1:
            total += head + norms_final
        stages.append(total)
        experts.append(sum(x for _, x in chunk))
    largest = max(d + x for d, x in layers)
    return StageParams(first=stages[0], last=stages[-1], largest_layer=largest, stages=tuple(stages),
                       expert_stages=tuple(experts))


def kv_heads_per_gpu(spec: ModelSpec, tp: int) -> int:
    """Key/value heads on one GPU: split over tp, or replicated when there are fewer kv heads than GPUs."""
    return kv_heads_on_gpu(spec.n_kv_heads, tp)


def tp_problem(spec: ModelSpec, tp: int) -> str | None:
    """Why `tp` GPUs cannot split this model's layers (None if they can): every attention layer's heads, its key/value
    heads (divided by tp or tp a multiple of them), recurrent heads, and the inner widths of MLPs and experts."""
    if spec.arch == "encoder-decoder":
        checks = [(spec.heads, "attention heads"), (spec.ffn, "feed-forward size")]
        kv = [spec.n_kv_heads]
    else:
        checks, kv = [], []
        for g in spec.layer_groups:
            m, f = g.mixer, g.ffn
            if isinstance(m, Attention):
                checks.append((m.heads, "attention heads"))
                kv.append(m.kv_heads)
                if isinstance(m, CompressedAttention):
                    checks.append((m.o_groups, "output-projection groups"))
            elif isinstance(m, Mamba2):
                checks.append((m.heads, "Mamba-2 heads"))
            elif isinstance(m, GatedDeltaNet):
                checks += [(m.k_heads, "key heads of the Gated DeltaNet"), (m.v_heads, "value heads of the Gated "
                                                                                     "DeltaNet")]
            if isinstance(f, MoE):
                checks.append((f.expert_ffn, "expert feed-forward size"))
                if f.shared_ffn:
                    checks.append((f.shared_ffn, "shared-expert feed-forward size"))
            elif f is not None:
                checks.append((f.ffn, "feed-forward size"))
    for n, what in checks:
        if n % tp:
            return f"--tp {tp} does not divide the {n} {what} of {spec.name}; use a divisor of {n}"
    for n in kv:
        if n % tp and tp % n:
            return f"--tp {tp} neither divides nor is a multiple of the {n} key/value heads of {spec.name}"
    return None


def tp_options(spec: ModelSpec) -> list[int]:
    """Every tensor-parallel size that splits the model (see tp_problem)."""
    heads = [g.mixer.heads if isinstance(g.mixer, (Attention, Mamba2)) else g.mixer.v_heads
             for g in spec.layer_groups if g.mixer is not None] if spec.arch != "encoder-decoder" else []
    top = max(heads + [spec.heads])
    return [t for t in range(1, top + 1) if tp_problem(spec, t) is None]


def check_ep(spec: ModelSpec, ep: int, dp: int | None = None) -> None:
    """Expert parallelism must divide every MoE layer's routed experts. For training (dp given) the expert-parallel
    group is drawn from the data-parallel ranks, as Megatron-Core forms it: dp must be a multiple of ep."""
    if ep == 1:
        return
    if spec.arch == "encoder-decoder":
        raise LlmplanError("--ep is for decoder- and encoder-only models described by layer groups")
    experts = sorted({g.ffn.experts for g in spec.layer_groups if isinstance(g.ffn, MoE)})
    if not experts:
        raise LlmplanError(f"--ep {ep} shards routed experts, and {spec.name} has none (a dense model); "
                           "leave --ep at 1")
    for n in experts:
        if n % ep:
            raise LlmplanError(f"--ep {ep} does not divide the {n} routed experts of {spec.name}; use a divisor "
                               f"of {n}")
    if dp is not None and dp % ep:
        raise LlmplanError(f"--ep {ep} needs --dp a multiple of it: the expert-parallel group is drawn from the "
                           f"data-parallel ranks (Megatron-Core), got --dp {dp}")


def truncated(spec: ModelSpec, layers: int | None) -> ModelSpec:
    """The spec with only its first `layers` layers (all when None), layer groups cut in order: the first layers of
    DeepSeek-V3 are its dense ones, of Gemma 3 five sliding layers and a full one. A flat spec (one block repeated)
    may also be made deeper."""
    if not layers or layers == spec.layers:
        return spec
    if not spec.groups:
        return spec.with_(layers=layers)
    out, left = [], layers
    for g in spec.groups:
        if left <= 0:
            break
        out.append(replace(g, count=min(g.count, left)))
        left -= g.count
    return spec.with_(groups=tuple(out), layers=layers)


def layer_slice(spec: ModelSpec, start: int, stop: int) -> ModelSpec:
    """The spec with only layers start..stop-1 of its layer groups (one pipeline stage's layers)."""
    out, i = [], 0
    for g in spec.layer_groups:
        lo, hi = max(start, i), min(stop, i + g.count)
        if hi > lo:
            out.append(replace(g, count=hi - lo))
        i += g.count
    return spec.with_(groups=tuple(out), layers=stop - start)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)
