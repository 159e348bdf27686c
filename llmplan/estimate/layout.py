"""A training layout (TP x CP x DP x PP, EP carved from TP x CP x DP), its checks, and its warnings.

Rank order, innermost first: TP, CP, DP, PP (Megatron-LM; Llama 3 paper section 3.3.2). The expert-parallel group
of MoE layers is carved out of the TP x CP x DP ranks of a stage (Megatron-Core with expert tensor parallel 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from llmplan.errors import LlmplanError
from llmplan.models.layers import Attention, MoE
from llmplan.models.spec import ModelSpec

RECOMPUTES = ("none", "selective", "full")
STEP_DTYPES = ("bf16", "fp16", "fp8")


@dataclass(frozen=True)
class Layout:
    tp: int = 1
    pp: int = 1
    vp: int = 1                 # virtual stages (model chunks) per pipeline rank: interleaved 1F1B when > 1
    cp: int = 1
    ep: int = 1
    dp: int = 1                 # data-parallel ranks: GPUs / (tp x cp x pp)
    zero: int = 0               # 0 DDP, 1 optimizer states sharded (distributed optimizer), 2 + gradients, 3 FSDP
    sp: bool = False            # sequence parallelism (Korthikanti et al. 2022) with TP
    micro_batch: int = 1        # sequences per micro-batch per data-parallel rank
    global_batch: int = 1       # sequences per optimizer step
    seq: int = 2048
    recompute: str = "none"     # none | selective | full
    dtype: str = "bf16"         # bf16 | fp16 | fp8 (fp8 GEMMs, 16-bit attention core and communication)
    tp_overlap: bool = False    # TP collectives overlapped with the GEMMs (Megatron --tp-comm-overlap, async TP)
    grad_overlap: bool = True   # gradient reduce overlapped with backward (Megatron --overlap-grad-reduce, PyTorch
                                # DDP buckets); False: after the backward (Megatron-LM 2021 local DDP, DeepSpeed stage 0)
    attention: str = "flash"    # flash: the family's best fused kernel (FlashAttention-3/cuDNN on Hopper) |
                                # flash2: FlashAttention-2 | unfused: score matrix in HBM (pre-2022 frameworks)

    @property
    def gpus(self) -> int:
        return self.tp * self.cp * self.dp * self.pp

    @property
    def micro_batches(self) -> int:
        """Micro-batches per pipeline per optimizer step (gradient accumulation steps without PP)."""
        return self.global_batch // (self.dp * self.micro_batch)

    def as_dict(self) -> dict:
        return {"tp": self.tp, "pp": self.pp, "vp": self.vp, "cp": self.cp, "ep": self.ep, "dp": self.dp,
                "zero": self.zero, "sp": self.sp, "micro_batch": self.micro_batch,
                "global_batch": self.global_batch, "seq": self.seq, "recompute": self.recompute,
                "dtype": self.dtype, "micro_batches": self.micro_batches}


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _list(values: list[int], limit: int = 8) -> str:
    return ", ".join(str(v) for v in values[:limit]) + (" ..." if len(values) > limit else "")


_LIMITS: dict = {}


def model_limits(spec: ModelSpec) -> tuple[int, int, int]:
    hit = _LIMITS.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    if len(_LIMITS) > 256:
        _LIMITS.clear()
    value = _model_limits(spec)
    _LIMITS[id(spec)] = (spec, value)
    return value


def _model_limits(spec: ModelSpec) -> tuple[int, int, int]:
    """(query heads every attention layer's TP must divide, experts of the MoE layers (0: dense), layers)."""
    heads, experts = 0, 0
    import math

    for g in spec.layer_groups:
        if isinstance(g.mixer, Attention):
            heads = math.gcd(heads, g.mixer.heads)
        if isinstance(g.ffn, MoE):
            experts = math.gcd(experts, g.ffn.experts)
    return heads or spec.heads, experts, spec.total_layers


def make_layout(gpus: int, spec: ModelSpec, **kw) -> Layout:
    """A Layout with dp = gpus / (tp x cp x pp), checked (LlmplanError with one line saying what is valid)."""
    tp, pp, cp = kw.get("tp", 1), kw.get("pp", 1), kw.get("cp", 1)
    for name in ("tp", "pp", "vp", "cp", "ep", "micro_batch", "global_batch", "seq"):
        v = kw.get(name, 1)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise LlmplanError(f"--{name.replace('_', '-')} must be a whole number of at least 1, got {v!r}")
    if not isinstance(gpus, int) or gpus < 1:
        raise LlmplanError(f"--gpus must be a whole number of at least 1, got {gpus!r}")
    model = tp * cp * pp
    if gpus % model:
        raise LlmplanError(f"--tp {tp} x --cp {cp} x --pp {pp} = {model} does not divide --gpus {gpus}; "
                           f"the product must be one of {_list(_divisors(gpus), 12)}")
    dp = kw.pop("dp", None) or gpus // model
    if tp * cp * pp * dp != gpus:
        raise LlmplanError(f"--tp {tp} x --cp {cp} x --pp {pp} x --dp {dp} = {tp * cp * pp * dp}, not --gpus {gpus}")
    layout = Layout(**{**kw, "dp": dp})
    check_layout(layout, spec)
    return layout


def check_layout(layout: Layout, spec: ModelSpec) -> None:
    heads, experts, layers = model_limits(spec)
    t = layout
    if t.recompute not in RECOMPUTES:
        raise LlmplanError(f"unknown --recompute {t.recompute!r}; accepted: {', '.join(RECOMPUTES)}")
    if t.dtype not in STEP_DTYPES:
        raise LlmplanError(f"--dtype {t.dtype} is not a training precision of the step-time model; accepted: "
                           f"{', '.join(STEP_DTYPES)}")
    if t.zero not in (0, 1, 2, 3):
        raise LlmplanError(f"--zero must be 0, 1, 2 or 3 (3 is FSDP full sharding), got {t.zero!r}")
    if heads % t.tp:
        raise LlmplanError(f"--tp {t.tp} does not divide the {heads} attention heads of {spec.name}; "
                           f"valid: {_list(_divisors(heads))}")
    if t.pp * t.vp > layers:
        raise LlmplanError(f"--pp {t.pp} x --vp {t.vp} = {t.pp * t.vp} model chunks for {layers} layers of "
                           f"{spec.name}; at most {layers} (uneven stages are fine)")
    if t.cp > 1 and t.seq % (2 * t.cp):
        raise LlmplanError(f"--seq {t.seq} must be a multiple of 2 x --cp = {2 * t.cp} (load-balanced causal "
                           "chunks of context parallelism)")
    if t.ep > 1:
        if not experts:
            raise LlmplanError(f"--ep {t.ep} needs a mixture-of-experts model; {spec.name} is dense (use --ep 1)")
        if experts % t.ep:
            raise LlmplanError(f"--ep {t.ep} does not divide the {experts} experts of {spec.name}; valid: "
                               f"{_list(_divisors(experts))}")
        if (t.tp * t.cp * t.dp) % t.ep:
            raise LlmplanError(f"--ep {t.ep} must divide the {t.tp * t.cp * t.dp} ranks of a stage "
                               f"(tp x cp x dp); valid: {_list(_divisors(t.tp * t.cp * t.dp))}")
    per_step = t.dp * t.micro_batch
    if t.global_batch % per_step:
        lo = max(per_step, t.global_batch // per_step * per_step)
        raise LlmplanError(f"--global-batch {t.global_batch} is not a multiple of dp {t.dp} x --micro-batch "
                           f"{t.micro_batch} = {per_step}; valid: {lo}, {lo + per_step}, ...")
    if t.vp > 1 and t.pp == 1:
        raise LlmplanError("--vp (interleaved virtual stages) needs --pp of at least 2")
    if t.vp > 1 and t.micro_batches % t.pp:
        raise LlmplanError(f"interleaved pipeline (--vp {t.vp}) needs the micro-batches per step "
                           f"({t.micro_batches}) to be a multiple of --pp {t.pp} (Megatron-LM's schedule)")


def layout_warnings(layout: Layout, node_gpus: int) -> list[str]:
    """Legal but unusual choices, said on stderr."""
    out = []
    if layout.tp > node_gpus:
        out.append(f"--tp {layout.tp} spans more than one NVLink domain ({node_gpus} GPUs): every layer's "
                   "tensor-parallel collectives cross the network")
    if layout.tp * layout.cp > node_gpus and layout.cp > 1:
        out.append(f"--tp x --cp = {layout.tp * layout.cp} spans nodes: context-parallel exchange crosses the NIC")
    if layout.sp and layout.tp == 1:
        out.append("--sp has no effect with --tp 1")
    return out


def with_(layout: Layout, **changes) -> Layout:
    return replace(layout, **changes)


__all__ = ["Layout", "make_layout", "check_layout", "layout_warnings", "RECOMPUTES", "STEP_DTYPES", "field"]
