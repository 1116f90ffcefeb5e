"""Element-wise int8 ops of real models: RELU, RELU6, HARD_SWISH, MAXIMUM and MINIMUM,
with tflite-micro's arithmetic (activations.cc, hard_swish.cc, maximum_minimum.cc).

RELU requantizes (input / output scale in double) and clamps at the output's zero
point; RELU6 does not requantize at all (TFLM clamps the raw input between its zero
point and 6.0 on the input's scale); HARD_SWISH is TFLite's 16-bit fixed-point
x * relu6(x + 3) / 6; MAXIMUM and MINIMUM compare raw values with broadcasting. Every
unary op here is a pure function of one int8 value, so the C is a 256-entry table the
reference computes (`emit_table`); MAXIMUM and MINIMUM share ADD's broadcasting loops.
"""

from __future__ import annotations

import numpy as np

from autotune.emit.layer_code import LayerCode
from autotune.emit.ops.elementwise import binary
from autotune.emit.table import table_layer
from autotune.model.graph import Graph, Layer, Tensor
from autotune.opdef import Op
from autotune.reference.fixedpoint import (
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    tflite_round,
)
from autotune.reference.registry import DATA_TYPES, OpContext, require_dtypes


def _check_unary(ctx: OpContext) -> str | None:
    x, y = ctx.input(0), ctx.output(0)
    if x is None:
        return "input is required"
    reason = require_dtypes(x, y)
    if reason:
        return reason
    if x.quant is None or y.quant is None or x.quant.per_channel or y.quant.per_channel:
        return "input and output need per-tensor quantization"
    if x.shape != y.shape:
        return f"output shape {list(y.shape)} differs from the input's {list(x.shape)}"
    return None


# --- RELU / RELU6 ----------------------------------------------------------------------


def relu_params(x: Tensor, y: Tensor) -> tuple[int, int, int, int]:
    """CalculateReluOpData: multiplier, shift, and the output clamp [zp + round(0/s), 127]."""
    multiplier, shift = quantize_multiplier(float(np.float32(x.scale)) / float(np.float32(y.scale)))
    zero = y.zero_point + int(tflite_round(float(np.float32(0.0) / np.float32(y.scale))))
    return multiplier, shift, max(-128, zero), 127


