"""Short words for a model's layer make-up ("3 dense MLA + 58 MoE MLA"), for tables and JSON. Pure: no printing."""

from __future__ import annotations

from llmplan.models.layers import Attention, GatedDeltaNet, LayerGroup, Mamba2, MoE
from llmplan.models.layers_v4 import CompressedAttention
from llmplan.models.spec import ModelSpec


def mixer_words(g: LayerGroup) -> str:
    """The token mixer of a group in a few words: 'MLA', 'sliding GQA 4096', 'Mamba-2', 'Gated DeltaNet'."""
    m = g.mixer
    if m is None:
        return "no mixer"
    if isinstance(m, Mamba2):
        return "Mamba-2"
    if isinstance(m, GatedDeltaNet):
        return "Gated DeltaNet"
    if isinstance(m, CompressedAttention):  # DeepSeek-V4: 'sliding MQA 128 + CSA 1/4', '... + HCA 1/128'
        extra = f" + {m.kind_name.upper()} 1/{m.compress_ratio}" if m.compress_ratio else ""
        return f"sliding MQA {m.window:,}{extra}"
    base = "MLA" if m.is_mla else ("MHA" if m.kv_heads == m.heads else "MQA" if m.kv_heads == 1 else "GQA")
    if m.index_heads:
        base += " + indexer"
    if m.kind == "sliding":
        return f"sliding {base} {m.window:,}"
    if m.kind == "chunked":
        return f"chunked {base} {m.window:,}"
    return base if m.rope else f"{base} NoPE"


def ffn_words(g: LayerGroup) -> str:
    f = g.ffn
    if f is None:
        return ""
    return "MoE" if isinstance(f, MoE) else "dense"


def group_words(g: LayerGroup) -> str:
    """'58 MoE MLA', '21 dense sliding GQA 4096', '27 Mamba-2'."""
    if g.mixer is None:
        return f"{g.count} {'MLP' if ffn_words(g) == 'dense' else 'MoE'}-only"
    return " ".join(p for p in (str(g.count), ffn_words(g), mixer_words(g)) if p)


def layer_summary(spec: ModelSpec, limit: int = 4) -> str:
    """The stack merged by kind (not by position): '3 dense MLA + 58 MoE MLA'; gemma-like alternations merge into
    '21 dense sliding GQA 4,096 + 21 dense GQA'."""
    counts: dict[str, int] = {}
    for g in spec.layer_groups:
        key = group_words(LayerGroup(1, g.mixer, g.ffn, g.norms)).split(" ", 1)[1]
        counts[key] = counts.get(key, 0) + g.count
    items = [f"{n} {k}" for k, n in counts.items()]
    if len(items) > limit:
        items = items[:limit] + [f"{len(items) - limit} more kinds"]
    return " + ".join(items)


def layer_kinds(spec: ModelSpec) -> list[dict]:
    """One row per distinct kind of layer, in order of first appearance: its count and its components' main sizes."""
    rows: dict[tuple, dict] = {}
    for g in spec.layer_groups:
        key = (g.mixer, g.ffn, g.norms)
        if key in rows:
            rows[key]["count"] += g.count
            continue
        rows[key] = {"count": g.count, "mixer": mixer_words(g), "attention": _attention_detail(g.mixer),
                     "ffn": _ffn_detail(g.ffn)}
    return list(rows.values())


def _attention_detail(m) -> str:
    if isinstance(m, Attention):
        if m.is_mla:
            q = f"q rank {m.q_lora_rank}, " if m.q_lora_rank else ""
            return f"{m.heads} heads, {q}latent {m.kv_lora_rank}+{m.qk_rope_head_dim}"
        extra = " sinks" if m.sinks else ""
        if isinstance(m, CompressedAttention) and m.sparse:
            extra += f", top-{m.index_topk}"
        return f"{m.heads}/{m.kv_heads} heads x {m.head_dim}{extra}"
    if isinstance(m, Mamba2):
        return f"{m.heads} heads x {m.head_dim}, state {m.state}"
    if isinstance(m, GatedDeltaNet):
        return f"{m.k_heads}/{m.v_heads} heads x {m.k_head_dim}"
    return "-"


def _ffn_detail(f) -> str:
    if f is None:
        return "-"
    if isinstance(f, MoE):
        shared = f", shared {f.shared_ffn:,}" if f.shared_ffn else ""
        return f"{f.experts} x {f.expert_ffn:,}, top-{f.top_k}{shared}"
    return f"{f.ffn:,}" + ("" if f.gated else " (not gated)")
