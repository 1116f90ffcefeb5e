"""CONV_2D and DEPTHWISE_CONV_2D with TFLM's int8 per-channel semantics.

TFLM skips taps that fall outside the image; subtracting the input zero point
first and padding with zeros gives the same sums, since a zero tap adds nothing. Products
are accumulated in float64, which is exact here: every term is below 2^15 in
magnitude, so any sum of fewer than 2^38 terms stays below 2^53.
"""

from __future__ import annotations

import numpy as np

from autotune.model.graph import Tensor
from autotune.reference.quant_params import (
    activation_range,
    per_channel_multipliers,
    per_tensor_scale,
    requantize,
    require_quantized,
)
from autotune.reference.registry import OpContext, reference_op, require_dtypes


def out_size(padding: str, in_size: int, filter_size: int, stride: int, dilation: int) -> int:
    """ComputeOutSize: the output extent TFLM derives for SAME and VALID padding."""
    effective = (filter_size - 1) * dilation + 1
    if stride == 0:
        return 0
    if padding == "SAME":
        return (in_size + stride - 1) // stride
    return (in_size + stride - effective) // stride


def window_padding(padding: str, in_size: int, filter_size: int, stride: int, dilation: int) -> int:
    """ComputePaddingWithOffset: the padding before the first element (the odd one goes after)."""
    effective = (filter_size - 1) * dilation + 1
    out = out_size(padding, in_size, filter_size, stride, dilation)
    total = max(0, (out - 1) * stride + effective - in_size)
    return total // 2


def padded_windows(
    x: np.ndarray,
    fill: int,
    out_hw: tuple[int, int],
    kernel_hw: tuple[int, int],
    stride_hw: tuple[int, int],
    dilation_hw: tuple[int, int],
    pad_hw: tuple[int, int],
) -> tuple[np.ndarray, list[tuple[int, int, slice, slice]]]:
    """Pad an NHWC array with `fill` and list, per kernel tap, the strided view it reads.

    Returns the padded array and (ky, kx, rows, cols) so that
    padded[:, rows, cols, :] is that tap's input for every output position.
    """
    _, h, w, _ = x.shape
    oh, ow = out_hw
    kh, kw = kernel_hw
    sh, sw = stride_hw
    dh, dw = dilation_hw
    ph, pw = pad_hw
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    after_h = max(0, need_h - h - ph)
    after_w = max(0, need_w - w - pw)
    padded = np.pad(x, ((0, 0), (ph, after_h), (pw, after_w), (0, 0)), constant_values=fill)
    taps = []
    for ky in range(kh):
        for kx in range(kw):
            rows = slice(ky * dh, ky * dh + (oh - 1) * sh + 1, sh)
            cols = slice(kx * dw, kx * dw + (ow - 1) * sw + 1, sw)
            taps.append((ky, kx, rows, cols))
    return padded, taps


# Bounds that keep the numpy reference within seconds and a few hundred MB; real models
# use windows of a few dozen taps (a global pool over 49x40 is 1,960).
MAX_WINDOW_TAPS = 1 << 14
MAX_WINDOW_WORK = 1 << 27  # output elements x taps
MAX_PATCH_ELEMENTS = 1 << 25  # the im2col matrix of one convolution


def check_window(ctx: OpContext, kh: int, kw: int, dilated: bool) -> str | None:
    """Strides, dilations and window within bounds, and the output extent TFLM computes."""
    opts = ctx.options
    x, y = ctx.input(0), ctx.output(0)
    assert x is not None
    steps = {"stride_h": opts.get("stride_h", 1), "stride_w": opts.get("stride_w", 1)}
    if dilated:
        steps["dilation_h_factor"] = opts.get("dilation_h_factor", 1)
        steps["dilation_w_factor"] = opts.get("dilation_w_factor", 1)
    for name, value in steps.items():
        if not isinstance(value, int) or not 1 <= value <= 1 << 16:
            return f"{name} {value} is outside 1..65536"
    if kh < 1 or kw < 1 or kh * kw > MAX_WINDOW_TAPS:
        return f"window {kh}x{kw} is empty or has over {MAX_WINDOW_TAPS} taps"
    padding = opts.get("padding", "SAME")
    if padding not in ("SAME", "VALID"):
        return f"padding {padding}; supported: SAME, VALID"
    dh = steps.get("dilation_h_factor", 1)
    dw = steps.get("dilation_w_factor", 1)
    oh = out_size(padding, x.shape[1], kh, steps["stride_h"], dh)
    ow = out_size(padding, x.shape[2], kw, steps["stride_w"], dw)
    if oh < 1 or ow < 1:
        return f"window {kh}x{kw} does not fit the {x.shape[1]}x{x.shape[2]} input"
    if (y.shape[1], y.shape[2]) != (oh, ow) or y.shape[0] != x.shape[0]:
        return (
            f"output {list(y.shape)} does not match the {oh}x{ow} this input, window, "
            "stride and padding give"
        )
    if y.size * kh * kw > MAX_WINDOW_WORK:
        return f"window {kh}x{kw} over {y.size:,} outputs is beyond autotune's bounds"
    # The reference pads the input out to every tap's reach (a huge dilation would pad it
    # to gigabytes; TFLM skips those taps instead).
    reach_h = max((oh - 1) * steps["stride_h"] + (kh - 1) * dh + 1, x.shape[1])
    reach_w = max((ow - 1) * steps["stride_w"] + (kw - 1) * dw + 1, x.shape[2])
    if x.shape[0] * reach_h * reach_w * x.shape[3] > MAX_PATCH_ELEMENTS:
        return f"window {kh}x{kw} dilated {dh}x{dw} reaches beyond autotune's bounds"
    return None


