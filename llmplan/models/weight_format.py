"""How a published checkpoint stores its weights (its config.json `quantization_config`).

Block-scaled formats keep one scale per block of values: fp8 with a float32 scale per 128 x 128 block (DeepSeek-V3,
`weight_block_size` [128, 128]); MXFP4 with a shared 8-bit exponent per 32 values (OCP Microscaling Formats MX v1.0,
section 5; gpt-oss stores its MoE experts so); AWQ/GPTQ int4 with an fp16 scale and a 4-bit zero point per group of
`group_size` values (Lin et al. 2024; Frantar et al. 2023).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.errors import LlmplanError

APPLIES_TO = ("linear", "experts")


@dataclass(frozen=True)
class WeightFormat:
    method: str              # "fp8", "mxfp4", "awq", "gptq", ... as the config names it
    bits: int                # bits of one stored value
    block: int               # values sharing one scale (128 x 128 = 16,384 for DeepSeek-V3's fp8 blocks)
    scale_bytes: float       # bytes of the scale (and zero point) of one block
    applies_to: str = "linear"  # "linear": every linear layer but the embeddings and the output head;
                                # "experts": the routed MoE experts only (gpt-oss)

    def __post_init__(self) -> None:
        if self.bits not in (2, 3, 4, 8, 16) or self.block < 1 or self.scale_bytes < 0:
            raise LlmplanError(f"weight format {self.method!r}: bits must be 2-16, block >= 1, scale bytes >= 0")
        if self.applies_to not in APPLIES_TO:
            raise LlmplanError(f"weight format applies to one of {', '.join(APPLIES_TO)}")

    @property
    def bytes_per_param(self) -> float:
        return self.bits / 8 + self.scale_bytes / self.block

    @property
    def label(self) -> str:
        return f"{self.method} ({self.bytes_per_param:.3g} bytes/param, {self.applies_to})"
