"""Bytes of stored weights per format, with the scale overhead of quantized formats.

Quantized checkpoints (GPTQ, AWQ, bitsandbytes, fp8) quantize the linear layers of the transformer blocks; the
embeddings, the output head and the norms stay in 16-bit. Each format stores its values plus scales:

- int8: LLM.int8() vector-wise quantization (Dettmers et al. 2022): one fp32 absmax per output row (bitsandbytes SCB).
- int4: group-wise quantization as in GPTQ (Frantar et al. 2023) and AWQ (Lin et al. 2024): one fp16 scale per group
  of `group` weights (default 128), i.e. 4 + 16/128 = 4.125 bits per weight.
- nf4 (QLoRA): 4-bit NormalFloat in blocks of 64 with double quantization of the absmax constants (Dettmers et al.
  2023, section 3): 4 + 8/64 + 32/(64 x 256) = 4.127 bits per weight.
- fp8: one fp32 scale per tensor (Micikevicius et al. 2022, FP8 formats for deep learning; Transformer Engine).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.errors import LlmplanError
from llmplan.estimate.shapes import block_linears, matrix_params
from llmplan.models.params import count_params
from llmplan.models.spec import ModelSpec
from llmplan.models.weight_format import WeightFormat
from llmplan.units import DTYPE_BYTES

QUANTIZED = ("int8", "int4", "nf4", "fp8")
DEFAULT_INT4_GROUP = 128
NF4_BITS = 4 + 8 / 64 + 32 / (64 * 256)  # Dettmers et al. 2023 (QLoRA), double quantization: 4.127 bits/param


def raw_weight_bytes(params: float, dtype: str) -> float:
    """The values alone: params x bytes per value (fp32 4, fp16/bf16 2, int8/fp8 1, int4 0.5)."""
    return params * DTYPE_BYTES[dtype]


@dataclass(frozen=True)
class WeightStorage:
    total_bytes: float
    quantized_params: float  # parameters stored in the quantized format (block linears)
    scale_bytes: float       # quantization constants
    other_bytes: float       # embeddings, head, norms, biases kept in 16-bit
    bits_per_quantized: float


def weight_storage(spec: ModelSpec, params: float, dtype: str, group: int | None = None,
                   other_dtype: str = "bf16") -> WeightStorage:
    """Bytes of `params` parameters of `spec` stored as `dtype` (quantized formats: blocks only, scales counted).

    `params` may be a share of the model (one GPU's shard): quantized and 16-bit parts keep the model's proportions.
    """
    if dtype not in QUANTIZED:
        return WeightStorage(raw_weight_bytes(params, dtype), 0.0, 0.0, 0.0, DTYPE_BYTES[dtype] * 8)
    total = count_params(spec).total
    mats = block_linears(spec)
    quantizable = sum(matrix_params(m) for m in mats if m.kind != "router")
    share = params / total if total else 0.0
    q_params = quantizable * share
    if dtype == "int8":
        rows = sum(m.d_out * m.count for m in mats if m.kind != "router")
        scales = 4.0 * rows * share  # one fp32 absmax per output row
        bits = 8.0
    elif dtype == "int4":
        g = group or DEFAULT_INT4_GROUP
        if g < 1:
            raise LlmplanError(f"quantization group size must be at least 1, got {g}")
        scales = q_params / g * 2.0  # one fp16 scale per group
        bits = 4.0
    elif dtype == "nf4":
        scales = q_params * (NF4_BITS - 4) / 8
        bits = 4.0
    else:  # fp8
        scales = 4.0 * sum(m.count for m in mats if m.kind != "router") * share
        bits = 8.0
    other = (params - q_params) * DTYPE_BYTES[other_dtype]
    values = q_params * bits / 8
    return WeightStorage(values + scales + other, q_params, scales, other, bits + 8 * scales / q_params if q_params
                         else bits)


def stored_weight_bytes(spec: ModelSpec, dense_params: float, expert_params: float, fmt: WeightFormat,
                        other_dtype: str = "bf16") -> float:
    """Bytes of one GPU's weights in the checkpoint's stored format (its config's quantization_config):
    `fmt.bytes_per_param` (values and the block scales) for what the format covers, `other_dtype` for the rest.
    "experts": the routed experts only (gpt-oss's MXFP4); "linear": every block linear but the routers, in the
    model's proportions (DeepSeek-V3's fp8 with a scale per 128 x 128 block; AWQ/GPTQ int4 groups)."""
    other = DTYPE_BYTES[other_dtype]
    if fmt.applies_to == "experts":
        return expert_params * fmt.bytes_per_param + dense_params * other
    mats = block_linears(spec)
    experts = sum(matrix_params(m) for m in mats if m.kind == "expert")
    covered = sum(matrix_params(m) for m in mats if m.kind not in ("router", "expert"))
    non_expert = count_params(spec).total - experts
    q = dense_params * (covered / non_expert if non_expert else 0.0) + expert_params
    return q * fmt.bytes_per_param + (dense_params + expert_params - q) * other
