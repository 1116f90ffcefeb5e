"""AVERAGE_POOL_2D and MAX_POOL_2D with TFLM's int8 semantics.

Windows are clipped to the image (padding never counts), the average divides
the raw int8 sum by the number of taps with rounding half away from zero, and
input and output share one quantization (TFLM does not requantize pools).
"""

from __future__ import annotations

import numpy as np

from autotune.reference.ops.conv import check_window, padded_windows, window_padding
from autotune.reference.quant_params import activation_range, require_quantized
from autotune.reference.registry import OpContext, reference_op, require_dtypes


def check_pool(ctx: OpContext) -> str | None:
    x, y = ctx.input(0), ctx.output(0)
    if x is None:
        return "input is required"
    reason = require_dtypes(x, y) or require_quantized(x, y)
    if reason:
        return reason
    if len(x.shape) != 4 or len(y.shape) != 4:
        return "input and output must be 4-D"
    act = ctx.options.get("fused_activation_function", "NONE")
    if act not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
        return f"fused activation {act}; supported: NONE, RELU, RELU6, RELU_N1_TO_1"
    if y.shape[3] != x.shape[3]:
        return f"output has {y.shape[3]} channels, the input {x.shape[3]}"
    kh, kw = ctx.options.get("filter_height", 1), ctx.options.get("filter_width", 1)
    return check_window(ctx, kh, kw, dilated=False)


def _windows(ctx: OpContext, x: np.ndarray, fill: int) -> tuple[np.ndarray, list]:
    opts = ctx.options
    kh, kw = int(opts.get("filter_height", 1)), int(opts.get("filter_width", 1))
    sh, sw = int(opts.get("stride_h", 1)), int(opts.get("stride_w", 1))
    padding = opts.get("padding", "SAME")
    y = ctx.output(0)
    pad = (
        window_padding(padding, x.shape[1], kh, sh, 1),
        window_padding(padding, x.shape[2], kw, sw, 1),
    )
    return padded_windows(x, fill, (y.shape[1], y.shape[2]), (kh, kw), (sh, sw), (1, 1), pad)


@reference_op("AVERAGE_POOL_2D", check=check_pool)
def average_pool(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    y = ctx.output(0)
    padded, taps = _windows(ctx, x.astype(np.int32), 0)
    inside, _ = _windows(ctx, np.ones((*x.shape[:3], 1), dtype=np.int32), 0)
    total = sum(padded[:, r, c, :] for _, _, r, c in taps)
    count = sum(inside[:, r, c, :] for _, _, r, c in taps)
    if np.any(count == 0):
        raise ValueError("a pooling window lies entirely in the padding")
    # (acc +/- count/2) / count with C's truncating division.
    half = count // 2
    avg = np.where(total > 0, (total + half) // count, -((-total + half) // count))
    lo, hi = activation_range(ctx.options.get("fused_activation_function", "NONE"), y)
    return [np.clip(avg, lo, hi).astype(np.int8)]


@reference_op("MAX_POOL_2D", check=check_pool)
def max_pool(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    y = ctx.output(0)
    # -128 as padding never wins a max (every real value is >= -128).
    padded, taps = _windows(ctx, x, -128)
    best = padded[:, taps[0][2], taps[0][3], :]
    for _, _, r, c in taps[1:]:
        best = np.maximum(best, padded[:, r, c, :])
    lo, hi = activation_range(ctx.options.get("fused_activation_function", "NONE"), y)
    return [np.clip(best.astype(np.int32), lo, hi).astype(np.int8)]
