"""Finding a model: a preset name, a Hugging Face config.json (file, folder, or hub id in the local cache), or a bare
parameter count with an inferred shape."""

from __future__ import annotations

import json
import math
import os
import re
from functools import lru_cache
from pathlib import Path

from llmplan.errors import LlmplanError
from llmplan.models.layers import group_from_dict
from llmplan.models.spec import SPEC_FIELDS, ModelSpec
from llmplan.models.weight_format import WeightFormat


def _key(name: str) -> str:
    """Loose name key: 'Llama-2-7B', 'llama_2_7b' and 'llama-2-7b' all give 'llama27b'. A decimal point between
    digits is kept (as 'p'), so that 'gpt3-1.3b' and 'gpt3-13b' stay apart."""
    return re.sub(r"[^a-z0-9]", "", re.sub(r"(?<=\d)\.(?=\d)", "p", name.lower()))


_PRESETS_FILE = Path(__file__).with_name("presets.json")  # package data; a plain path reads faster than resources


@lru_cache(maxsize=1)
def _raw_presets() -> list[dict]:
    return json.loads(_PRESETS_FILE.read_text(encoding="utf-8"))["presets"]


@lru_cache(maxsize=1)
def load_presets() -> dict[str, ModelSpec]:
    """All presets by canonical name, in file order."""
    out: dict[str, ModelSpec] = {}
    for entry in _raw_presets():
        spec = dict(entry["spec"])
        unknown = set(spec) - SPEC_FIELDS
        if unknown:  # a data error in the package, not a user error
            raise ValueError(f"preset {entry['name']}: unknown fields {sorted(unknown)}")
        if "groups" in spec:
            spec["groups"] = tuple(group_from_dict(g) for g in spec["groups"])
        if "mtp_layer" in spec:
            spec["mtp_layer"] = group_from_dict(spec["mtp_layer"])
        if "assumptions" in spec:
            spec["assumptions"] = tuple(spec["assumptions"])
        if "weight_format" in spec:
            spec["weight_format"] = WeightFormat(**spec["weight_format"])
        out[entry["name"]] = ModelSpec(name=entry["name"], source=entry["source"],
                                       published_params=entry.get("published_params"), **spec)
    return out


@lru_cache(maxsize=1)
def _preset_keys() -> dict[str, str]:
    keys: dict[str, str] = {}
    for entry in _raw_presets():
        for alias in [entry["name"], *entry.get("aliases", [])]:
            keys[_key(alias)] = entry["name"]
    return keys


def preset_families() -> dict[str, str]:
    """Preset name -> family, for grouping listings."""
    return {e["name"]: e.get("family", "") for e in _raw_presets()}


def get_preset(name: str) -> ModelSpec | None:
    canonical = _preset_keys().get(_key(name))
    return load_presets()[canonical] if canonical else None


def _hf_cache_config(hub_id: str) -> Path | None:
    """config.json of a hub id already in the local Hugging Face cache (no network)."""
    if hub_id.count("/") != 1:
        return None
    roots = []
    if os.environ.get("HF_HUB_CACHE"):
        roots.append(Path(os.environ["HF_HUB_CACHE"]))
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    roots.append(hf_home / "hub")
    folder = "models--" + hub_id.replace("/", "--")
    for root in roots:
        snapshots = sorted((root / folder / "snapshots").glob("*/config.json"),
                           key=lambda p: p.stat().st_mtime, reverse=True)
        if snapshots:
            return snapshots[0]
    return None


def resolve_model(text: str) -> ModelSpec:
    """A preset name, a path to a config.json or a folder holding one, or a hub id in the local cache."""
    text = str(text).strip()
    if not text:
        raise LlmplanError("empty model name: give a preset (see `llmplan models`) or a path to a config.json")
    preset = get_preset(text)
    if preset is not None:
        return preset
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / "config.json"
        if not path.is_file():
            raise LlmplanError(f"no config.json in folder {text!r}")
    elif not path.exists():
        cached = _hf_cache_config(text)
        variant = _variant_of_preset(text) if cached is None else None
        if variant is not None:
            return variant
        if cached is None:
            suggestions = _suggest(text)
            hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
            raise LlmplanError(
                f"unknown model {text!r}: not a preset, a config.json path, or a hub id in the local Hugging Face "
                f"cache.{hint} See `llmplan models` for the presets."
            )
        path = cached
    from llmplan.models.hf_config import read_hf_config

    return read_hf_config(path)


_TUNED_SUFFIXES = ("hf", "instruct", "chat", "it", "base")


