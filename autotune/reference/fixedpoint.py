"""TFLM's integer arithmetic (gemmlowp fixed point), vectorized over int64 numpy arrays.

Every function matches the C helpers bit for bit, including their rounding
(half away from zero in the nudges) and saturation. Values are carried in
int64 so that intermediate products never wrap silently.
"""

from __future__ import annotations

import math

import numpy as np

from autotune.errors import ModelError

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def tflite_round(x: float) -> float:
    """std::round: halves go away from zero (Python's round() goes to even)."""
    if not math.isfinite(x):
        raise _out_of_range(x)
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def _out_of_range(x: float) -> ModelError:
    # Finite scales whose quotient or product overflows (or underflows to a division by
    # zero): TFLM would convert inf or NaN to an integer, which C leaves undefined.
    return ModelError(f"quantization scales too far apart: a derived value is {x}")


def quantize_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier: real = m * 2^(shift-31) with m in [2^30, 2^31)."""
    if not math.isfinite(real):
        raise _out_of_range(real)
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(tflite_round(q * (1 << 31)))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift = 0
        q_fixed = 0
    if shift > 30:  # the single-rounding path cannot shift further; TFLM saturates
        shift = 30
        q_fixed = (1 << 31) - 1
    return q_fixed, shift


def quantize_multiplier_smaller_than_one(real: float) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: same, for 0 < real < 1 (shift <= 0)."""
    multiplier, shift = quantize_multiplier(real)
    return multiplier, shift


def _i64(x: np.ndarray | int) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap_int32(x: np.ndarray | int) -> np.ndarray:
    """Two's-complement wrap to int32, as the C code's int32 arithmetic does."""
    return ((_i64(x) + 2**31) & 0xFFFFFFFF) - 2**31


def saturating_rounding_doubling_high_mul(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    a = _i64(a)
    b = _i64(b)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    total = ab + nudge
    # C integer division truncates toward zero.
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))
    return np.where(overflow, INT32_MAX, high)


def rounding_divide_by_pot(x: np.ndarray | int, exponent: np.ndarray | int) -> np.ndarray:
    x = _i64(x)
    exponent = _i64(exponent)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(
    x: np.ndarray | int, multiplier: np.ndarray | int, shift: np.ndarray | int
) -> np.ndarray:
    """MultiplyByQuantizedMultiplier (double rounding), elementwise; shift may be per channel."""
    shift = _i64(shift)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = wrap_int32(_i64(x) * (np.int64(1) << left))
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def multiply_by_quantized_multiplier_smaller_than_one_exp(
    x: np.ndarray | int, multiplier: np.ndarray | int, left_shift: np.ndarray | int
) -> np.ndarray:
    return rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x, multiplier), -_i64(left_shift)
    )


def saturate(x: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
    info = np.iinfo(np.dtype(dtype))
    return np.clip(x, info.min, info.max).astype(dtype)


# --- Helpers of TFLite's kernels/internal (common.h, quantization_util.cc) used by the
# --- activation and LSTM kernels.


def frexp_multiplier(real: float) -> tuple[int, int]:
    """The frexp decomposition the LOGISTIC/TANH Prepare functions use: no clamping of the shift."""
    q, shift = math.frexp(real)
    return int(tflite_round(q * (1 << 31))), shift


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """QuantizeMultiplierGreaterThanOne (double-rounding build): a shift of 31 is kept."""
    if real <= 1.0:
        raise ValueError(f"multiplier {real} must be greater than one")
    q, shift = math.frexp(real)
    q_fixed = int(tflite_round(q * (1 << 31)))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    return q_fixed, shift


def multiply_by_quantized_multiplier_greater_than_one(
    x: np.ndarray | int, multiplier: int, left_shift: int
) -> np.ndarray:
    """MultiplyByQuantizedMultiplierGreaterThanOne: shift left (int32 wrap), then the high mul."""
    return saturating_rounding_doubling_high_mul(wrap_int32(_i64(x) << left_shift), multiplier)


def calculate_input_radius(
    input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31
) -> int:
    """CalculateInputRadius: the largest input magnitude whose rescaled value stays representable."""
    max_rescaled = (
        1.0
        * ((1 << input_integer_bits) - 1)
        * float(1 << (total_signed_bits - input_integer_bits))
        / math.ldexp(1.0, input_left_shift)
    )
    return math.floor(max_rescaled)


def checked_log2(x: float) -> tuple[int, bool]:
    """CheckedLog2 in float32: the rounded log2 and whether x is (nearly) a power of two."""
    x_log2 = np.float32(np.log(np.float32(x))) * np.float32(1.0 / math.log(2.0))
    rounded = np.float32(tflite_round(float(x_log2)))
    return int(rounded), bool(abs(np.float32(x_log2 - rounded)) < np.float32(1e-3))


def count_leading_zeros_u32(x: np.ndarray) -> np.ndarray:
    """Leading zero bits of each value read as uint32 (32 for zero)."""
    u = _i64(x) & 0xFFFFFFFF
    _, exponent = np.frexp(u.astype(np.float64))  # exact: u < 2^53
    return np.where(u == 0, 32, 32 - exponent).astype(np.int64)
