"""Write llmplan/models/hf_defaults.json: the defaults of the transformers config classes that llmplan's readers use.

A config.json may omit keys (a nested `text_config` often does: Gemma 3's omits its head counts); transformers then
takes the default that the model's config class declares. llmplan never imports transformers, so this script copies
those declared defaults once, from the dataclass fields of each config class (transformers 5: `@strict` dataclass
configs), with the class and file they come from. Derived values (`layer_types` built in `__post_init__`, `head_dim`
None meaning hidden / heads) are not copied: the readers derive them as `__post_init__` does, citing it.

    pip install --target /tmp/hfpkgs transformers==5.24.0
    PYTHONPATH=/tmp/hfpkgs python benchmarks/extract_hf_defaults.py
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import tempfile
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "llmplan" / "models" / "hf_defaults.json"
TYPES = ("llama mistral mixtral phi3 qwen2 gemma gemma2 deepseek_v2 deepseek_v3 deepseek_v32 exaone4 gemma3 gemma3_text "
         "glm4_moe glm4_moe_lite glm_moe_dsa gpt_oss granitemoe llama4 llama4_text minimax_m2 mistral3 ministral3 "
         "nemotron_h olmo2 olmo3 qwen3 qwen3_moe qwen3_next qwen3_5 qwen3_5_text qwen3_5_moe qwen3_5_moe_text qwen3_vl "
         "qwen3_vl_text qwen3_vl_moe qwen3_vl_moe_text qwen2_moe phimoe olmoe starcoder2 cohere modernbert deberta-v2 "
         "bart mt5 umt5 gemma4 gemma4_text deepseek_v4 granite cohere2 olmo glm4 smollm3 phi gptj stablelm "
         "dbrx ernie4_5 ernie4_5_moe hunyuan_v1_dense hunyuan_v1_moe seed_oss dots1 arcee apertus exaone bamba llava "
         "qwen2_vl qwen2_5_vl falcon_h1").split()
# nested config classes a reader reads, as "type.key" (DBRX attn_config, ffn_config)
SUBCONFIGS = ("dbrx.attn_config", "dbrx.ffn_config")
# keys that change no shape (ids, dropout, init, numerics, rope scaling, generation)
SKIP = re.compile(r"token_id|dropout|initializer|_eps$|epsilon|^use_cache$|^rope|_theta$|^output_|^return_|"
                  r"torchscript|^chunk_size_feed_forward|^problem_type|^tokenizer|softcapping|scalar|multiplier|"
                  r"_std$|^time_step|_init|router_aux|aux_loss|z_loss|jitter|^pretraining_tp|^dtype$|"
                  r"^is_encoder_decoder$|^decoder_start|^forced_|^architectures$|^id2label$|^label2id$")


def entry(cls) -> dict:
    defaults = {}
    for f in dataclasses.fields(cls):
        if f.name.startswith("_") or SKIP.search(f.name):
            continue
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            continue
        if isinstance(value, (bool, int, float, str, type(None))) or (
                isinstance(value, list) and all(isinstance(v, (bool, int, float, str)) for v in value)):
            defaults[f.name] = value
    out = {"class": cls.__name__,
           "source": "transformers/" + inspect.getsourcefile(cls).split("/transformers/", 1)[1],
           "defaults": defaults}
    if getattr(cls, "attribute_map", None):
        out["attribute_map"] = dict(cls.attribute_map)
    subs = getattr(cls, "sub_configs_defaults", None) or {}
    if "text_config" in subs:
        spec = subs["text_config"]
        out["text_config"] = getattr(spec, "model_type", None) or spec.model_type
    return out


def main() -> int:
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    data = {"transformers_version": transformers.__version__, "produced_by": "benchmarks/extract_hf_defaults.py",
            "types": {}}
    for model_type in TYPES:
        data["types"][model_type] = entry(CONFIG_MAPPING[model_type])
        sub = data["types"][model_type].get("text_config")
        if sub and sub not in data["types"] and sub in CONFIG_MAPPING:
            data["types"][sub] = entry(CONFIG_MAPPING[sub])
    for name in SUBCONFIGS:
        model_type, key = name.split(".")
        data["types"][name] = entry(CONFIG_MAPPING[model_type].sub_configs[key])
    with tempfile.NamedTemporaryFile("w", dir=TARGET.parent, delete=False, suffix=".tmp") as tmp:
        json.dump(data, tmp, indent=1, sort_keys=False)
        tmp.write("\n")
    os.replace(tmp.name, TARGET)
    print(f"wrote {TARGET} ({len(data['types'])} config classes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
