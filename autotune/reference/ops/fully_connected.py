"""FULLY_CONNECTED with TFLM's int8 semantics.

The output's last dimension is the number of units and every other output
element is one batch row (TFLM's FlatSizeSkipDim), so keep_num_dims and
batched inputs need no special case: the output tensor's shape says it all.
"""

from __future__ import annotations

import numpy as np

from autotune.reference.fixedpoint import quantize_multiplier
from autotune.reference.quant_params import (
    activation_range,
    per_channel_multipliers,
    per_tensor_scale,
    requantize,
    require_quantized,
)
from autotune.reference.registry import OpContext, reference_op, require_dtypes


def check_fully_connected(ctx: OpContext) -> str | None:
    x, w, bias, y = ctx.input(0), ctx.input(1), ctx.input(2), ctx.output(0)
    if x is None or w is None:
        return "input and weights are required"
    reason = require_dtypes(x, w, y) or require_quantized(x, w, y) or per_tensor_scale(x)
    if reason:
        return reason
    if bias is not None and bias.dtype != "int32":
        return f"bias '{bias.name}' is {bias.dtype}; supported: int32"
    if w.data is None:
        return f"weights '{w.name}' are not constant"
    if ctx.options.get("weights_format", "DEFAULT") != "DEFAULT":
        return f"weights format {ctx.options['weights_format']}; supported: DEFAULT"
    if len(w.shape) != 2:
        return f"weights must be 2-D, got {list(w.shape)}"
    units, depth = w.shape
    if units < 1 or depth < 1:
        return f"weights of shape {list(w.shape)} are empty"
    if bias is not None and bias.size != units:
        return f"bias has {bias.size} values for {units} units"
    assert w.quant is not None
    if w.quant.per_channel and w.quant.scale.size != units:
        return f"weights have {w.quant.scale.size} scales for {units} units"
    if not y.shape or y.shape[-1] != units:
        return f"output's last dimension must be {units}"
    if x.size != (y.size // units) * depth:
        return f"input of {x.size} elements does not make rows of {depth}"
    if not w.quant.per_channel and bias is not None and bias.quant is not None:
        # TFLM's Prepare refuses a per-tensor layer whose bias scale strays from
        # input_scale * filter_scale by more than 2% of the output scale.
        product = float(np.float32(x.scale)) * float(np.float32(w.scale))
        if abs(product - float(np.float32(bias.scale))) / float(np.float32(y.scale)) > 0.02:
            return f"bias scale {bias.scale:g} does not match input * weights scale {product:g}"
    act = ctx.options.get("fused_activation_function", "NONE")
    if act not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
        return f"fused activation {act}; supported: NONE, RELU, RELU6, RELU_N1_TO_1"
    return None


@reference_op("FULLY_CONNECTED", check=check_fully_connected)
def fully_connected(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x, w = args[0], args[1]
    bias = args[2] if len(args) > 2 else None
    assert x is not None and w is not None
    x_t, w_t, y = ctx.input(0), ctx.input(1), ctx.output(0)
    assert x_t is not None and w_t is not None and w_t.quant is not None
    units, depth = w.shape
    rows = x.reshape(-1, depth).astype(np.float64) - x_t.zero_point
    weights = w.astype(np.float64)
    if w_t.quant.per_channel:
        # FullyConnectedPerChannel: symmetric weights, the filter zero point is ignored.
        mult, shift = per_channel_multipliers(x_t.scale, w_t.quant.scale, y.scale, units)
    else:
        # The per-tensor kernel keeps the (legacy) filter offset; the scale product is
        # taken in float32 before the division in double.
        weights -= w_t.zero_point
        product = float(np.float32(x_t.scale) * np.float32(w_t.scale))
        m, s = quantize_multiplier(product / float(np.float32(y.scale)))
        mult, shift = np.int64(m), np.int64(s)
    # float64 is exact: |terms| < 2^16, so sums stay far below 2^53.
    acc = (rows @ weights.T).astype(np.int64)
    if bias is not None:
        acc += bias.astype(np.int64).reshape(-1)
    lo, hi = activation_range(ctx.options.get("fused_activation_function", "NONE"), y)
    return [requantize(acc, mult, shift, y.zero_point, lo, hi).astype(np.int8)]
