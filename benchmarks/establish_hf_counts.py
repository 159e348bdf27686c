"""Establish the parameter counts that Hugging Face transformers instantiates for the configs in tests/data/hf_configs.

Run once, in a throwaway environment that has transformers (llmplan itself never imports it):

    python3 -m venv --system-site-packages /tmp/hfvenv && /tmp/hfvenv/bin/pip install torch==2.13.0 transformers
    /tmp/hfvenv/bin/python benchmarks/establish_hf_counts.py            # print the counts
    /tmp/hfvenv/bin/python benchmarks/establish_hf_counts.py --write    # record them in tests/data/hf_configs/COUNTS.json

COUNTS.json keeps each version's counts under by_version; `--write --primary` makes a version's counts the ones the
tests compare to. The primary version is the last 4.x (4.57.6): transformers 5 forces T5's output head to be tied to
the input embedding (T5Config sets tie_word_embeddings = True whatever the file says), while T5 v1.1 / FLAN-T5
checkpoints hold a separate lm_head; 4.57.6 builds the layout the released weights have. The two versions agree on
every other config here, and tests/test_models_hf_config.py checks that they do.

Each model is built on the meta device (shapes only, no memory, no weights downloaded) with the class a user gets
for that model: AutoModelForCausalLM for decoders (a tied output head is one parameter, counted once), T5 with
T5ForConditionalGeneration, BERT and RoBERTa with AutoModel (BertModel / RobertaModel, pooler included). The count is
sum(p.numel() for p in model.parameters()), which visits shared parameters once. A `quantization_config` is dropped
(the logical, bf16-shaped count). A multimodal wrapper (a config with a `text_config`: Gemma 3, Llama 4, Mistral 3,
Qwen3-VL, Qwen3.5) is built whole with its architecture class, and its text model counted: every parameter outside
the vision and audio towers and the multimodal projector (names under `visual`, `vision_tower`,
`multi_modal_projector`, `audio_tower`, `embed_vision`, `embed_audio`); the whole model's count is kept beside it.
For MoE models the active count follows shared/reference/hf-configs: total minus the routed experts' parameters x
(1 - top_k / experts), embeddings and head included. Configs newer than the 4.x primary version are counted with 5.x
(`--write` adds a config that the primary version lacks with the version that counted it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # configs are local files; nothing is fetched

CONFIGS = Path(__file__).resolve().parents[1] / "tests" / "data" / "hf_configs"
SOURCES = CONFIGS / "SOURCES.json"  # where each config.json was copied from (repository, path, commit)
ENCODERS = {"bert", "roberta", "modernbert", "deberta-v2"}
ENCODER_DECODERS = {"t5": "T5ForConditionalGeneration", "mt5": "MT5ForConditionalGeneration",
                    "umt5": "UMT5ForConditionalGeneration", "bart": "BartForConditionalGeneration"}


def model_class(model_type: str):
    import transformers

    if model_type in ENCODER_DECODERS:
        return getattr(transformers, ENCODER_DECODERS[model_type])
    if model_type in ENCODERS:
        return transformers.AutoModel
    return transformers.AutoModelForCausalLM


TOWERS = re.compile(r"(^|\.)(visual|vision_tower|vision_model|multi_modal_projector|audio_tower|embed_vision|"
                    r"embed_audio|vision_embed)(\.|$)")
# model types that ship remote code for an architecture transformers has: counted as that architecture
REMOTE_CODE_AS = {"kimi_k2": "deepseek_v3"}  # Kimi K2's config names DeepseekV3ForCausalLM as its architecture
# remote-code wrappers around an architecture transformers has: their text_config, counted as that architecture
REMOTE_WRAPPERS = {"kimi_k25": "deepseek_v3"}  # Kimi K2.5: KimiK25 (remote code) around DeepseekV3ForCausalLM
EXPERTS = ("num_local_experts", "num_experts", "n_routed_experts")


def load_config(config_dir: Path):
    """AutoConfig of a folder's config.json with quantization_config dropped (counted bf16-shaped)."""
    from transformers import AutoConfig

    raw = json.loads((config_dir / "config.json").read_text())
    unwrapped = raw.get("model_type") in REMOTE_WRAPPERS
    if unwrapped:
        raw = dict(raw["text_config"], model_type=REMOTE_WRAPPERS[raw["model_type"]],
                   tie_word_embeddings=raw.get("tie_word_embeddings", False))
    remote = REMOTE_CODE_AS.get(raw.get("model_type"))
    if not unwrapped and remote is None and "quantization_config" not in raw and "quantization_config" not in (
            raw.get("text_config") or {}):
        return AutoConfig.from_pretrained(config_dir), raw
    raw = {k: v for k, v in raw.items() if k not in ("quantization_config", "auto_map")}
    if remote:
        raw["model_type"] = remote
    if isinstance(raw.get("text_config"), dict):
        raw["text_config"] = {k: v for k, v in raw["text_config"].items() if k != "quantization_config"}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(raw))
        return AutoConfig.from_pretrained(tmp), raw


