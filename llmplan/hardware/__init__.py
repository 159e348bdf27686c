"""Accelerator catalog (data with a source per entry) and loose name matching."""

from llmplan.hardware.catalog import GPU, get_gpu, load_gpus, match_gpu

__all__ = ["GPU", "get_gpu", "load_gpus", "match_gpu"]
