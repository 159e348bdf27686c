"""The layout options `plan` and `compute` share (--tp --pp --vp --cp --ep --zero --fsdp --sp --micro-batch
--global-batch --recompute --tp-overlap --node-gpus), and turning them into a checked Layout."""

from __future__ import annotations

from typing import Optional

import typer

from llmplan.errors import LlmplanError
from llmplan.units import parse_int_count

TP = typer.Option(None, "--tp", help="Tensor-parallel GPUs per layer (Megatron).")
PP = typer.Option(None, "--pp", help="Pipeline stages; uneven stages are fine (126 layers on 16).")
VP = typer.Option(None, "--vp", help="Virtual stages per pipeline rank (interleaved 1F1B).")
CP = typer.Option(None, "--cp", help="Context-parallel GPUs per sequence (ring attention).")
EP = typer.Option(None, "--ep", help="Expert-parallel GPUs (MoE), drawn from TP x CP x DP.")
ZERO = typer.Option(None, "--zero", help="ZeRO stage 0-3 (1: distributed optimizer, 3: FSDP).")
FSDP = typer.Option(False, "--fsdp", help="FSDP full sharding (= --zero 3).")
SP = typer.Option(None, "--sp/--no-sp", help="Sequence parallelism with TP (default: on when --tp > 1).")
MICRO = typer.Option(None, "--micro-batch", help="Sequences per micro-batch per data-parallel rank.")
GLOBAL = typer.Option(None, "--global-batch", help="Sequences per optimizer step (default: about 4M tokens).")
OVERLAP = typer.Option(False, "--tp-overlap", help="TP collectives overlapped with GEMMs (--tp-comm-overlap).")
NODE = typer.Option(None, "--node-gpus", help="GPUs per NVLink domain (default: the GPU's catalog figure).")

DEFAULT_BATCH_TOKENS = 4 * 1024 * 1024  # Llama 2 trained with 4M-token batches (Touvron et al. 2023, section 2.2)


def default_global_batch(seq: int) -> int:
    """Sequences of about 4M tokens: the power of two nearest 4,194,304 / seq, at least 1."""
    target = DEFAULT_BATCH_TOKENS / seq
    power = 1
    while power * 2 <= target * 1.5:
        power *= 2
    return power


def layout_fields(tp, pp, vp, cp, ep, zero, fsdp, sp, micro_batch, global_batch) -> dict:
    """The layout options the user gave (None = not given), checked for form."""
    out = {}
    for name, value in (("tp", tp), ("pp", pp), ("vp", vp), ("cp", cp), ("ep", ep), ("micro_batch", micro_batch),
                        ("global_batch", global_batch)):
        if value is not None:
            out[name] = parse_int_count(value, "--" + name.replace("_", "-"))
    if fsdp and zero not in (None, "3", 3):
        raise LlmplanError(f"--fsdp is ZeRO stage 3; it contradicts --zero {zero}")
    if fsdp:
        out["zero"] = 3
    elif zero is not None:
        if str(zero) not in ("0", "1", "2", "3"):
            raise LlmplanError(f"--zero must be 0, 1, 2 or 3 (3 is FSDP full sharding), got {zero!r}")
        out["zero"] = int(zero)
    if sp is not None:
        out["sp"] = bool(sp)
    return out


def node_gpus(text: Optional[str], gpu) -> int:
    if text is not None:
        return parse_int_count(text, "--node-gpus")
    return int(getattr(gpu, "nvlink_domain_gpus", 0) or 1)


LAYOUT_KEYS = ("tp", "pp", "vp", "cp", "ep", "zero", "sp", "micro_batch")