def active(model, text_config) -> int | None:
    """Total minus routed experts x (1 - top_k / experts); None for a dense model."""
    experts = next((getattr(text_config, k) for k in EXPERTS if getattr(text_config, k, None)), None)
    top_k = getattr(text_config, "num_experts_per_tok", None) or getattr(text_config, "top_k_experts", None)
    ffn = getattr(text_config, "ffn_config", None)  # DBRX: DbrxFFNConfig moe_num_experts, moe_top_k
    if not experts and ffn is not None:
        experts, top_k = ffn.moe_num_experts, ffn.moe_top_k
    routed = sum(p.numel() for n, p in model.named_parameters()
                 if ".experts." in n and "shared_expert" not in n and not TOWERS.search(n))
    if isinstance(top_k, list):  # one top_k per layer (Hunyuan moe_topk), every layer holding the same experts
        top_k = sum(top_k) / len(top_k)
    if not experts or not top_k or not routed:
        return None
    total = sum(p.numel() for n, p in model.named_parameters() if not TOWERS.search(n))
    return total - round(routed * (1 - top_k / experts))


def count(config_dir: Path) -> dict:
    import torch
    import transformers

    config, raw = load_config(config_dir)
    # a remote-code wrapper comes back as its text model; Qwen2-VL's older configs keep the text keys at the top level
    wrapper = "text_config" in raw or "text_config" in (getattr(config, "sub_configs", None) or {})
    if wrapper:  # the whole multimodal model, by its architecture class
        cls = getattr(transformers, (raw.get("architectures") or [""])[0], None)
        if cls is None:
            cls = transformers.AutoModelForImageTextToText
    else:
        cls = model_class(config.model_type)
    with torch.device("meta"):  # Auto classes build with from_config, concrete ones with their constructor
        model = cls.from_config(config) if hasattr(cls, "from_config") else cls(config)
    out = {"class": type(model).__name__}
    if wrapper:
        out["params"] = sum(p.numel() for n, p in model.named_parameters() if not TOWERS.search(n))
        out["params_full_model"] = sum(p.numel() for p in model.parameters())
        out["counted"] = "text model of the wrapper (towers and projector left out)"
    else:
        out["params"] = sum(p.numel() for p in model.parameters())
    n_active = active(model, config.get_text_config() if wrapper else config)
    if n_active is not None:
        out["params_active"] = n_active
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true",
                        help="record this transformers version's counts in COUNTS.json (by_version)")
    parser.add_argument("--primary", action="store_true",
                        help="with --write: make this version's counts the ones the tests compare to")
    parser.add_argument("--only", nargs="*", help="count only these config folders")
    args = parser.parse_args()

    import torch
    import transformers

    counts = {}
    sources = {}
    if SOURCES.exists():
        sources = json.loads(SOURCES.read_text())
    for config_file in sorted(CONFIGS.glob("*/config.json"), key=lambda p: p.parent.name.lower()):
        name = config_file.parent.name
        if args.only and name not in args.only:
            continue
        try:
            counts[name] = count(config_file.parent)
        except Exception as exc:  # a model type this transformers version lacks
            print(f"{name:28s} not built by transformers {transformers.__version__}: {exc}", flush=True)
            continue
        counts[name].update(transformers=transformers.__version__, **sources.get(name, {}))
        print(f"{name:28s} {counts[name]['class']:34s} {counts[name]['params']:>18,}", flush=True)
    if args.write:
        target = CONFIGS / "COUNTS.json"
        out = json.loads(target.read_text()) if target.exists() else {}
        out.update(schema_version=1, kind="llmplan.hf_counts",
                   produced_by="benchmarks/establish_hf_counts.py (meta device; sum of unique parameters)")
        version = out.setdefault("by_version", {}).setdefault(transformers.__version__, {"counts": {}})
        version["torch_version"] = torch.__version__
        version["counts"].update({k: v["params"] for k, v in counts.items()})
        version["counts"] = dict(sorted(version["counts"].items(), key=lambda kv: kv[0].lower()))
        if args.primary or "counts" not in out:
            out["transformers_version"] = transformers.__version__
            out["torch_version"] = torch.__version__
            out.setdefault("counts", {}).update(counts)
        else:  # configs the primary version does not hold: recorded with the version that counted them
            primary = out["by_version"].get(out["transformers_version"], {}).get("counts", {})
            for k, v in counts.items():
                recorded = out["counts"].get(k, {}).get("transformers", out["transformers_version"])
                if k not in out["counts"] or recorded == transformers.__version__:
                    out["counts"][k] = v  # a new config, or a recount by the version that counted it
                elif primary.get(k) == v["params"] and "params_active" in v:  # same model: its active count
                    out["counts"][k].update(params_active=v["params_active"], params_active_by=v["transformers"])
        out["counts"] = dict(sorted(out["counts"].items(), key=lambda kv: kv[0].lower()))
        order = ["schema_version", "kind", "produced_by", "transformers_version", "torch_version", "counts"]
        out = {k: out[k] for k in sorted(out, key=lambda k: order.index(k) if k in order else len(order))}
        with tempfile.NamedTemporaryFile("w", dir=CONFIGS, delete=False, suffix=".tmp") as tmp:
            json.dump(out, tmp, indent=2)
            tmp.write("\n")
        os.replace(tmp.name, target)
        print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
