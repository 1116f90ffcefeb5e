"""TRANSPOSE_CONV, int8 with per-channel weights, as tflite-micro computes it
(transpose_conv.cc, reference_integer_ops::TransposeConv).

Prepare: the padding of a convolution whose input is this op's output
(ComputePaddingHeightWidth with the output's height and width), and per-channel
multipliers double(input_scale) * double(filter_scale[c]) / double(output_scale), as
CONV_2D. Eval: every input element scatters (x - input_zp) * w into an int32 buffer the
size of the output (taps that fall outside are dropped), then each output element adds
its bias, is rescaled by its channel's multiplier, gets the output zero point and the
activation's clamp. The filter zero point is ignored (symmetric weights).
"""

from __future__ import annotations

import numpy as np

from autotune import __version__
from autotune.codegen import environment
from autotune.emit.layer_code import LayerCode
from autotune.emit.ops.shape import c_literal, const_array, header_lines, operands
from autotune.errors import UnsupportedOpError
from autotune.model.graph import Graph, Layer, Tensor
from autotune.opdef import Op
from autotune.reference.ops.conv import window_padding
from autotune.reference.quant_params import (
    activation_range,
    per_channel_multipliers,
    per_tensor_scale,
    requantize,
    require_quantized,
)
from autotune.reference.registry import OpContext, require_dtypes

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def _tensors(ctx: OpContext) -> tuple[Tensor | None, ...]:
    """(output shape, weights, input, bias, output)."""
    return ctx.input(0), ctx.input(1), ctx.input(2), ctx.input(3), ctx.output(0)


def check(ctx: OpContext) -> str | None:
    shape, w, x, bias, y = _tensors(ctx)
    if shape is None or w is None or x is None:
        return "output shape, weights and input are required"
    reason = require_dtypes(x, w, y) or require_quantized(x, w, y) or per_tensor_scale(x)
    if reason:
        return reason
    if w.data is None or (bias is not None and bias.data is None):
        return "weights and bias must be constant"
    if bias is not None and (bias.dtype != "int32" or bias.size != w.shape[0]):
        return f"bias must be int32 with {w.shape[0]} values"
    if len(x.shape) != 4 or len(w.shape) != 4 or len(y.shape) != 4:
        return "input, weights and output must be 4-D"
    if shape.data is None or [int(v) for v in shape.data.reshape(-1)] != list(y.shape):
        return "the output-shape operand must be a constant equal to the output's shape"
    assert w.quant is not None
    if w.quant.scale.size not in (1, w.shape[0]):
        return f"weights have {w.quant.scale.size} scales for {w.shape[0]} channels"
    if w.shape[3] != x.shape[3] or w.shape[0] != y.shape[3] or x.shape[0] != y.shape[0]:
        return "weights do not match the input depth or the output channels"
    sh, sw = ctx.options.get("stride_h", 1), ctx.options.get("stride_w", 1)
    if not (isinstance(sh, int) and isinstance(sw, int) and 1 <= sh <= 64 and 1 <= sw <= 64):
        return f"strides {sh}x{sw} outside 1..64"
    if ctx.options.get("padding", "SAME") not in ("SAME", "VALID"):
        return f"padding {ctx.options.get('padding')}; supported: SAME, VALID"
    act = ctx.options.get("fused_activation_function", "NONE")
    if act not in ACTIVATIONS:
        return f"fused activation {act}; supported: {', '.join(ACTIVATIONS)}"
    if x.size * w.shape[0] * w.shape[1] * w.shape[2] > 1 << 28:
        return "beyond autotune's bounds"
    return None


def geometry(ctx: OpContext) -> tuple[int, int, int, int]:
    """(stride_h, stride_w, pad_top, pad_left)."""
    _, w, _, _, y = _tensors(ctx)
    assert w is not None
    padding = ctx.options.get("padding", "SAME")
    sh, sw = int(ctx.options.get("stride_h", 1)), int(ctx.options.get("stride_w", 1))
    ph = window_padding(padding, y.shape[1], w.shape[1], sh, 1)
    pw = window_padding(padding, y.shape[2], w.shape[2], sw, 1)
    return sh, sw, ph, pw


