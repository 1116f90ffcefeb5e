"""SOFTMAX, LOGISTIC and TANH with TFLM's integer semantics.

int8 LOGISTIC and TANH rescale the input to Q4.27 and evaluate gemmlowp's
fixed-point logistic/tanh; int8 SOFTMAX evaluates gemmlowp's exp on Q5.26
differences from the row maximum and one Newton-Raphson reciprocal per row.
int16 LOGISTIC and TANH (and the LSTM's gates, which reuse `sigmoid_int16` and
`tanh_int16`) interpolate a 256-entry sigmoid table instead. Parameters are
derived the way the ops' Prepare functions derive them, so a model TFLM
rejects at Prepare is rejected here with the same reason.
"""

from __future__ import annotations

import numpy as np

from autotune.model.graph import Tensor
from autotune.reference import gemmlowp
from autotune.reference.fixedpoint import (
    calculate_input_radius,
    checked_log2,
    frexp_multiplier,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_greater_than_one,
    quantize_multiplier_greater_than_one,
    rounding_divide_by_pot,
    tflite_round,
    wrap_int32,
)
from autotune.reference.registry import OpContext, reference_op

# sigmoid(i / 24) in unsigned Q0.16 for i = 0..255 (the last entry saturated): the
# table TFLite's int16 LOGISTIC/TANH and the integer LSTM interpolate. The values do
# not follow one rounding rule, so they are listed rather than computed.
SIGMOID_TABLE_U16 = np.array(
    [
        32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149,
        40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369,
        47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169,
        53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
        57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370,
        60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302,
        62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
        63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
        64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786,
        64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079,
        65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
        65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
        65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
        65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
        65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498,
        65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
        65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522,
        65523, 65523, 65524, 65524, 65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528,
        65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531,
        65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
        65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
        65534, 65534, 65534, 65535,
    ],
    dtype=np.int64,
)  # fmt: skip

_INPUT_INTEGER_BITS_INT8 = 4  # int8 LOGISTIC/TANH work on Q4.27
_SOFTMAX_DIFF_INTEGER_BITS = 5  # int8 SOFTMAX works on Q5.26 differences
_SOFTMAX_ACCUM_INTEGER_BITS = 12  # and sums exps in Q12.19


# ---------------------------------------------------------------- int16 table functions


def int16_input_scaling(multiplier: int, left_shift: int) -> tuple[int, int]:
    """(m, shift) of the int16 kernels' input rescaling (x * m + round) >> shift.

    multiplier 0 marks a power-of-two input scale: the rescaling is then x * (3 << shift).
    Public so that generated C applies exactly these constants.
    """
    if multiplier == 0:
        return 3 << left_shift, 0
    return multiplier, left_shift


def _scale_int16_input(x: np.ndarray, multiplier: int, left_shift: int) -> np.ndarray:
    """The input rescaling shared by the int16 kernels: (x * m + round) >> shift."""
    multiplier, left_shift = int16_input_scaling(multiplier, left_shift)
    rounding = (1 << (left_shift - 1)) if left_shift > 0 else 0
    return (np.asarray(x, dtype=np.int64) * multiplier + rounding) >> left_shift


def sigmoid_int16(x: np.ndarray, multiplier: int = 0, left_shift: int = 0) -> np.ndarray:
    """reference_integer_ops::Logistic for int16: Q0.15 output from the interpolated table.

    multiplier=0, left_shift=0 is the LSTM's case: a Q3.12 input.
    """
    v = _scale_int16_input(x, multiplier, left_shift)
    mag = np.abs(v)
    uh = mag >> 9
    saturated = uh >= 255
    idx = np.minimum(uh, 254)
    ua = SIGMOID_TABLE_U16[idx]
    ub = SIGMOID_TABLE_U16[idx + 1]
    result = np.where(saturated, 0x7FFF << 10, (ua << 9) + (mag & 0x1FF) * (ub - ua))
    result = np.where(v >= 0, result + (1 << 9), (1 << 25) - result + (1 << 9) - 1)
    return (result >> 10).astype(np.int16)


