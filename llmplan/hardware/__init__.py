"""Accelerator catalog (data with a source per entry), loose name matching, and what `--gpu` means."""

from llmplan.hardware.catalog import GPU, get_gpu, load_gpus, match_gpu
from llmplan.hardware.device import parse_gpu

__all__ = ["GPU", "get_gpu", "load_gpus", "match_gpu", "parse_gpu"]
