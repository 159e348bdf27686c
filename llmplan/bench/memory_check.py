"""Measured memory beside predicted memory for one bench configuration.

Measured (any device): the bytes actually held, counted tensor by tensor: parameters, gradients, optimizer states
and the tensors autograd saves for backward (llmplan.bench.saved_tensors, deduplicated by storage). This is what
the planner's weights + gradients + optimizer + activations describe, so the two can be compared without a GPU.
Predicted: llmplan.estimate.memory for the same model, batch, sequence, dtype, attention and recomputation.
"""

from __future__ import annotations

from typing import Callable



def counted_bytes(model, opt, forward: Callable[[], object]) -> dict[str, int]:
    """Run forward() once with saved tensors counted, backward it, and count model state.

    Needs an optimizer that has stepped at least once (its states exist). Leaves the gradients zeroed."""
    import torch

    from llmplan.bench.saved_tensors import count_saved_tensors

    params = list(model.parameters())
    holder: dict = {}
    saved = count_saved_tensors(lambda: holder.setdefault("loss", forward()), exclude=params)
    holder.pop("loss").backward()
    # Under autocast, each matmul saves a half-precision copy of its weight for backward: model state in all
    # but name, so it is reported apart (the planner may count it with weights or activations).
    copies = saved.weight_copy_bytes

    def nbytes(t) -> int:
        return t.numel() * t.element_size()

    counted = {
        "weights": sum(nbytes(p) for p in params),
        "gradients": sum(nbytes(p.grad) for p in params if p.grad is not None),
        "optimizer": sum(nbytes(t) for state in opt.state.values() for t in state.values() if torch.is_tensor(t)),
        "activations": saved.total_bytes - copies,
        "autocast_weight_copies": copies,
    }
    opt.zero_grad(set_to_none=False)
    return counted


def predicted_bytes(cfg, device) -> tuple[int | None, dict, list[str]] | None:
    """(total, breakdown, notes) from llmplan.estimate.memory for what the bench trains; None when the module is
    unavailable, a None total (and a note saying why) when the planner does not model this configuration.

    On CUDA the prediction is the peak of allocated tensors (with the logits and recomputation transients), to
    compare with max_memory_allocated; elsewhere it is what counting measures: model states plus the tensors saved
    for backward (transients left out)."""
    try:
        from llmplan.estimate.memory import MemoryConfig, estimate_memory
    except ImportError:
        return None
    from llmplan.errors import LlmplanError

    try:
        est = estimate_memory(memory_config(MemoryConfig, cfg, device))
    except LlmplanError as exc:  # a shape or setting the planner does not model
        return None, {}, [f"no memory prediction: {exc}"]
    b = est.breakdown
    breakdown = {k: int(b[k]) for k in ("weights", "gradients", "optimizer", "activations")}
    notes = []
    if device.dtype != "fp32":
        notes.append("mixed precision as the bench trains it, predicted with llmplan memory --amp: fp32 weights, "
                     "gradients and AdamW states, a 16-bit copy of each matmul weight, fp32 residual stream")
    if any(g.mixer is not None and g.attention is None for g in cfg.spec.layer_groups):
        notes.append("Mamba-2 / Gated DeltaNet layers run here as plain-PyTorch reference forms, which keep more for "
                     "backward than the fused kernels the prediction describes")
    if device.kind != "cuda":
        detail = est.activation_detail
        transient = int(detail.get("logits_transient", 0) + detail.get("recompute_transient", 0))
        breakdown["activations"] -= transient
    return sum(breakdown.values()), breakdown, notes


def memory_config(MemoryConfig, cfg, device):
    """The planner's description of exactly what the bench trains: one GPU, AdamW, no dropout, plain PyTorch ops
    (llmplan.estimate.activations' "pytorch" accounting, "pytorch-cuda" on a GPU), autocast below fp32 (fp32
    weights and states, 16-bit matmuls), gradients kept between steps."""
    return MemoryConfig(spec=cfg.built_spec, mode="train", dtype=device.dtype, batch=cfg.batch, seq=cfg.seq,
                        optimizer="adamw", recompute=cfg.recompute, attention=cfg.attention, dropout=False,
                        impl="pytorch-cuda" if device.kind == "cuda" else "pytorch", grad_dtype="fp32",
                        amp=device.dtype != "fp32")