def tanh_int16(x: np.ndarray, multiplier: int = 0, left_shift: int = 0) -> np.ndarray:
    """reference_integer_ops::Tanh for int16: tanh(x) = 2 sigmoid(2x) - 1 from the same table."""
    v = _scale_int16_input(x, multiplier, left_shift)
    mag = np.abs(v)
    uh = mag >> 8
    saturated = uh >= 255
    idx = np.minimum(uh, 254)
    ua = SIGMOID_TABLE_U16[idx]
    ub = SIGMOID_TABLE_U16[idx + 1]
    result = np.where(saturated, 0xFFFF << 8, (ua << 8) + (mag & 0xFF) * (ub - ua))
    result = np.where(v >= 0, result - (1 << 23) + (1 << 7), -result + (1 << 23) + (1 << 7) - 1)
    return (result >> 8).astype(np.int16)  # C stores the int32 into int16 (wraps)


def _int16_table_params(t: Tensor, pot_shifts: tuple[int, ...]) -> tuple[int, int]:
    """(multiplier, left_shift) of the int16 LOGISTIC/TANH Prepare for input tensor t."""
    log2, is_pot = checked_log2(t.scale)
    left_shift = 12 + log2  # (15 - 3 integer bits) + log2(scale)
    if is_pot and left_shift in pot_shifts:
        return 0, left_shift
    multiplier = float(np.float32(t.scale)) * 4096.0 * 3.0
    left_shift = 0
    while multiplier <= 32767.0 / 2.0 and left_shift <= 30:
        left_shift += 1
        multiplier *= 2.0
    return int(multiplier), left_shift


def int16_table_params(x: Tensor, op: str) -> tuple[int, int]:
    """(multiplier, left_shift) of int16 LOGISTIC or TANH for input x (see int16_input_scaling)."""
    return _int16_table_params(x, (0,) if op == "LOGISTIC" else (0, 1))


def _check_int16_table_op(x: Tensor, y: Tensor) -> str | None:
    if x.zero_point != 0 or y.zero_point != 0:
        return "int16 input and output need zero point 0"
    log2, is_pot = checked_log2(y.scale)
    if not is_pot or log2 != -15:
        return f"int16 output scale must be 2^-15, got {y.scale:g}"
    return None


# ---------------------------------------------------------------- LOGISTIC and TANH


def _check_unary(ctx: OpContext, op: str) -> str | None:
    x, y = ctx.input(0), ctx.output(0)
    if x is None:
        return "input is required"
    if x.dtype != y.dtype:
        return f"input is {x.dtype} but output is {y.dtype}"
    if x.dtype not in ("int8", "int16"):
        kind = "float" if x.dtype.startswith("float") else x.dtype
        return f"{kind} tensor '{x.name}' ({x.dtype}); supported: int8, int16"
    if x.quant is None or y.quant is None:
        return "input and output must be quantized"
    if x.quant.per_channel:
        return "per-channel input quantization"
    if x.dtype == "int16":
        return _check_int16_table_op(x, y)
    if op == "LOGISTIC" and y.zero_point != -128:
        return f"int8 output zero point must be -128, got {y.zero_point}"
    return None


def _int8_fixed_point_params(x: Tensor) -> tuple[int, int, int]:
    """(multiplier, shift, radius): input scale to Q4.27, and where the output saturates."""
    multiplier, shift = frexp_multiplier(
        float(np.float32(x.scale)) * float(1 << (31 - _INPUT_INTEGER_BITS_INT8))
    )
    radius = calculate_input_radius(_INPUT_INTEGER_BITS_INT8, shift)
    return multiplier, shift, radius


def _int8_activation(x_t: Tensor, x: np.ndarray, op: str) -> np.ndarray:
    multiplier, shift, radius = _int8_fixed_point_params(x_t)
    centered = x.astype(np.int64) - x_t.zero_point
    inside = (centered > -radius) & (centered < radius)
    q4 = multiply_by_quantized_multiplier(np.where(inside, centered, 0), multiplier, shift)
    if op == "LOGISTIC":
        q0 = gemmlowp.logistic(q4, _INPUT_INTEGER_BITS_INT8)
        out = np.clip(rounding_divide_by_pot(q0, 23) - 128, -128, 127)  # scale 1/256, zp -128
    else:
        q0 = gemmlowp.tanh(q4, _INPUT_INTEGER_BITS_INT8)
        out = np.clip(rounding_divide_by_pot(q0, 24), -128, 127)  # scale 1/128, zp 0
    out = np.where(centered <= -radius, -128, np.where(centered >= radius, 127, out))
    return out.astype(np.int8)


def int8_activation_table(x_t: Tensor, op: str) -> np.ndarray:
    """int8 LOGISTIC or TANH of every input value -128..127: a lookup table for generated C."""
    return _int8_activation(x_t, np.arange(-128, 128, dtype=np.int64), op)


def check_logistic(ctx: OpContext) -> str | None:
    return _check_unary(ctx, "LOGISTIC")


def check_tanh(ctx: OpContext) -> str | None:
    return _check_unary(ctx, "TANH")


@reference_op("LOGISTIC", check=check_logistic)
def logistic(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x = args[0]
    x_t = ctx.input(0)
    assert x is not None and x_t is not None
    if x_t.dtype == "int16":
        return [sigmoid_int16(x, *int16_table_params(x_t, "LOGISTIC"))]
    return [_int8_activation(x_t, x, "LOGISTIC")]


@reference_op("TANH", check=check_tanh)
def tanh(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x = args[0]
    x_t = ctx.input(0)
    assert x is not None and x_t is not None
    if x_t.dtype == "int16":
        return [tanh_int16(x, *int16_table_params(x_t, "TANH"))]
    return [_int8_activation(x_t, x, "TANH")]


# ---------------------------------------------------------------- SOFTMAX


def check_softmax(ctx: OpContext) -> str | None:
    x, y = ctx.input(0), ctx.output(0)
    if x is None:
        return "input is required"
    if x.dtype != "int8":
        kind = "float" if x.dtype.startswith("float") else x.dtype
        return f"{kind} input '{x.name}' ({x.dtype}); supported: int8"
    if x.quant is None or y.quant is None:
        return "input and output must be quantized"
    if not x.shape:
        return "input must have at least one dimension"
    if y.dtype == "int8":
        if y.zero_point != -128 or np.float32(y.scale) != np.float32(1.0) / np.float32(256):
            return (
                f"int8 output must have scale 1/256 and zero point -128, got {y.quant.describe()}"
            )
    elif y.dtype == "int16":
        target = np.float32(1.0) / np.float32(65536)
        if y.zero_point != -32768 or abs(np.float32(y.scale) - target) > 0.001 * target:
            return f"int16 output must have scale 1/65536 and zero point -32768, got {y.quant.describe()}"
    else:
        return f"output '{y.name}' is {y.dtype}; supported: int8, int16"
    beta = float(ctx.options.get("beta", 1.0))
    if softmax_below_range(x.scale, beta) and (
        softmax_uniform_value(x.shape[-1], y.scale, y.zero_point, y.dtype) is None
    ):
        return (
            f"beta x input scale ({beta:g} x {x.scale:.3g}) is below what TFLM's softmax accepts, "
            "and 1/depth lies on a rounding boundary"
        )
    return None


def _softmax_real_multiplier(input_scale: float, beta: float) -> float:
    return min(
        float(beta)
        * float(np.float32(input_scale))
        * float(1 << (31 - _SOFTMAX_DIFF_INTEGER_BITS)),
        float((1 << 31) - 1),
    )


def softmax_below_range(input_scale: float, beta: float) -> bool:
    """True when beta * input_scale is too small for TFLM's fixed-point softmax.

    TFLM (and TFLite's reference kernels) abort preparing such a layer. At that scale
    255 input steps span less than 2^-18 in real terms, so every row's inputs are
    indistinguishable and every probability is 1/depth to within 4 parts per million.
    """
    return _softmax_real_multiplier(input_scale, beta) <= 1.0


def softmax_uniform_value(
    depth: int, out_scale: float, out_zero_point: int, out_dtype: str
) -> int | None:
    """The one output value of a below-range softmax: 1/depth quantized; None when
    1/depth lies so close to a rounding boundary that the 4 ppm spread could cross it."""
    q = (1.0 / depth) / float(np.float32(out_scale))
    frac = q - np.floor(q)
    if abs(frac - 0.5) < 1e-3 * max(1.0, q):
        return None
    info = np.iinfo(np.dtype(out_dtype))
    return int(np.clip(int(tflite_round(q)) + out_zero_point, info.min, info.max))


def softmax_params(input_scale: float, beta: float) -> tuple[int, int, int]:
    """(multiplier, left_shift, diff_min) of PreprocessSoftmaxScaling for int8 input."""
    real = _softmax_real_multiplier(input_scale, beta)
    multiplier, left_shift = quantize_multiplier_greater_than_one(real)
    diff_min = -calculate_input_radius(_SOFTMAX_DIFF_INTEGER_BITS, left_shift)
    return multiplier, left_shift, diff_min


def softmax_int8(
    x: np.ndarray, input_scale: float, beta: float, out_dtype: str = "int8"
) -> np.ndarray:
    """reference_ops::Softmax for int8 input over the last axis; int8 or int16 output.

    A row whose sum of exps reaches 512 (over 511 elements tied at the maximum)
    asks gemmlowp's RoundingDivideByPOT for a 32-bit shift: the tflite-micro wheel
    (built with asserts) aborts there, a release build's result depends on the
    compiler and core. Here such elements round to zero, the natural continuation.
    """
    multiplier, left_shift, diff_min = softmax_params(input_scale, beta)
    depth = x.shape[-1]
    rows = x.reshape(-1, depth).astype(np.int64)
    diff = rows - rows.max(axis=1, keepdims=True)
    used = diff >= diff_min
    scaled = multiply_by_quantized_multiplier_greater_than_one(
        np.where(used, diff, 0), multiplier, left_shift
    )
    exps = gemmlowp.exp_on_negative_values(scaled, _SOFTMAX_DIFF_INTEGER_BITS)
    in_accum = gemmlowp.rescale(exps, 0, _SOFTMAX_ACCUM_INTEGER_BITS)
    sums = wrap_int32(np.where(used, in_accum, 0).sum(axis=1, keepdims=True))  # int32 adds
    reciprocal, bits_over_unit = gemmlowp.get_reciprocal(sums, _SOFTMAX_ACCUM_INTEGER_BITS)
    info = np.iinfo(np.dtype(out_dtype))
    out_bits = 8 * np.dtype(out_dtype).itemsize
    scaled_exps = gemmlowp.mul(reciprocal, exps)
    unsat = rounding_divide_by_pot(scaled_exps, bits_over_unit + 31 - out_bits)
    out = np.clip(unsat + int(info.min), info.min, info.max)
    out = np.where(used, out, info.min)
    return out.reshape(x.shape).astype(out_dtype)


@reference_op("SOFTMAX", check=check_softmax)
def softmax(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x = args[0]
    x_t, y = ctx.input(0), ctx.output(0)
    assert x is not None and x_t is not None
    beta = float(ctx.options.get("beta", 1.0))
    if softmax_below_range(x_t.scale, beta):
        value = softmax_uniform_value(x.shape[-1], y.scale, y.zero_point, y.dtype)
        return [np.full(x.shape, value, dtype=y.dtype)]
    return [softmax_int8(x, x_t.scale, beta, y.dtype)]
