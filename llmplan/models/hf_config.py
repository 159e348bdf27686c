"""Reading a Hugging Face config.json into a ModelSpec (offline; no transformers import)."""

from __future__ import annotations

import json
from pathlib import Path

from llmplan.errors import LlmplanError
from llmplan.models.spec import ModelSpec


def _llama(c: dict, name: str) -> ModelSpec:
    return ModelSpec(
        name=name, arch="decoder", layers=c["num_hidden_layers"], hidden=c["hidden_size"],
        heads=c["num_attention_heads"], kv_heads=c.get("num_key_value_heads") or 0,
        head_dim=c.get("head_dim") or 0, ffn=c["intermediate_size"], vocab=c["vocab_size"],
        context=c.get("max_position_embeddings", 2048), mlp="gated", activation=c.get("hidden_act", "silu"),
        position="rotary", tied_embeddings=c.get("tie_word_embeddings", False), norm="rmsnorm",
        qkv_bias=c.get("attention_bias", False), out_bias=c.get("attention_bias", False),
        mlp_bias=c.get("mlp_bias", False), source="Hugging Face config.json",
    )


READERS = {"llama": _llama}


def spec_from_hf_config(config: dict, name: str = "config.json") -> ModelSpec:
    model_type = config.get("model_type")
    reader = READERS.get(model_type)
    if reader is None:
        raise LlmplanError(
            f"unsupported model_type {model_type!r} in {name}; supported: {', '.join(sorted(READERS))}"
        )
    try:
        return reader(config, name)
    except KeyError as exc:
        raise LlmplanError(f"{name}: config.json for {model_type} lacks the key {exc.args[0]!r}") from None
    except TypeError as exc:
        raise LlmplanError(f"{name}: malformed value in config.json ({exc})") from None


def read_hf_config(path: Path) -> ModelSpec:
    try:
        config = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise LlmplanError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LlmplanError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise LlmplanError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(config, dict):
        raise LlmplanError(f"{path} is not a config.json: expected a JSON object")
    name = config.get("_name_or_path") or Path(path).parent.name or str(path)
    return spec_from_hf_config(config, str(name))
