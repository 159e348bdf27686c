"""The models of the published serving rows, from their released config.json files.

The configs in benchmarks/data/serving_models/ are copied verbatim from ai-dynamo/aiconfigurator
(aic-core/src/aiconfigurator_core/model_configs/*_config.json @ 095f58a5), which stores the Hugging Face configs of
the models its measured rows use; llmplan's config reader turns them into layer groups (llmplan.models.hf_config).
"""

from __future__ import annotations

from pathlib import Path

from llmplan.models import ModelSpec, get_preset, resolve_model

CONFIGS = Path(__file__).resolve().parent / "data" / "serving_models"


def load_config(stem: str) -> ModelSpec:
    return resolve_model(str(CONFIGS / f"{stem}.json")).with_(name=stem)


# The published rows' model names -> a config here or a preset.
MODELS = {
    "llama v3.1 8b": "Meta-Llama-3.1-8B", "llama 3.1 8b": "Meta-Llama-3.1-8B",
    "llama v3.1 70b": "Meta-Llama-3.1-70B", "llama 3.1 70b": "Meta-Llama-3.1-70B",
    "meta-llama/llama-3.1-70b": "Meta-Llama-3.1-70B", "llama 3.3 70b": "Meta-Llama-3.1-70B",
    "llama v3.1 405b": "Meta-Llama-3.1-405B", "llama 3.1 405b": "Meta-Llama-3.1-405B",
    "mixtral 8x7b": "Mixtral-8x7B-v0.1", "mixtral 8x22b": "Mixtral-8x22B-v0.1",
    "qwen3-235b-a22b": "Qwen3-235B-A22B", "qwen3-30b-a3b": "Qwen3-30B-A3B", "qwen3-32b": "Qwen3-32B",
    "deepseek-r1": "DeepSeek-R1", "deepseek-ai/deepseek-r1": "DeepSeek-R1", "deepseek-v3": "DeepSeek-R1",
    "llama 4 scout": "Llama-4-Scout-17B-16E-Instruct", "llama 4 maverick": "Llama-4-Maverick-17B-128E-Instruct",
    "openai/gpt-oss-120b": "gpt-oss-120b",
    "mistral 7b": "preset:mistral-7b", "llama 2 7b": "preset:llama-2-7b", "llama 2 13b": "preset:llama-2-13b",
    "llama 2 70b": "preset:llama-2-70b", "llama 7b": "preset:llama-7b", "llama 70b": "preset:llama-2-70b",
}


def model_for(name: str) -> ModelSpec | None:
    key = name.lower().split(" (")[0].strip()
    stem = MODELS.get(key)
    if stem is None:
        return None
    if stem.startswith("preset:"):
        return get_preset(stem[len("preset:"):])
    return load_config(stem)
