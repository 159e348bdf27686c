import math

import pytest

from llmplan.errors import LlmplanError
from llmplan.units import (GiB, format_bytes, format_count, format_flops, parse_bytes, parse_count,
                           parse_dtype)


@pytest.mark.parametrize("text,value", [
    ("7B", 7e9), ("6.7e9", 6.7e9), ("1.4T", 1.4e12), ("300B", 300e9), ("175_000_000_000", 175e9),
    ("125M", 125e6), ("10k", 1e4), ("10K", 1e4), (" 2.5b ", 2.5e9), ("1e23", 1e23),
])
def test_parse_count_accepts_what_people_write(text, value):
    assert parse_count(text) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("text", ["", "  ", "-7B", "0", "nan", "NaN", "inf", "-inf", "7X", "B7", "seven", "1..2"])
def test_parse_count_rejects_garbage(text):
    with pytest.raises(LlmplanError):
        parse_count(text)


def test_parse_count_zero_when_allowed():
    assert parse_count("0", allow_zero=True) == 0


def test_parse_bytes_decimal_and_binary():
    assert parse_bytes("80GB") == 80 * 10**9
    assert parse_bytes("80GiB") == 80 * 2**30
    assert parse_bytes("1.5 TiB") == int(1.5 * 2**40)
    for bad in ("80", "80XB", "-1GB", "nanGB", ""):
        if bad == "80":
            assert parse_bytes(bad) == 80  # a bare number is bytes
            continue
        with pytest.raises(LlmplanError):
            parse_bytes(bad)


def test_format_never_calls_binary_gb():
    assert format_bytes(2 * GiB) == "2 GiB"
    assert format_bytes(2e9, decimal=True) == "2 GB"
    assert "GB" not in format_bytes(5e9).replace("GiB", "")
    assert format_count(7_241_732_096) == "7.24 B"
    assert format_count(125e6) == "125 M"
    assert format_flops(3.14e23) == "3.14e23"
    assert math.isclose(float(format_flops(1.234e19)), 1.23e19)


def test_parse_dtype():
    assert parse_dtype("BF16") == "bf16"
    assert parse_dtype("float16") == "fp16"
    with pytest.raises(LlmplanError, match="int3"):
        parse_dtype("int3")