def _check_conv(ctx: OpContext, quant_dim: int) -> str | None:
    x, w = ctx.input(0), ctx.input(1)
    bias = ctx.input(2)
    y = ctx.output(0)
    if x is None or w is None:
        return "input and filter are required"
    reason = require_dtypes(x, w, y) or require_quantized(x, w, y) or per_tensor_scale(x)
    if reason:
        return reason
    if bias is not None and bias.dtype != "int32":
        return f"bias '{bias.name}' is {bias.dtype}; supported: int32"
    if w.data is None:
        return f"filter '{w.name}' is not constant"
    if bias is not None and bias.data is None:
        return f"bias '{bias.name}' is not constant"
    if len(x.shape) != 4 or len(w.shape) != 4 or len(y.shape) != 4:
        return "input, filter and output must be 4-D"
    channels = w.shape[quant_dim]
    assert w.quant is not None
    if w.quant.scale.size not in (1, channels):
        return f"filter has {w.quant.scale.size} scales for {channels} channels"
    act = ctx.options.get("fused_activation_function", "NONE")
    if act not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
        return f"fused activation {act}; supported: NONE, RELU, RELU6, RELU_N1_TO_1"
    if bias is not None and bias.size != y.shape[3]:
        return f"bias has {bias.size} values for {y.shape[3]} output channels"
    return check_window(ctx, w.shape[1], w.shape[2], dilated=True)


