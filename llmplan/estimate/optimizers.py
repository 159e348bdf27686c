"""Bytes per trainable parameter for weights, gradients and optimizer states under each training precision.

Mixed precision (Micikevicius et al. 2018; ZeRO paper, Rajbhandari et al. 2019, section 3.1): 16-bit weights and
gradients, and an fp32 master copy of the weights kept with the optimizer states. With Adam that is
2 + 2 + K bytes per parameter, K = 12 (fp32 master weights, momentum, variance): the ZeRO paper's 16 bytes.
Megatron-LM accumulates gradients in fp32 (its `main_grad`), 2 + 4 + 12 = 18 bytes (selectable: grad_dtype="fp32").
Pure fp32 training keeps no master copy: 4 + 4 + 8 bytes with Adam.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.errors import LlmplanError
from llmplan.estimate.shapes import block_linears, matrix_params
from llmplan.models.params import count_params
from llmplan.models.spec import ModelSpec
from llmplan.units import DTYPE_BYTES

OPTIMIZERS = ("adamw", "adam8bit", "sgd", "sgd-momentum", "adafactor", "lion")
TRAIN_DTYPES = ("fp32", "fp16", "bf16", "fp8")
GRAD_DTYPES = ("auto", "fp32", "bf16", "fp16")

# Optimizer states per parameter, without any master copy of the weights.
_STATE_BYTES = {
    "adamw": 8.0,                      # fp32 first and second moments (Kingma and Ba 2015; Loshchilov and Hutter 2019)
    "adam8bit": 2.0 + 2 * 4.0 / 2048,  # 8-bit moments, one fp32 absmax per block of 2048 each (Dettmers et al. 2022)
    "sgd": 0.0,                        # plain SGD keeps no state
    "sgd-momentum": 4.0,               # one fp32 momentum buffer
    "lion": 4.0,                       # one fp32 momentum (Chen et al. 2023, "Symbolic Discovery of Optim. Algorithms")
}


@dataclass(frozen=True)
class StateBytes:
    weights: float    # bytes per parameter of the working weights
    gradients: float
    optimizer: float  # states plus the fp32 master copy under mixed precision
    master: float     # the master copy's share of `optimizer`


def check_optimizer(name: str) -> str:
    if name not in OPTIMIZERS:
        raise LlmplanError(f"unknown optimizer {name!r}; accepted: {', '.join(OPTIMIZERS)}")
    return name


def adafactor_state_bytes(spec: ModelSpec) -> float:
    """Adafactor without momentum (Shazeer and Stern 2018): a factored second moment, one fp32 row vector and one fp32
    column vector per weight matrix (r + c values instead of r x c), full fp32 for vectors (norms, biases).
    Returns bytes per parameter averaged over the model."""
    b = count_params(spec)
    mats = block_linears(spec)
    e = spec.embed_dim or spec.hidden
    factored = sum((m.d_in + m.d_out) * m.count for m in mats)
    in_matrices = sum(matrix_params(m) for m in mats)
    factored += spec.vocab + e  # token embedding
    in_matrices += spec.vocab * e
    if not spec.tied_embeddings:
        factored += spec.vocab + e
        in_matrices += spec.vocab * e
    vectors = max(b.total - in_matrices, 0)  # norms, biases, positions (counted unfactored: a small overestimate)
    return 4.0 * (factored + vectors) / b.total


def adapter_adafactor_bytes(d_in: int, d_out: int, rank: int) -> float:
    """Adafactor state of one LoRA pair A (r x d_in) and B (d_out x r), per adapter parameter."""
    return 4.0 * ((rank + d_in) + (d_out + rank)) / (rank * (d_in + d_out))


def state_bytes(dtype: str, optimizer: str, grad_dtype: str = "auto", spec: ModelSpec | None = None,
                adafactor_bytes: float | None = None) -> StateBytes:
    """Bytes per trainable parameter for full training in `dtype` (fp32 pure, fp16/bf16/fp8 mixed precision)."""
    if dtype not in TRAIN_DTYPES:
        raise LlmplanError(f"training in {dtype} is not supported; train in {', '.join(TRAIN_DTYPES)} "
                           "(int8/int4 base weights are for --mode lora, qlora or infer)")
    if grad_dtype not in GRAD_DTYPES:
        raise LlmplanError(f"unknown gradient dtype {grad_dtype!r}; accepted: {', '.join(GRAD_DTYPES)}")
    check_optimizer(optimizer)
    mixed = dtype != "fp32"
    weights = DTYPE_BYTES[dtype]
    if grad_dtype == "auto":  # ZeRO paper convention: gradients in the working precision (bf16 for fp8 training)
        grads = 4.0 if not mixed else 2.0
    else:
        grads = DTYPE_BYTES[grad_dtype]
    master = 4.0 if mixed else 0.0
    if optimizer == "adafactor":
        states = adafactor_bytes if adafactor_bytes is not None else (
            adafactor_state_bytes(spec) if spec is not None else 4.0)
    else:
        states = _STATE_BYTES[optimizer]
    return StateBytes(weights=weights, gradients=grads, optimizer=master + states, master=master)


def adapter_state_bytes(optimizer: str, adafactor_bytes: float | None = None,
                        adapter_dtype: str = "fp32") -> StateBytes:
    """LoRA adapters: fp32 by default (PEFT upcasts trainable adapters to fp32 under 16-bit or quantized bases), so
    no master copy: 4 bytes weights, 4 bytes gradients, optimizer states as above. The QLoRA reference script casts
    them to bf16 instead (adapter_dtype="bf16"): 2 + 2 + states, still without a master copy."""
    check_optimizer(optimizer)
    if adapter_dtype not in ("fp32", "bf16", "fp16"):
        raise LlmplanError(f"unknown adapter dtype {adapter_dtype!r}; accepted: fp32, bf16, fp16")
    states = (adafactor_bytes if adafactor_bytes is not None else 4.0) if optimizer == "adafactor" \
        else _STATE_BYTES[optimizer]
    b = DTYPE_BYTES[adapter_dtype]
    return StateBytes(weights=b, gradients=b, optimizer=states, master=0.0)
