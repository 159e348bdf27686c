"""Reading a Hugging Face config.json into a ModelSpec (offline; transformers is never imported).

One reader per model_type. Each maps the config keys onto the shapes that transformers allocates for that model, so
that count_params(spec) equals the number of parameters transformers instantiates: AutoModelForCausalLM for the
decoders (a tied output head counted once), the text model of a multimodal wrapper (its `text_config`, with the
wrapper's output head), T5ForConditionalGeneration for t5, BertModel / RobertaModel (AutoModel, pooler included) for
bert and roberta. tests/test_models_hf_config.py checks this against counts established with transformers
(benchmarks/establish_hf_counts.py). The readers live in hf_classic (one repeated block), hf_dense and
hf_dense_more, hf_moe and hf_moe_more, hf_hybrid and hf_v4 (per-layer descriptions); hf_common holds the checked key
access and transformers' class defaults.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmplan.errors import LlmplanError
from llmplan.models import hf_classic, hf_dense, hf_dense_more, hf_encoders, hf_hybrid, hf_moe, hf_moe_more, hf_v4
from llmplan.models.hf_common import Cfg, check_common_keys, hf_defaults
from llmplan.models.spec import ModelSpec

SOURCE = "Hugging Face config.json"
MAX_CONFIG_BYTES = 8 << 20  # a config.json is a few kB; refuse to read anything huge (or endless: /dev/zero)

# model_type -> reader(Cfg, name) for the per-layer readers
_CFG_READERS = {
    "llama": hf_dense.llama, "mistral": hf_dense.mistral, "mixtral": None, "phi3": hf_dense.phi3,
    "qwen2": hf_dense.qwen2, "gemma": hf_dense.gemma, "gemma2": hf_dense.gemma2, "gemma3_text": hf_dense.gemma3_text,
    "qwen3": hf_dense.qwen3, "olmo2": hf_dense.olmo2, "olmo3": hf_dense.olmo3, "exaone4": hf_dense.exaone4,
    "starcoder2": hf_dense.starcoder2, "cohere": hf_dense.cohere,
    "qwen2_moe": hf_moe.qwen2_moe, "qwen3_moe": hf_moe.qwen3_moe, "olmoe": hf_moe.olmoe, "phimoe": hf_moe.phimoe,
    "granitemoe": hf_moe.granitemoe, "minimax_m2": hf_moe.minimax_m2, "gpt_oss": hf_moe.gpt_oss,
    "llama4_text": hf_moe.llama4_text, "deepseek_v2": hf_moe.deepseek_v2, "deepseek_v3": hf_moe.deepseek_v3,
    "deepseek_v32": hf_moe.deepseek_v32, "glm4_moe": hf_moe.glm4_moe, "glm4_moe_lite": hf_moe.glm4_moe_lite,
    "glm_moe_dsa": hf_moe.glm_moe_dsa, "kimi_k2": hf_moe.deepseek_v3, "deepseek_v4": hf_v4.deepseek_v4,
    "nemotron_h": hf_hybrid.nemotron_h, "qwen3_next": hf_hybrid.qwen3_next,
    "qwen3_5_text": hf_hybrid.qwen3_5_text, "qwen3_5_moe_text": hf_hybrid.qwen3_5_moe_text,
    "gemma4_text": hf_dense.gemma4_text,
    "granite": hf_dense_more.granite, "cohere2": hf_dense_more.cohere2, "olmo": hf_dense_more.olmo,
    "glm4": hf_dense_more.glm4, "smollm3": hf_dense_more.smollm3, "phi": hf_dense_more.phi,
    "gptj": hf_dense_more.gptj, "stablelm": hf_dense_more.stablelm, "ernie4_5": hf_dense_more.ernie4_5,
    "hunyuan_v1_dense": hf_dense_more.hunyuan_v1_dense, "seed_oss": hf_dense_more.seed_oss,
    "arcee": hf_dense_more.arcee, "apertus": hf_dense_more.apertus, "exaone": hf_dense_more.exaone,
    "dbrx": hf_moe_more.dbrx, "ernie4_5_moe": hf_moe_more.ernie4_5_moe, "hunyuan_v1_moe": hf_moe_more.hunyuan_v1_moe,
    "dots1": hf_moe_more.dots1, "bamba": hf_hybrid.bamba, "falcon_h1": hf_hybrid.falcon_h1,
    "modernbert": hf_encoders.modernbert, "deberta-v2": hf_encoders.deberta_v2, "bart": hf_encoders.bart,
    "mt5": hf_encoders.mt5, "umt5": hf_encoders.umt5,
}


def _mixtral(c: Cfg, name: str) -> ModelSpec:  # modeling_mixtral.py: Mistral attention, routed experts only
    from llmplan.models.hf_build import experts_count
    from llmplan.models.layers import MoE

    h = c.int("hidden_size")
    moe = MoE(experts_count(c, "num_local_experts"), c.int("num_experts_per_tok"), c.int("intermediate_size"))
    return hf_moe._all_moe(c, name, hf_dense.standard_attention(c, h), moe, sliding=True)


_CFG_READERS["mixtral"] = _mixtral

# multimodal wrappers: model_type -> (what it wraps, reader of its text_config by the text model_type)
_TEXT_READERS = {
    "gemma3_text": hf_dense.gemma3_text, "llama4_text": hf_moe.llama4_text, "mistral": hf_dense.mistral,
    "ministral3": hf_dense.mistral, "gemma4_text": hf_dense.gemma4_text,
    # Kimi K2.5 wraps the DeepSeek-V3 architecture (text_config model_type kimi_k2 or deepseek_v3)
    "kimi_k2": lambda c, name, top=None, assumptions=(): hf_moe.deepseek_v3(c, name, top, assumptions),
    "deepseek_v3": lambda c, name, top=None, assumptions=(): hf_moe.deepseek_v3(c, name, top, assumptions),
    "qwen3_vl_text": hf_dense.qwen3, "qwen3_vl_moe_text": hf_moe.qwen3_moe, "qwen3_5_text": hf_hybrid.qwen3_5_text,
    "qwen3_5_moe_text": hf_hybrid.qwen3_5_moe_text,
    # LLaVA wraps any decoder (its text_config names it; LlamaConfig when it does not); Qwen2-VL and Qwen2.5-VL wrap
    # Qwen2's decoder (Qwen2VLTextModel: q/k/v bias, Qwen2's sliding rule)
    "llama": hf_dense.llama, "qwen2": hf_dense.qwen2, "qwen2_vl_text": hf_dense.qwen2,
    "qwen2_5_vl_text": hf_dense.qwen2,
}
# wrappers whose configs before transformers 5 keep the text model's keys at the top level, beside vision_config
# (Qwen2VLConfig.__post_init__ builds the text_config from them)
_FLAT_TEXT = {"qwen2_vl", "qwen2_5_vl"}
# wrappers whose head is tied when either the wrapper or its text_config says so (LlavaConfig.__post_init__,
# Qwen2VLConfig.__post_init__: a pre-v5 save kept tie_word_embeddings in the text_config)
_TIED_EITHER = {"llava", "qwen2_vl", "qwen2_5_vl"}
_WRAPPERS = {"gemma3": "Gemma 3", "gemma4": "Gemma 4", "llama4": "Llama 4", "mistral3": "Mistral 3", "qwen3_vl": "Qwen3-VL",
             "qwen3_vl_moe": "Qwen3-VL-MoE", "qwen3_5": "Qwen3.5", "qwen3_5_moe": "Qwen3.5-MoE",
             "kimi_k25": "Kimi K2.5", "llava": "LLaVA", "qwen2_vl": "Qwen2-VL", "qwen2_5_vl": "Qwen2.5-VL"}

_CLASSIC = {
    "gpt2": hf_classic._gpt2, "gpt_neox": hf_classic._gpt_neox, "opt": hf_classic._opt, "bloom": hf_classic._bloom,
    "falcon": hf_classic._falcon, "RefinedWebModel": hf_classic._falcon, "RefinedWeb": hf_classic._falcon,
    "t5": hf_classic._t5, "bert": hf_classic._bert, "roberta": hf_classic._roberta,
}


def _reader(model_type: str):
    if model_type in _CLASSIC:
        return _CLASSIC[model_type]
    if model_type in _WRAPPERS:
        return lambda config, name: _read_wrapper(config, name, model_type)
    defaults_of = _DEFAULTS_OF.get(model_type, model_type)
    return lambda config, name: _CFG_READERS[model_type](Cfg(config, defaults_of, name), name)


_DEFAULTS_OF = {"kimi_k2": "deepseek_v3"}  # Kimi K2 ships DeepSeek-V3's architecture under its own model_type


# readers written but not yet checked against a real config counted with transformers: not offered
_UNCHECKED: set[str] = set()
_TEXT_ONLY = {"llama4_text", "qwen3_5_text", "qwen3_5_moe_text"}  # read inside their multimodal wrappers
READERS = {t: _reader(t) for t in [*_CLASSIC, *_CFG_READERS, *_WRAPPERS] if t not in _UNCHECKED | _TEXT_ONLY}


def _read_wrapper(config: dict, name: str, model_type: str) -> ModelSpec:
    """A multimodal wrapper: plan its text model (text_config; keys it omits take the text config class's
    defaults); the vision (and audio) towers and projectors are not counted, as the spec's assumptions say."""
    top = Cfg(config, model_type, name)
    text_raw = config.get("text_config")
    default_type = hf_defaults()["types"].get(model_type, {}).get("text_config")
    flat = text_raw is None and model_type in _FLAT_TEXT
    if flat:  # the text model's keys sit at the top level
        text_raw = {k: v for k, v in config.items() if k not in ("model_type", "vision_config")}
    if not isinstance(text_raw, dict):
        raise LlmplanError(f"{name}: a {model_type} config needs its text_config (an object)")
    text_type = text_raw.get("model_type") or default_type
    reader = _TEXT_READERS.get(text_type) if isinstance(text_type, str) else None
    if reader is None:
        raise LlmplanError(f"{name}: {model_type} text_config of model_type {text_type!r} is not supported; "
                           f"supported: {', '.join(sorted(_TEXT_READERS))}")
    text = Cfg(text_raw, _DEFAULTS_OF.get(text_type, text_type), name, prefix="" if flat else "text_config.")
    where = "the top-level keys" if flat else "text_config"
    note = (f"{_WRAPPERS[model_type]} multimodal wrapper ({model_type}): the text model ({text_type}, from "
            f"{where}) is planned; the vision tower and projector are not counted")
    spec = reader(text, name, top=top, assumptions=(note,))
    if model_type in _TIED_EITHER:
        tied = top.bool("tie_word_embeddings") or (not flat and text.bool("tie_word_embeddings", default=False))
        spec = spec.with_(tied_embeddings=tied)
    return spec


