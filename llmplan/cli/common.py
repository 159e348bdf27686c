"""Options and helpers shared by the commands: which model, output format, quantity parsing."""

from __future__ import annotations

from typing import Optional

import typer

from llmplan.errors import LlmplanError
from llmplan.files import check_model_text
from llmplan.models import ModelSpec, resolve_model, spec_from_params
from llmplan.units import parse_count

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object (with schema_version) instead of tables.")
MODEL_OPTION = typer.Option(None, "--model", "-m", help="Preset name (see `llmplan models`), path to a config.json "
                            "or a folder holding one, or a hub id already in the local Hugging Face cache.")
PARAMS_OPTION = typer.Option(None, "--params", "-p", help="A bare parameter count (7B, 6.7e9, 125M) when no "
                             "--model is given; the shape is inferred and shown as an assumption.")
ARCH_OPTION = typer.Option("decoder", "--arch", help="Architecture for a bare --params: decoder, encoder or "
                           "encoder-decoder.")


def model_from_options(model: Optional[str], params: Optional[str], arch: str = "decoder",
                       required: bool = True) -> ModelSpec | None:
    """--model, or --params (with --arch); exactly one of them."""
    if model and params:
        raise LlmplanError("give either --model or --params, not both")
    if model:
        return resolve_model(check_model_text(model))
    if params:
        return spec_from_params(parse_count(params, "--params"), arch)
    if required:
        raise LlmplanError("no model: give --model NAME_OR_PATH (see `llmplan models`) or --params N (e.g. 7B)")
    return None


def check_positive_int(value: int, option: str, minimum: int = 1) -> int:
    if value < minimum:
        raise LlmplanError(f"{option} must be at least {minimum}, got {value}")
    return value


def gpus_from_options(gpus: Optional[str], dp: Optional[str], model_parallel: int = 1) -> int:
    """Total GPUs from --gpus (all of them) and --dp (data-parallel degree; times tensor x pipeline degree
    `model_parallel`); given both, they must agree. Default: one data-parallel replica."""
    from llmplan.units import parse_int_count

    total = parse_int_count(gpus, "--gpus") if gpus is not None else None
    replicas = parse_int_count(dp, "--dp") if dp is not None else None
    if total is not None and replicas is not None and total != replicas * model_parallel:
        mp = f" x {model_parallel} (tp x pp)" if model_parallel > 1 else ""
        raise LlmplanError(f"--gpus {total} and --dp {replicas}{mp} disagree: give one of them, or --gpus = --dp x "
                           "--tp x --pp")
    if total is not None:
        if total % model_parallel:
            raise LlmplanError(f"--gpus {total} is not a multiple of --tp x --pp = {model_parallel}")
        return total
    return (replicas or 1) * model_parallel
