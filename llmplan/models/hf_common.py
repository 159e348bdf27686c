"""What every config.json reader needs: typed, checked access to the keys, with transformers' defaults.

A config.json is user input. A key that is absent takes the default that transformers' config class for that
model_type declares (copied into hf_defaults.json by benchmarks/extract_hf_defaults.py, with the class and file it
comes from), so that a nested `text_config` that omits its head counts reads as transformers reads it. A key that
is present must have the right type and range: `"tie_word_embeddings": "false"` is not "tied", `0` experts is not
"dense", `max_position_embeddings: 0` is not 2048. Every violation is an LlmplanError naming the key.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from llmplan.errors import LlmplanError
from llmplan.models.layers import Attention

SOURCE = "Hugging Face config.json"
_DEFAULTS_FILE = Path(__file__).with_name("hf_defaults.json")
_MISSING = object()


@lru_cache(maxsize=1)
def hf_defaults() -> dict:
    return json.loads(_DEFAULTS_FILE.read_text(encoding="utf-8"))


def class_defaults(model_type: str) -> tuple[dict, dict, str]:
    """(defaults, attribute_map, 'Class (file)') of transformers' config class for `model_type`."""
    entry = hf_defaults()["types"].get(model_type)
    if entry is None:
        return {}, {}, ""
    return entry["defaults"], entry.get("attribute_map", {}), f"{entry['class']} ({entry['source']})"


class Cfg:
    """One config object (the file, or a nested text_config) with its class defaults and checked getters."""

    def __init__(self, raw: dict, model_type: str, name: str, prefix: str = ""):
        if not isinstance(raw, dict):
            raise LlmplanError(f"{name}: {prefix.rstrip('.') or 'the config'} must be a JSON object")
        self.name, self.model_type, self.prefix = name, model_type, prefix
        self.defaults, self.aliases, self.defaults_source = class_defaults(model_type)
        self.raw = dict(raw)
        for alias, canonical in self.aliases.items():  # transformers' attribute_map: alias -> the field it sets
            if alias in self.raw and canonical not in self.raw:
                self.raw[canonical] = self.raw.pop(alias)
        self.defaulted: list[str] = []  # keys read from the class defaults, for the spec's assumptions

    # raw access ---------------------------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        return self.raw.get(self.aliases.get(key, key)) is not None

    def value(self, key: str, default=_MISSING):
        """The config's value (None when null), else the class default, else `default`, else a missing key.
        A key that the class aliases (attribute_map: gpt-oss num_experts -> num_local_experts) reads its field."""
        key = self.aliases.get(key, key)
        if key in self.raw:
            return self.raw[key]
        if key in self.defaults:
            self.defaulted.append(key)
            return self.defaults[key]
        if default is _MISSING:
            raise LlmplanError(f"{self.name}: config.json for {self.model_type} lacks the key {self.key(key)!r}")
        return default

    def key(self, key: str) -> str:
        return self.prefix + key

    def bad(self, key: str, what: str, value) -> LlmplanError:
        return LlmplanError(f"{self.name}: {self.key(key)} must be {what}, got {value!r}")

    # typed getters ------------------------------------------------------------------------------------------
    def int(self, key: str, default=_MISSING, minimum: int = 1, null=_MISSING) -> int:
        """An integer >= minimum. `null`: what a JSON null (or an absent key without a class default) means."""
        v = self.value(key, None if null is not _MISSING else default)
        if v is None:
            if null is not _MISSING:
                return null
            if default is not _MISSING:
                return default
            raise LlmplanError(f"{self.name}: config.json for {self.model_type} lacks the key {self.key(key)!r}")
        if not isinstance(v, int) or isinstance(v, bool):
            raise self.bad(key, "an integer", v)
        if v < minimum:
            raise self.bad(key, f"an integer of at least {minimum}", v)
        if v > 10**15:
            raise self.bad(key, "a plausible size (at most 1e15)", v)
        return v

    def bool(self, key: str, default=_MISSING) -> bool:
        v = self.value(key, default)
        if v is None and default is not _MISSING:
            return default
        if not isinstance(v, bool):
            raise self.bad(key, "true or false", v)
        return v

    def str(self, key: str, default=_MISSING) -> str:
        v = self.value(key, default)
        if v is None and default is not _MISSING:
            return default
        if not isinstance(v, str):
            raise self.bad(key, "a string", v)
        return v

    def int_list(self, key: str, default=_MISSING) -> list[int]:
        v = self.value(key, default)
        if v is None:
            return [] if default is _MISSING else default
        if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            raise self.bad(key, "a list of integers", v)
        return v

    def str_list(self, key: str, length: int | None = None) -> list[str] | None:
        """A list of strings (layer_types), None when absent; `length`: the number of layers it must have."""
        v = self.value(key, None)
        if v is None:
            return None
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.bad(key, "a list of strings", v)
        if length is not None and len(v) != length:
            raise LlmplanError(f"{self.name}: {self.key(key)} lists {len(v)} layers, but the model has {length} "
                               f"(num_hidden_layers)")
        return v

    def nested(self, key: str, model_type: str) -> "Cfg":
        raw = self.value(key, None)
        if raw is None:
            raw = {}
        return Cfg(raw, model_type, self.name, prefix=f"{self.prefix}{key}.")