def relu(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x, (x_t, y) = args[0], (ctx.input(0), ctx.output(0))
    assert x is not None and x_t is not None
    multiplier, shift, lo, hi = relu_params(x_t, y)
    scaled = multiply_by_quantized_multiplier(
        x.astype(np.int64) - x_t.zero_point, multiplier, shift
    )
    return [np.clip(scaled + y.zero_point, lo, hi).astype(np.int8)]


def relu6_bounds(x: Tensor) -> tuple[int, int]:
    """Relu6Prepare: the input's zero point and 6.0 quantized on the input's scale."""
    six = int(tflite_round(float(np.float32(6.0) / np.float32(x.scale)))) + x.zero_point
    return x.zero_point, int(np.clip(six, -128, 127))


def relu6(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x, x_t = args[0], ctx.input(0)
    assert x is not None and x_t is not None
    zero, six = relu6_bounds(x_t)
    return [np.where(x > six, six, np.where(x < zero, zero, x)).astype(np.int8)]


# --- HARD_SWISH -------------------------------------------------------------------------


def _downscale_to_int16(multiplier: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    if multiplier >= 2**31 - 1 - (1 << 15):
        return 32767
    return (multiplier + (1 << 15)) >> 16


def hard_swish_params(x: Tensor, y: Tensor) -> tuple[int, int, int, int]:
    """HardSwishPrepare: (reluish multiplier, exponent, output multiplier, exponent); the
    scales are divided in float32, as TFLM does, then widened."""
    hires = np.float32(1.0 / 128.0) * np.float32(x.scale)
    reluish_scale = np.float32(3.0) / np.float32(32768.0)
    out_m, out_e = quantize_multiplier(float(np.float32(hires / np.float32(y.scale))))
    rel_m, rel_e = quantize_multiplier(float(np.float32(hires / reluish_scale)))
    return _downscale_to_int16(rel_m), rel_e, _downscale_to_int16(out_m), out_e


def _srdhm16(a: np.ndarray, b: int) -> np.ndarray:
    """gemmlowp's int16 SaturatingRoundingDoublingHighMul."""
    ab = a.astype(np.int64) * b
    nudge = np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    total = ab + nudge
    high = np.where(total >= 0, total // (1 << 15), -((-total) // (1 << 15)))
    return np.where((a == -32768) & (b == -32768), 32767, high)


def _sdhm16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TFLite's int16 SaturatingDoublingHighMul: the product / 2^15, truncated."""
    ab = a.astype(np.int64) * b.astype(np.int64)
    high = np.where(ab >= 0, ab // (1 << 15), -((-ab) // (1 << 15)))
    return np.where((a == -32768) & (b == -32768), 32767, high)


def _saturating_left_shift16(a: np.ndarray, shift: int) -> np.ndarray:
    return np.clip(a.astype(np.int64) * (1 << shift), -32768, 32767)


def _rounding_divide16(x: np.ndarray, exponent: int) -> np.ndarray:
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def hard_swish_int8(x: np.ndarray, x_t: Tensor, y: Tensor) -> np.ndarray:
    rel_m, rel_e, out_m, out_e = hard_swish_params(x_t, y)
    value = x.astype(np.int64) - x_t.zero_point
    hires = value * (1 << 7)
    preshift = _srdhm16(hires, out_m)
    reluish = hires
    if rel_e > 0:
        reluish = _saturating_left_shift16(reluish, rel_e - 1)
    reluish = _srdhm16(reluish, rel_m)
    if rel_e > 0:
        reluish = _saturating_left_shift16(reluish, 1)
    if rel_e < 0:
        reluish = _rounding_divide16(reluish, -rel_e)
    reluish = (reluish + (1 << 15)) >> 1
    out = _rounding_divide16(_sdhm16(reluish, preshift), -out_e) + y.zero_point
    return np.clip(out, -128, 127).astype(np.int8)


def check_hard_swish(ctx: OpContext) -> str | None:
    reason = _check_unary(ctx)
    if reason:
        return reason
    x, y = ctx.input(0), ctx.output(0)
    assert x is not None
    if hard_swish_params(x, y)[3] > 0:
        return "the output scale is below 1/128 of the input's (TFLM's Prepare refuses it)"
    return None


def hard_swish(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x, x_t = args[0], ctx.input(0)
    assert x is not None and x_t is not None
    return [hard_swish_int8(x, x_t, ctx.output(0))]


def emit_table(graph: Graph, layer: Layer, function: str) -> LayerCode:
    """RELU, RELU6 and HARD_SWISH in C: a table the reference kernel fills."""
    kernel, check = _UNARY[layer.op]
    return table_layer(graph, layer, function, kernel, check)


# --- MAXIMUM / MINIMUM ------------------------------------------------------------------


def check_max_min(ctx: OpContext) -> str | None:
    a, b, y = ctx.input(0), ctx.input(1), ctx.output(0)
    if a is None or b is None:
        return "two inputs are required"
    reason = require_dtypes(a, b, y, allowed=DATA_TYPES)
    if reason:
        return reason
    if not a.dtype == b.dtype == y.dtype:
        return "inputs and output must have one type"
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        return f"shapes {list(a.shape)} and {list(b.shape)} do not broadcast"
    if tuple(shape) != tuple(y.shape) or len(shape) > 5:
        return f"output shape {list(y.shape)}; broadcasting gives {list(shape)} (up to 5-D)"
    return None


# TFLM compares `x1 > x2 ? x1 : x2` (and `<` for MINIMUM): on float32 a NaN in the first
# operand gives the second, unlike numpy's maximum, which spreads NaN; the C does the same.
def maximum(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    a, b = args
    assert a is not None and b is not None
    return [np.where(a > b, a, b).astype(a.dtype)]


def minimum(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    a, b = args
    assert a is not None and b is not None
    return [np.where(a < b, a, b).astype(a.dtype)]


_UNARY = {
    "RELU": (relu, _check_unary),
    "RELU6": (relu6, _check_unary),
    "HARD_SWISH": (hard_swish, check_hard_swish),
}

OPS = [
    Op("RELU", relu, _check_unary, emitter=emit_table, description="int8 ReLU (requantizes)"),
    Op("RELU6", relu6, _check_unary, emitter=emit_table, description="int8 ReLU6 (raw clamp)"),
    Op(
        "HARD_SWISH",
        hard_swish,
        check_hard_swish,
        emitter=emit_table,
        description="int8 hard swish (16-bit fixed point)",
    ),
    Op("MAXIMUM", maximum, check_max_min, emitter=binary, description="raw maximum"),
    Op("MINIMUM", minimum, check_max_min, emitter=binary, description="raw minimum"),
]
