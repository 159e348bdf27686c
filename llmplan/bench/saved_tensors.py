"""Counting the activation memory of a forward pass: the bytes of tensors autograd saves for the backward pass.

This is what the planner calls activation memory (Korthikanti et al. 2022, section 4): every tensor kept alive
between the forward and the backward pass. Saved tensors are seen through torch.autograd.graph.saved_tensors_hooks
and counted once per storage (a view keeps its whole storage alive, so the storage's size is what it costs).
Parameters and their views are model state, not activations: they are left out, as are the storages of any tensors
passed in `exclude`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable


@dataclass(frozen=True)
class SavedTensors:
    """Saved storages of one forward pass: total bytes, bytes by dtype, and each storage's (shape, dtype, bytes)."""

    total_bytes: int
    by_dtype: dict[str, int] = field(hash=False)
    storages: tuple[tuple[tuple[int, ...], str, int], ...] = ()
    parameter_bytes: int = 0  # saved tensors that are parameters (left out of the total)
    weight_copy_bytes: int = 0  # of the total: half-precision casts of excluded weights (autocast keeps them)


def _storage(t) -> tuple[int, int]:
    """(data pointer, bytes) of the storage behind t."""
    try:
        s = t.untyped_storage()
        return s.data_ptr(), s.nbytes()
    except (RuntimeError, NotImplementedError):  # tensors without a plain storage (sparse, nested)
        return id(t), t.numel() * t.element_size()


def count_saved_tensors(fn: Callable[[], object], exclude: Iterable = ()) -> SavedTensors:
    """Run fn() with hooks on every tensor saved for backward; return what they hold, deduplicated by storage."""
    import torch

    exclude = list(exclude)
    skip = {_storage(t)[0] for t in exclude}
    seen: dict[int, tuple[tuple[int, ...], str, int]] = {}
    params: dict[int, int] = {}
    copies: set[int] = set()
    half = (torch.float16, torch.bfloat16)
    by_shape: dict[tuple[int, ...], list] = defaultdict(list)
    for w in exclude:
        if w.dim() == 2:
            by_shape[tuple(w.shape)].append(w)

    def is_weight_copy(t) -> bool:
        # Autocast saves a weight cast to 16 bits, as matmul sees it (often transposed). Shape alone cannot tell it
        # from an activation of the same shape, so the values are compared.
        if t.dtype not in half or t.dim() != 2:
            return False
        with torch.no_grad():
            for w, transpose in ([(w, False) for w in by_shape.get(tuple(t.shape), ())]
                                 + [(w, True) for w in by_shape.get(tuple(t.shape)[::-1], ())]):
                w = w.detach().to(t.dtype)
                try:
                    if torch.equal(t, w.t() if transpose else w):
                        return True
                except RuntimeError:  # a sharded weight (FSDP's DTensor) cannot be compared with a plain tensor
                    continue
        return False

    def pack(t):
        ptr, nbytes = _storage(t)
        base = t._base if t._base is not None else t  # a view of a parameter (weight.t()) is the parameter
        if ptr in skip or isinstance(base, torch.nn.Parameter) or (base.is_leaf and base.requires_grad):
            params[ptr] = nbytes
        elif ptr not in seen:
            seen[ptr] = (tuple(t.shape), str(t.dtype).replace("torch.", ""), nbytes)
            if is_weight_copy(t):
                copies.add(ptr)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    by_dtype: dict[str, int] = defaultdict(int)
    for _, dtype, nbytes in seen.values():
        by_dtype[dtype] += nbytes
    return SavedTensors(total_bytes=sum(n for *_, n in seen.values()), by_dtype=dict(by_dtype),
                        storages=tuple(seen.values()), parameter_bytes=sum(params.values()),
                        weight_copy_bytes=sum(seen[p][2] for p in copies))


def saved_tensor_bytes(fn: Callable[[], object], exclude: Iterable = ()) -> int:
    """Bytes of the tensors saved for backward while calling fn(), one count per storage, parameters left out.

    Pass a module's parameters (or any tensors) in `exclude` to leave their storages out explicitly, e.g.
    saved_tensor_bytes(lambda: model(tokens, targets), exclude=model.parameters()).
    """
    return count_saved_tensors(fn, exclude).total_bytes