def _variant_of_preset(text: str) -> ModelSpec | None:
    """A fine-tuned or re-hosted variant that keeps a preset's shape: 'meta-llama/Llama-2-7b-chat-hf',
    'llama-3-8b-instruct'. Used only when no config.json is at hand, and said in the assumptions."""
    name = text.rsplit("/", 1)[-1]
    parts = re.split(r"[-_]", name)
    dropped = []
    while len(parts) > 1 and parts[-1].lower() in _TUNED_SUFFIXES:
        dropped.append(parts.pop())
    preset = get_preset("-".join(parts)) if (dropped or "/" in text) else None
    if preset is None:
        return None
    note = (f"{text!r} taken as preset {preset.name} (a fine-tuned or re-hosted variant of the same shape); give "
            "its config.json for an exact reading")
    return preset.with_(assumptions=(*preset.assumptions, note))


def _suggest(text: str) -> list[str]:
    import difflib

    keys = _preset_keys()
    close = difflib.get_close_matches(_key(text), list(keys), n=3, cutoff=0.6)
    return sorted({keys[k] for k in close})


def spec_from_params(n_params: float, arch: str = "decoder") -> ModelSpec:
    """A plausible shape for a bare parameter count, keeping the count exactly as stated.

    Rule (documented in docs/methodology.md): head_dim 128 and a depth-to-width ratio of 1 layer per 128 hidden units,
    as in GPT-3 175B (12288 / 96) and LLaMA 7B (4096 / 32). Decoder: LLaMA-style (SwiGLU with ffn = 8h/3 rounded
    up to 256, RoPE, RMSNorm, untied 32,000-token vocabulary). Encoder: BERT-style (GELU ffn = 4h, learned
    positions, 30,522-token vocabulary). Encoder-decoder: T5-style, layers split evenly between the stacks.
    The hidden size is the multiple of 128 whose shape comes closest to the count.
    """
    from llmplan.models.params import count_params

    if arch not in ("decoder", "encoder", "encoder-decoder"):
        raise LlmplanError(f"unsupported architecture {arch!r}; accepted: decoder, encoder, encoder-decoder")
    n = int(round(n_params))
    if n < 1_000_000:
        raise LlmplanError(f"a bare parameter count must be at least 1M to infer a shape, got {n:,}")

    def shape(hidden: int) -> ModelSpec:
        layers = max(1, hidden // 128)
        heads = max(1, hidden // 128)
        if arch == "decoder":
            ffn = 256 * math.ceil(8 * hidden / 3 / 256)
            return ModelSpec(name="", arch=arch, layers=layers, hidden=hidden, heads=heads, ffn=ffn, vocab=32000,
                             context=4096, mlp="gated", activation="silu", position="rotary",
                             tied_embeddings=False, norm="rmsnorm")
        if arch == "encoder":
            return ModelSpec(name="", arch=arch, layers=layers, hidden=hidden, heads=heads, ffn=4 * hidden,
                             vocab=30522, context=512, position="learned", qkv_bias=True, out_bias=True,
                             mlp_bias=True, type_vocab=2, embedding_norm=True, final_norm=False)
        half = max(1, layers // 2)
        return ModelSpec(name="", arch=arch, layers=half, encoder_layers=half, hidden=hidden, heads=heads,
                         ffn=256 * math.ceil(8 * hidden / 3 / 256), vocab=32128, context=512, mlp="gated",
                         activation="gelu", position="relative", relative_buckets=32, tied_embeddings=False,
                         norm="rmsnorm")

    best = min((shape(h) for h in range(128, 65_537, 128)), key=lambda s: abs(count_params(s).total - n))
    b = count_params(best)
    if not 0.5 <= b.total / n <= 2 or b.embeddings + b.output_head + b.other >= n:
        # below the narrowest shape (its embeddings alone outweigh the count) or beyond the widest
        narrow = count_params(shape(128))
        lo = max(narrow.total / 2, narrow.embeddings + narrow.output_head + narrow.other + 1)
        hi = count_params(shape(65_536)).total * 2
        stated = f"{n:,}" if n < 1e15 else f"{n:.3g}"
        raise LlmplanError(f"no {arch} shape of the inference rule comes near {stated} parameters (it covers about "
                           f"{lo:,.0f} to {hi:.2g}); give --model with a shape or a config.json")
    depth = (f"{best.encoder_layers} encoder + {best.layers} decoder layers" if arch == "encoder-decoder"
             else f"{best.layers} layers")
    note = (f"shape inferred from the bare count {n:,}: {depth}, hidden {best.hidden}, "
            f"{best.heads} heads, ffn {best.ffn}, vocab {best.vocab} (rule: head_dim 128, 128 hidden units per "
            f"layer, {'LLaMA' if arch == 'decoder' else 'BERT' if arch == 'encoder' else 'T5'}-style blocks)")
    return best.with_(name=f"{n / 1e9:.4g}B-{arch}", param_count=n, assumptions=(note,),
                      source="inferred from a parameter count")