# Keys every reader trusts: checked once for the whole file (and its text_config) before any reader runs ---------
BOOL_KEYS = ("tie_word_embeddings", "attention_bias", "mlp_bias", "use_bias", "use_sliding_window", "use_qk_norm",
             "bias", "multi_query", "parallel_attn", "new_decoder_architecture", "alibi", "use_parallel_residual",
             "enable_bias", "do_layer_norm_before", "use_conv_bias", "lm_head_bias", "qkv_bias",
             "position_biased_input", "relative_attention", "share_att_key", "scale_embedding", "norm_bias")
# Layer counts of published models stay below a few hundred (PaLM 540B: 118, Llama 3.1 405B: 126); 100,000 leaves
# room for any real stack while refusing counts that only exhaust memory when each layer is described.
MAX_LAYERS = 100_000
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "num_decoder_layers", "encoder_layers", "decoder_layers")
POSITIVE_INT_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                     "intermediate_size", "max_position_embeddings", "n_positions", "n_embd", "n_layer", "n_head",
                     "n_inner", "d_model", "d_ff", "d_kv", "num_layers", "num_decoder_layers", "num_heads",
                     "num_experts", "num_local_experts", "n_routed_experts", "num_experts_per_tok",
                     "moe_intermediate_size", "head_dim", "ffn_dim", "seq_length", "kv_lora_rank", "qk_rope_head_dim",
                     "qk_nope_head_dim", "v_head_dim", "encoder_layers", "decoder_layers", "encoder_ffn_dim",
                     "decoder_ffn_dim", "encoder_attention_heads", "decoder_attention_heads", "ffn_hidden_size",
                     "num_kv_heads", "n_head_kv", "intermediate_size_mlp", "word_embed_proj_dim", "n_embed")


# keys some configs give as one value per layer (Hunyuan-A13B's moe_intermediate_size, which transformers does not read)
PER_LAYER_LIST_KEYS = ("moe_intermediate_size",)


