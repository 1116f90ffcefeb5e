"""gemmlowp's fixed-point transcendental functions, vectorized over int64 numpy arrays.

TFLM's int8 SOFTMAX, LOGISTIC and TANH evaluate exp, 1/(1+x), logistic and tanh
with gemmlowp (fixedpoint/fixedpoint.h) on int32 raw values. A fixed-point
value here is its raw int32 carried in an int64 array plus a number of integer
bits that the caller tracks: Q(k).(31-k) holds raw / 2^(31-k). Every step
repeats gemmlowp's arithmetic (saturating rounding doubling high multiply,
rounding shifts, saturating left shifts, the constants of its polynomial and
Newton-Raphson iterations), so results are bit-identical to the C code. None of
the intermediate sums can leave the int32 range for inputs in the documented
domains, which is why plain int64 additions stand in for gemmlowp's int32 ones.
"""

from __future__ import annotations

import numpy as np

from autotune.reference.fixedpoint import (
    INT32_MAX,
    INT32_MIN,
    count_leading_zeros_u32,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap_int32,
)

Raw = np.ndarray  # int64 array of int32 raw fixed-point values

# Fixed-point constants of gemmlowp (raw Q0.31 unless stated), each the rounded
# value of the real number in the comment.
_EXP_MINUS_ONE_EIGHTH = 1895147668  # exp(-1/8)
_ONE_THIRD = 715827883  # 1/3
_48_OVER_17_Q2 = 1515870810  # 48/17 in Q2.29
_NEG_32_OVER_17_Q2 = -1010580540  # -32/17 in Q2.29
# exp(-2^k) for k = -2 .. 4, applied by the barrel shifter of exp_on_negative_values.
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))  # fmt: skip


def _i64(x: np.ndarray | int) -> Raw:
    return np.asarray(x, dtype=np.int64)


def one(integer_bits: int) -> int:
    """The raw value of 1.0; in Q0.31, where 1.0 is not representable, the largest value."""
    return INT32_MAX if integer_bits == 0 else 1 << (31 - integer_bits)


def constant_pot(exponent: int, integer_bits: int) -> int:
    """The raw value of 2^exponent in Q(integer_bits)."""
    return 1 << (31 - integer_bits + exponent)


def mul(a: Raw, b: Raw | int) -> Raw:
    """Product of two fixed-point values: Q(a) * Q(b) -> Q(a + b), same raw arithmetic."""
    return saturating_rounding_doubling_high_mul(a, b)


def saturating_rounding_multiply_by_pot(x: Raw, exponent: int) -> Raw:
    """x * 2^exponent: a saturating left shift, or a rounding right shift when negative."""
    x = _i64(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    shifted = x << exponent
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, shifted))


def rescale(x: Raw, src_integer_bits: int, dst_integer_bits: int) -> Raw:
    """gemmlowp::Rescale: the same real value in another Q format (saturating)."""
    return saturating_rounding_multiply_by_pot(x, src_integer_bits - dst_integer_bits)


def rounding_half_sum(a: Raw, b: Raw | int) -> Raw:
    """(a + b) / 2 rounded half away from zero, as gemmlowp's int32 specialisation."""
    total = _i64(a) + _i64(b)
    sign = np.where(total >= 0, 1, -1)
    num = total + sign
    return np.where(num >= 0, num // 2, -((-num) // 2))  # C division truncates


def exp_on_interval_between_negative_one_quarter_and_0_excl(a: Raw) -> Raw:
    """exp(a) for a in [-1/4, 0), Q0.31 in and out: a 4th-order Taylor series at -1/8."""
    x = _i64(a) + constant_pot(-3, 0)
    x2 = mul(x, x)
    x3 = mul(x2, x)
    x4 = mul(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    poly = saturating_rounding_multiply_by_pot(mul(x4_over_4 + x3, _ONE_THIRD) + x2, -1)
    return _EXP_MINUS_ONE_EIGHTH + mul(np.int64(_EXP_MINUS_ONE_EIGHTH), x + poly)


def exp_on_negative_values(a: Raw, integer_bits: int) -> Raw:
    """exp(a) for a <= 0 in Q(integer_bits); the result is Q0.31."""
    a = _i64(a)
    fractional_bits = 31 - integer_bits
    quarter = constant_pot(-2, integer_bits)
    a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale(a_mod_quarter_minus_quarter, integer_bits, 0)
    )
    remainder = a_mod_quarter_minus_quarter - a
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = (remainder >> (fractional_bits + exponent)) & 1
            result = np.where(bit != 0, mul(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))  # -32.0
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, one(0), result)


def _newton_reciprocal_q2(half_denominator: Raw) -> Raw:
    """1 / half_denominator in Q2.29 for half_denominator in [1/2, 1) (Q0.31), 3 iterations."""
    x = _48_OVER_17_Q2 + mul(half_denominator, _NEG_32_OVER_17_Q2)
    for _ in range(3):
        half_denominator_times_x = mul(half_denominator, x)
        one_minus = one(2) - half_denominator_times_x
        x = x + rescale(mul(x, one_minus), 4, 2)
    return x


def one_over_one_plus_x_for_x_in_0_1(a: Raw) -> Raw:
    """1 / (1 + a) for a in [0, 1), Q0.31 in and out."""
    half_denominator = rounding_half_sum(a, one(0))
    x = _newton_reciprocal_q2(half_denominator)
    # ExactMulByPot<-1> reinterprets Q2 as Q1 (halving); Rescale<0> then doubles back.
    return rescale(x, 1, 0)


def one_minus_x_over_one_plus_x_for_x_in_0_1(a: Raw) -> Raw:
    """(1 - a) / (1 + a) for a in [0, 1), Q0.31 in and out."""
    half_denominator = rounding_half_sum(a, one(0))
    x = _newton_reciprocal_q2(half_denominator)
    return rescale(x - one(2), 2, 0)


def logistic(a: Raw, integer_bits: int) -> Raw:
    """1 / (1 + exp(-a)) for a in Q(integer_bits); the result is Q0.31."""
    a = _i64(a)
    positive = a > 0
    abs_a = np.where(positive, a, -a)
    if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(-abs_a, integer_bits))
    if_negative = one(0) - if_positive
    result = np.where(positive, if_positive, if_negative)
    return np.where(a == 0, 1 << 30, result)


def tanh(a: Raw, integer_bits: int) -> Raw:
    """tanh(a) for a in Q(integer_bits); the result is Q0.31."""
    a = _i64(a)
    negative = a < 0
    n = np.where(negative, a, -a)  # -|a|
    # ExactMulByPot<1>: the same raw value read with one more integer bit is 2 * n.
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    result = np.where(negative, -t, t)
    return np.where(a == 0, 0, result)


def get_reciprocal(x: np.ndarray, x_integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """GetReciprocal: 1/x for positive x in Q(x_integer_digits) as (Q0.31 raw, num_bits_over_unit)."""
    headroom_plus_one = count_leading_zeros_u32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted = ((np.asarray(x, np.int64) << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31)
    shifted_sum_minus_one = wrap_int32(shifted)
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit
