"""QUANTIZE and DEQUANTIZE against tflite-micro on small single-op models."""

from __future__ import annotations

import numpy as np
import pytest

from autotune.errors import UnsupportedOpError
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.reference.executor import Interpreter, run_model
from tests.conftest import assert_matches_oracle


def unary_model(
    op: str, in_dtype: str, out_dtype: str, in_q: tuple | None, out_q: tuple | None, shape=(2, 50)
) -> bytes:
    b = ModelBuilder()
    x = b.tensor("x", shape, in_dtype, *(in_q or (None, None)))
    y = b.tensor("y", shape, out_dtype, *(out_q or (None, None)))
    b.op(op, [x], [y])
    b.inputs(x)
    b.outputs(y)
    return b.build()


def integer_calls(dtype: str, shape: tuple[int, ...]) -> list[list[np.ndarray]]:
    info = np.iinfo(dtype)
    calls = []
    for seed in (1, 2, 3):
        rng = np.random.default_rng(seed)
        calls.append([rng.integers(info.min, info.max + 1, shape).astype(dtype)])
    calls.append([np.full(shape, info.min, dtype)])
    calls.append([np.full(shape, info.max, dtype)])
    # Every code once (int16: a strided sweep), so that each rounding case shows up.
    sweep = np.arange(info.min, info.max + 1, max(1, (info.max - info.min + 1) // 4096))
    calls.append([np.resize(sweep, shape).astype(dtype)])
    return calls


def float_calls(scale: float, zero_point: int, shape: tuple[int, ...]) -> list[list[np.ndarray]]:
    n = int(np.prod(shape))
    rng = np.random.default_rng(0)
    calls = [[rng.normal(0, 60 * scale, shape).astype(np.float32)] for _ in range(3)]
    # Exact halves: round half away from zero decides every element.
    halves = (np.arange(n) - n // 2 + 0.5) * np.float32(scale)
    calls.append([halves.reshape(shape).astype(np.float32)])
    # Out of range, huge, infinite and signed zero.
    special = np.resize(
        np.array([1e3, -1e3, 3e9, -3e9, 1e30, -1e30, np.inf, -np.inf, 0.0, -0.0], np.float32),
        n,
    )
    calls.append([special.reshape(shape)])
    return calls


REQUANTIZE = {
    "int8-to-int8-smaller-scale": ("int8", "int8", (0.1, 3), (0.07, -20)),
    "int8-to-int8-larger-scale": ("int8", "int8", (0.02, -5), (0.09, 7)),
    "int8-to-int8-same-scale": ("int8", "int8", (0.05, 10), (0.05, -10)),
    "int8-to-int16": ("int8", "int16", (0.05, 4), (0.0005, 0)),
    "int16-to-int8": ("int16", "int8", (0.0004, 0), (0.1, -3)),
    "int16-to-int16": ("int16", "int16", (0.0004, 0), (0.0007, 0)),
    # A uint8 model interface: QUANTIZE from a uint8 input, and back to uint8 at the end.
    "uint8-to-int8-shift": ("uint8", "int8", (0.05, 128), (0.05, 0)),
    "uint8-to-int8": ("uint8", "int8", (0.031, 120), (0.07, -3)),
    "int8-to-uint8": ("int8", "uint8", (0.06, -10), (0.05, 131)),
    # int32 ends: the keyword benchmark's last layer (SOFTMAX's int16 to int32), the other
    # pairs TFLM's quantize has, and a scale ratio whose left shift wraps int32 (as TFLM).
    "int16-to-int32": ("int16", "int32", (1.0 / 65536, -32768), (1.0 / 32768, 0)),
    "int8-to-int32": ("int8", "int32", (0.05, 4), (0.0003, -7)),
    "int16-to-int32-wrapping": ("int16", "int32", (1.0, 3), (1e-6, 2_000_000_000)),
    "int32-to-int8": ("int32", "int8", (1e-9, 5), (0.03, -4)),
    "int32-to-int16": ("int32", "int16", (1e-9, -1000), (1e-4, 3)),
}


@pytest.mark.parametrize("case", REQUANTIZE.values(), ids=REQUANTIZE.keys())
def test_requantize(case: tuple) -> None:
    in_dtype, out_dtype, in_q, out_q = case
    model = unary_model("QUANTIZE", in_dtype, out_dtype, in_q, out_q)
    calls = integer_calls(in_dtype, (2, 50))
    assert assert_matches_oracle(model, calls) == "tflite-micro"
    out = run_model(parse_model(model), calls[0])[0]
    info = np.iinfo(out_dtype)
    assert np.mean((out == info.min) | (out == info.max)) < 0.5
    assert np.unique(out).size > 20


FROM_FLOAT = {
    "int8": ("int8", (0.05, -7)),
    "int8-tiny-scale": ("int8", (1e-4, 100)),
    "int8-odd-scale": ("int8", (0.0371, -128)),
    "int16": ("int16", (0.001, 0)),
}


@pytest.mark.parametrize("case", FROM_FLOAT.values(), ids=FROM_FLOAT.keys())
def test_quantize_float(case: tuple) -> None:
    out_dtype, out_q = case
    model = unary_model("QUANTIZE", "float32", out_dtype, None, out_q)
    calls = float_calls(out_q[0], out_q[1], (2, 50))
    assert assert_matches_oracle(model, calls) == "tflite-micro"
    out = run_model(parse_model(model), calls[3])[0]
    assert np.unique(out).size > 20


DEQUANTIZE = {
    "int8": ("int8", (0.05, -7)),
    "int8-odd-scale": ("int8", (0.0371, 127)),
    "int16": ("int16", (0.00031, 0)),
    "uint8": ("uint8", (0.0371, 131)),
}


@pytest.mark.parametrize("case", DEQUANTIZE.values(), ids=DEQUANTIZE.keys())
def test_dequantize(case: tuple) -> None:
    in_dtype, in_q = case
    model = unary_model("DEQUANTIZE", in_dtype, "float32", in_q, None)
    assert assert_matches_oracle(model, integer_calls(in_dtype, (2, 50))) == "tflite-micro"


@pytest.mark.parametrize(
    ("pair"), [("float32", "uint8"), ("uint8", "uint8"), ("uint8", "int16"), ("int16", "uint8")]
)
def test_type_pairs_tflm_lacks_are_rejected(pair: tuple[str, str]) -> None:
    in_q = None if pair[0] == "float32" else (0.05, 0)
    model = unary_model("QUANTIZE", pair[0], pair[1], in_q, (0.05, 0))
    with pytest.raises(UnsupportedOpError, match=r"op 0 \(QUANTIZE\)"):
        Interpreter(parse_model(model))


def test_per_channel_quantize_is_rejected() -> None:
    model = unary_model("QUANTIZE", "float32", "int8", None, (np.array([0.1, 0.2]), [0, 0]))
    with pytest.raises(UnsupportedOpError, match=r"op 0 \(QUANTIZE\).*per-channel"):
        Interpreter(parse_model(model))