def check_common_keys(raw: dict, name: str, prefix: str = "") -> None:
    """Wrong types and ranges of the common shape keys, in any model type: an error naming the key."""
    for key in BOOL_KEYS:
        v = raw.get(key)
        if v is not None and not isinstance(v, bool):
            raise LlmplanError(f"{name}: {prefix}{key} must be true or false, got {v!r}")
    for key in POSITIVE_INT_KEYS:
        v = raw.get(key)
        if v is None:
            continue
        if key in PER_LAYER_LIST_KEYS and isinstance(v, list) and v:  # each entry checked; the reader decides
            for x in v:
                if not isinstance(x, int) or isinstance(x, bool) or not 1 <= x <= 10**15:
                    raise LlmplanError(f"{name}: {prefix}{key} must hold integers from 1 to 1e15, got {x!r}")
            continue
        if not isinstance(v, int) or isinstance(v, bool):
            raise LlmplanError(f"{name}: {prefix}{key} must be an integer, got {v!r}")
        if not 1 <= v <= 10**15:
            shown = f"about 1e{int(v.bit_length() * 0.30103)}" if v > 10**15 else repr(v)
            raise LlmplanError(f"{name}: {prefix}{key} must be an integer from 1 to 1e15, got {shown}")
    for key in LAYER_KEYS:  # the readers describe each layer, so a count must be one a model could have
        v = raw.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v > MAX_LAYERS:
            shown = f"about 1e{int(v.bit_length() * 0.30103)}" if v > 10**15 else f"{v:,}"
            raise LlmplanError(f"{name}: {prefix}{key} must be at most {MAX_LAYERS:,} layers, got {shown}")
    if isinstance(raw.get("text_config"), dict) and not prefix:
        check_common_keys(raw["text_config"], name, "text_config.")


# Shared pieces of the readers -----------------------------------------------------------------------------------
def layer_kinds(c: Cfg, layers: int, accepted: dict[str, str], key: str = "layer_types") -> list[str] | None:
    """`layer_types` mapped through `accepted` (HF name -> our kind), checked for length and names."""
    types = c.str_list(key, layers)
    if types is None:
        return None
    unknown = sorted(set(types) - set(accepted))
    if unknown:
        raise LlmplanError(f"{c.name}: {c.key(key)} holds {', '.join(map(repr, unknown))}; accepted: "
                           f"{', '.join(accepted)}")
    return [accepted[t] for t in types]


def window(c: Cfg, context: int, key: str = "sliding_window") -> int:
    """The sliding window of a model whose sliding layers are in effect: positive, and not beyond the context."""
    w = c.int(key)
    if w > context:
        raise LlmplanError(f"{c.name}: {c.key(key)} ({w:,}) exceeds the context (max_position_embeddings "
                           f"{context:,}): a window larger than the context is not a sliding window")
    return w


def standard_attention(c: Cfg, hidden: int, *, qkv_bias: bool | None = None, out_bias: bool | None = None,
                       **changes) -> Attention:
    """Q, K, V, O of a LLaMA-style attention from the usual keys (head_dim null: hidden / heads)."""
    heads = c.int("num_attention_heads")
    kv = c.int("num_key_value_heads", null=heads)
    if heads % kv:
        raise LlmplanError(f"{c.name}: {c.key('num_key_value_heads')} ({kv}) must divide num_attention_heads ({heads})")
    head_dim = c.int("head_dim", null=0) or _divide(c, hidden, heads)
    bias = c.bool("attention_bias", default=False)
    return Attention(heads=heads, kv_heads=kv, head_dim=head_dim, qkv_bias=bias if qkv_bias is None else qkv_bias,
                     out_bias=bias if out_bias is None else out_bias, **changes)


def _divide(c: Cfg, hidden: int, heads: int) -> int:
    if hidden % heads:
        raise LlmplanError(f"{c.name}: hidden_size {hidden} is not divisible by {heads} heads; give head_dim")
    return hidden // heads


def rope_layers(c: Cfg, n: int) -> list[int]:
    """Which layers apply rotary positions (1) and which none (0): no_rope_layers, else every
    no_rope_layer_interval-th layer without (Llama 4, SmolLM3)."""
    rope = c.int_list("no_rope_layers", default=[])
    if rope:
        if len(rope) != n or set(rope) - {0, 1}:
            raise c.bad("no_rope_layers", f"a list of {n} zeros and ones", rope)
        return rope
    every = c.int("no_rope_layer_interval", default=4)
    return [int((i + 1) % every != 0) for i in range(n)]