def check_conv2d(ctx: OpContext) -> str | None:
    reason = _check_conv(ctx, quant_dim=0)
    if reason:
        return reason
    x, w = ctx.input(0), ctx.input(1)
    assert x is not None and w is not None
    if w.shape[3] < 1 or x.shape[3] % w.shape[3] != 0:
        return f"input depth {x.shape[3]} is not a multiple of filter depth {w.shape[3]}"
    if w.shape[0] % (x.shape[3] // w.shape[3]) != 0:
        return "output channels are not a multiple of the group count"
    y = ctx.output(0)
    if y.shape[3] != w.shape[0]:
        return f"output has {y.shape[3]} channels, the filter {w.shape[0]}"
    if y.size // max(y.shape[3], 1) * w.size // max(w.shape[0], 1) > MAX_PATCH_ELEMENTS:
        return "the convolution's patch matrix is beyond autotune's bounds"
    return None


def check_depthwise(ctx: OpContext) -> str | None:
    reason = _check_conv(ctx, quant_dim=3)
    if reason:
        return reason
    x, w, y = ctx.input(0), ctx.input(1), ctx.output(0)
    assert x is not None and w is not None
    if w.shape[3] != y.shape[3]:
        return f"filter has {w.shape[3]} channels, output {y.shape[3]}"
    if w.shape[0] != 1:
        return f"filter must be 1xHxWxC, got {list(w.shape)}"
    if x.shape[3] < 1 or w.shape[3] % x.shape[3] != 0:
        return f"filter channels {w.shape[3]} are not a multiple of input depth {x.shape[3]}"
    return None


def conv_geometry(ctx: OpContext, x: np.ndarray, w_hw: tuple[int, int], y: Tensor) -> dict:
    """Strides, dilations, TFLM's padding and the output extent for a 2-D window op."""
    opts = ctx.options
    sh, sw = int(opts.get("stride_h", 1)), int(opts.get("stride_w", 1))
    dh = int(opts.get("dilation_h_factor", 1) or 1)
    dw = int(opts.get("dilation_w_factor", 1) or 1)
    padding = opts.get("padding", "SAME")
    _, h, w, _ = x.shape
    kh, kw = w_hw
    ph = window_padding(padding, h, kh, sh, dh)
    pw = window_padding(padding, w, kw, sw, dw)
    return {
        "out_hw": (y.shape[1], y.shape[2]),
        "kernel_hw": (kh, kw),
        "stride_hw": (sh, sw),
        "dilation_hw": (dh, dw),
        "pad_hw": (ph, pw),
    }


def requant_params(ctx: OpContext, channels: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    x, w, y = ctx.input(0), ctx.input(1), ctx.output(0)
    assert x is not None and w is not None and w.quant is not None
    mult, shift = per_channel_multipliers(x.scale, w.quant.scale, y.scale, channels)
    lo, hi = activation_range(ctx.options.get("fused_activation_function", "NONE"), y)
    return mult, shift, lo, hi


@reference_op("CONV_2D", check=check_conv2d)
def conv2d(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    """ConvPerChannel: grouped when the input is deeper than the filter."""
    x, w, bias = args[0], args[1], args[2] if len(args) > 2 else None
    assert x is not None and w is not None
    x_t = ctx.input(0)
    assert x_t is not None
    y = ctx.output(0)
    out_c, kh, kw, filter_depth = w.shape
    groups = x.shape[3] // filter_depth
    per_group = out_c // groups
    geo = conv_geometry(ctx, x, (kh, kw), y)
    oh, ow = geo["out_hw"]
    batches = x.shape[0]

    # Shifted input: the padded border becomes exact zeros.
    xs = x.astype(np.float64) - x_t.zero_point
    padded, taps = padded_windows(xs, 0, **geo)
    acc = np.empty((batches, oh, ow, out_c), dtype=np.float64)
    wf = w.astype(np.float64)
    for g in range(groups):
        cin = slice(g * filter_depth, (g + 1) * filter_depth)
        cout = slice(g * per_group, (g + 1) * per_group)
        if len(taps) == 1:  # 1x1 (pointwise): the strided view is the patch matrix
            _, _, rows, cols = taps[0]
            patches = padded[:, rows, cols, cin]
        else:
            patches = np.stack([padded[:, r, c, cin] for _, _, r, c in taps], axis=3)
        patches = patches.reshape(batches * oh * ow, kh * kw * filter_depth)
        kernel = wf[cout].reshape(per_group, kh * kw * filter_depth)
        acc[..., cout] = (patches @ kernel.T).reshape(batches, oh, ow, per_group)
    total = acc.astype(np.int64)
    if bias is not None:
        total += bias.astype(np.int64).reshape(-1)
    mult, shift, lo, hi = requant_params(ctx, out_c)
    return [requantize(total, mult, shift, y.zero_point, lo, hi).astype(np.int8)]


@reference_op("DEPTHWISE_CONV_2D", check=check_depthwise)
def depthwise_conv2d(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    """DepthwiseConvPerChannel: output channel c reads input channel c // depth_multiplier."""
    x, w, bias = args[0], args[1], args[2] if len(args) > 2 else None
    assert x is not None and w is not None
    x_t = ctx.input(0)
    assert x_t is not None
    y = ctx.output(0)
    _, kh, kw, out_c = w.shape
    multiplier = out_c // x.shape[3]
    geo = conv_geometry(ctx, x, (kh, kw), y)
    oh, ow = geo["out_hw"]

    xs = x.astype(np.int32) - np.int32(x_t.zero_point)
    padded, taps = padded_windows(xs, 0, **geo)
    if multiplier > 1:
        padded = np.repeat(padded, multiplier, axis=3)
    wi = w.astype(np.int32)
    # Each term is below 2^15, so int32 holds up to 2^16 taps exactly.
    acc = np.zeros((x.shape[0], oh, ow, out_c), dtype=np.int32)
    for ky, kx, rows, cols in taps:
        acc += padded[:, rows, cols, :] * wi[0, ky, kx, :]
    total = acc.astype(np.int64)
    if bias is not None:
        total += bias.astype(np.int64).reshape(-1)
    mult, shift, lo, hi = requant_params(ctx, out_c)
    return [requantize(total, mult, shift, y.zero_point, lo, hi).astype(np.int8)]
