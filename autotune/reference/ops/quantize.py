"""QUANTIZE and DEQUANTIZE with TFLM's semantics.

float32 -> int8/int16 is AffineQuantize: x / scale in float32, rounded half away
from zero, plus the zero point, clamped. Integer -> integer is Requantize:
(q - in_zp) through one multiplier (in_scale / out_scale in double) plus the
output zero point, clamped (uint8 <-> int8 included: the edges of uint8 models). To
and from int32 the int32 arithmetic wraps, as TFLM's does (an int32 output has no
clamp that could catch it).
Dequantize computes scale * (q - zp) in double and
rounds once to float32.
"""

from __future__ import annotations

import numpy as np

from autotune.model.graph import Tensor
from autotune.reference.fixedpoint import (
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    wrap_int32,
)
from autotune.reference.quant_params import per_tensor_scale, require_quantized
from autotune.reference.registry import OpContext, reference_op, require_dtypes

INTEGER_TYPES = ("int8", "int16")
DEQUANTIZE_TYPES = ("int8", "int16", "uint8")
# Input type -> output types of QUANTIZE, as the tflite-micro kernel takes them (uint8 only
# to and from int8: the edge of a model with a uint8 interface; int32 from and to int8
# and int16: TFLM's keyword benchmark ends in int16 -> int32).
QUANTIZE_PAIRS = {
    "float32": ("int8", "int16"),
    "int8": ("int8", "int16", "int32", "uint8"),
    "int16": ("int8", "int16", "int32"),
    "int32": ("int8", "int16"),
    "uint8": ("int8",),
}


def check_quantize(ctx: OpContext) -> str | None:
    x, y = ctx.input(0), ctx.output(0)
    if x is None:
        return "input is required"
    reason = require_dtypes(x, allowed=tuple(QUANTIZE_PAIRS)) or require_dtypes(
        y, allowed=QUANTIZE_PAIRS[x.dtype]
    )
    if reason:
        return reason
    quantized = [t for t in (x, y) if t.dtype != "float32"]
    return require_quantized(*quantized) or per_tensor_scale(x) or per_tensor_scale(y)


def affine_quantize(x: np.ndarray, scale: float, zero_point: int, dtype: str) -> np.ndarray:
    """AffineQuantize: x / scale in float32 (measured on the wheel), std::round,
    conversion to int32, + zero point, clamp.

    A quotient outside int32 (or NaN) converts to INT32_MIN, as the x86 conversion
    the wheel runs produces for an out-of-range cast.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        q = (np.asarray(x, dtype=np.float32) / np.float32(scale)).astype(np.float64)
        rounded = np.where(q >= 0, np.floor(q + 0.5), -np.floor(-q + 0.5))
        in_range = np.abs(rounded) < 2.0**31  # False for NaN and infinities
    as_int = np.where(in_range, rounded, -(2.0**31)).astype(np.int64)
    info = np.iinfo(np.dtype(dtype))
    return np.clip(wrap_int32(as_int + zero_point), info.min, info.max).astype(dtype)


def requantize_multiplier(x: Tensor, y: Tensor) -> tuple[int, int]:
    """Requantize's multiplier: input_scale / output_scale, each widened to double."""
    return quantize_multiplier(float(np.float32(x.scale)) / float(np.float32(y.scale)))


@reference_op("QUANTIZE", check=check_quantize)
def quantize(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    x_t, y = ctx.input(0), ctx.output(0)
    assert x_t is not None
    if x_t.dtype == "float32":
        return [affine_quantize(x, y.scale, y.zero_point, y.dtype)]
    multiplier, shift = requantize_multiplier(x_t, y)
    centered = wrap_int32(x.astype(np.int64) - x_t.zero_point)
    out = wrap_int32(multiply_by_quantized_multiplier(centered, multiplier, shift) + y.zero_point)
    info = np.iinfo(np.dtype(y.dtype))
    return [np.clip(out, info.min, info.max).astype(y.dtype)]


def check_dequantize(ctx: OpContext) -> str | None:
    x, y = ctx.input(0), ctx.output(0)
    if x is None:
        return "input is required"
    return (
        require_dtypes(x, allowed=DEQUANTIZE_TYPES)
        or require_dtypes(y, allowed=("float32",))
        or require_quantized(x)
        or per_tensor_scale(x)
    )


@reference_op("DEQUANTIZE", check=check_dequantize)
def dequantize(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    x_t = ctx.input(0)
    assert x_t is not None
    centered = x.astype(np.float64) - x_t.zero_point
    return [(float(np.float32(x_t.scale)) * centered).astype(np.float32)]
