"""Model specifications, exact parameter counts, presets and Hugging Face config reading."""

from llmplan.models.catalog import get_preset, load_presets, resolve_model, spec_from_params
from llmplan.models.params import ParamBreakdown, count_params
from llmplan.models.spec import ModelSpec

__all__ = ["ModelSpec", "ParamBreakdown", "count_params", "get_preset", "load_presets", "resolve_model",
           "spec_from_params"]