def requant(ctx: OpContext) -> tuple[np.ndarray, np.ndarray, int, int]:
    _, w, x, _, y = _tensors(ctx)
    assert w is not None and x is not None and w.quant is not None
    mult, shift = per_channel_multipliers(x.scale, w.quant.scale, y.scale, w.shape[0])
    lo, hi = activation_range(ctx.options.get("fused_activation_function", "NONE"), y)
    return mult, shift, lo, hi


def kernel(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    w, x = args[1], args[2]
    bias = args[3] if len(args) > 3 else None
    assert w is not None and x is not None
    x_t, y = ctx.input(2), ctx.output(0)
    assert x_t is not None
    sh, sw, ph, pw = geometry(ctx)
    n, h, wd, _ = x.shape
    oc, kh, kw, _ = w.shape
    full_h = max((h - 1) * sh + kh, ph + y.shape[1])
    full_w = max((wd - 1) * sw + kw, pw + y.shape[2])
    full = np.zeros((n, full_h, full_w, oc), dtype=np.int64)
    xs = x.astype(np.int64) - x_t.zero_point
    wi = w.astype(np.int64)
    for ky in range(kh):
        for kx in range(kw):
            contrib = xs @ wi[:, ky, kx, :].T  # (n, h, w, oc)
            full[:, ky : ky + (h - 1) * sh + 1 : sh, kx : kx + (wd - 1) * sw + 1 : sw, :] += contrib
    acc = full[:, ph : ph + y.shape[1], pw : pw + y.shape[2], :]
    if bias is not None:
        acc = acc + bias.astype(np.int64).reshape(-1)
    mult, shift, lo, hi = requant(ctx)
    return [requantize(acc, mult, shift, y.zero_point, lo, hi).astype(np.int8)]


def emit(graph: Graph, layer: Layer, function: str) -> LayerCode:
    ctx = OpContext(graph, layer)
    reason = check(ctx)
    if reason:
        raise UnsupportedOpError(graph.path, layer.op, layer.index, reason)
    _, w, x, bias, y = _tensors(ctx)
    assert w is not None and x is not None
    sh, sw, ph, pw = geometry(ctx)
    mult, shift, lo, hi = requant(ctx)
    ops = operands(graph, layer, bake=False)
    arrays = [
        const_array("int8", "weights", w.data),
        const_array("int32", "multiplier", mult),
        const_array("int32", "shift", shift),
    ]
    if bias is not None:
        arrays.append(const_array("int32", "bias", bias.data.reshape(-1)))
    n, h, wd, ic = x.shape
    source = (
        environment()
        .get_template("ops/transpose_conv.c.j2")
        .render(
            version=__version__,
            header=header_lines(graph, layer, f"stride {sh}x{sw}, padding {ph},{pw}"),
            signature=ops.signature(function),
            arrays=arrays,
            src=ops.names[x.index],
            dst=ops.names[y.index],
            has_bias=bias is not None,
            batches=n,
            in_h=h,
            in_w=wd,
            in_c=ic,
            out_h=y.shape[1],
            out_w=y.shape[2],
            out_c=y.shape[3],
            k_h=w.shape[1],
            k_w=w.shape[2],
            stride_h=sh,
            stride_w=sw,
            pad_h=ph,
            pad_w=pw,
            input_zp=c_literal("int32", x.zero_point),
            output_zp=c_literal("int32", y.zero_point),
            act_min=lo,
            act_max=hi,
            out_size=y.size,
        )
    )
    return LayerCode(
        function,
        source,
        ops.inputs,
        ops.outputs,
        ops.state,
        scratch_bytes=4 * y.size,
        description=f"int8 per-channel, stride {sh}x{sw}",
    )


OPS = [Op("TRANSPOSE_CONV", kernel, check, emitter=emit, description="int8 transpose conv")]