def spec_from_hf_config(config: dict, name: str = "config.json") -> ModelSpec:
    model_type = config.get("model_type")
    reader = READERS.get(model_type) if isinstance(model_type, str) else None
    if reader is None:
        found = "no model_type" if model_type is None else f"unsupported model_type {model_type!r}"
        raise LlmplanError(f"{found} in {name}; supported: {', '.join(sorted(READERS, key=str.lower))}")
    check_common_keys(config, name)
    try:
        return reader(config, name)
    except KeyError as exc:
        raise LlmplanError(f"{name}: config.json for {model_type} lacks the key {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise LlmplanError(f"{name}: malformed value in config.json for {model_type} ({exc})") from None


def read_hf_config(path: Path) -> ModelSpec:
    path = Path(path)
    try:
        if not path.is_file():
            raise LlmplanError(f"no such file: {path}" if not path.exists() else f"{path} is not a regular file")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise LlmplanError(f"{path} is over {MAX_CONFIG_BYTES >> 20} MiB: not a config.json")
        config = json.loads(path.read_text())
    except OSError as exc:
        raise LlmplanError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise LlmplanError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise LlmplanError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except ValueError as exc:  # an integer of more digits than Python converts (sys.int_info.str_digits_check)
        raise LlmplanError(f"{path} is not a usable config.json: {exc}") from None
    except RecursionError:
        raise LlmplanError(f"{path} nests too deeply to be a config.json") from None
    if not isinstance(config, dict):
        raise LlmplanError(f"{path} is not a config.json: expected a JSON object")
    name = config.get("_name_or_path") or path.parent.name or str(path)
    return spec_from_hf_config(config, str(name))
