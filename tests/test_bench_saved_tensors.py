"""Autocast's half-precision weight copies are told apart from activations by value, not by shape."""

import pytest

torch = pytest.importorskip("torch")

from llmplan.bench.saved_tensors import count_saved_tensors  # noqa: E402


def test_weight_copies_found_even_when_an_activation_has_the_same_shape():
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 32, bias=False)  # weight (32, 64)
    x = torch.randn(32, 64, requires_grad=True)  # an activation with the weight's very shape
    with torch.autocast("cpu", dtype=torch.bfloat16):
        saved = count_saved_tensors(lambda: lin(x).sum(), exclude=lin.parameters())
    copy = 32 * 64 * 2  # one bf16 copy of the weight
    assert saved.weight_copy_bytes == copy
    assert saved.total_bytes - saved.weight_copy_bytes >= 32 * 64 * 2  # the cast input is an activation


def test_no_copies_in_fp32():
    lin = torch.nn.Linear(16, 16)
    x = torch.randn(4, 16, requires_grad=True)
    saved = count_saved_tensors(lambda: lin(x * 2).sum(), exclude=lin.parameters())  # x * 2: not a leaf
    assert saved.weight_copy_bytes == 0 and saved.total_bytes > 0
