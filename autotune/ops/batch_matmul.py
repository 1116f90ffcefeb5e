"""BATCH_MATMUL, int8, as tflite-micro computes it (batch_matmul.cc).

Prepare: one multiplier, float(lhs_scale * rhs_scale) widened to double and divided by
the output scale in double (GetQuantizedConvolutionMultipler), through QuantizeMultiplier.
Eval: for every batch (broadcast over the leading dimensions), row and column, the sum
of (lhs - lhs_zp) * (rhs - rhs_zp) over the shared dimension, rescaled
(MultiplyByQuantizedMultiplier), plus the output zero point, clamped to int8. adj_x and
adj_y transpose the last two dimensions of lhs and rhs first.
"""

from __future__ import annotations

import numpy as np

from autotune import __version__
from autotune.codegen import environment
from autotune.emit.layer_code import LayerCode
from autotune.emit.ops.shape import header_lines, operands, row_strides
from autotune.errors import UnsupportedOpError
from autotune.model.graph import Graph, Layer, Tensor
from autotune.opdef import Op
from autotune.reference.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from autotune.reference.quant_params import per_tensor_scale, require_quantized
from autotune.reference.registry import OpContext, require_dtypes


def multiplier(lhs: Tensor, rhs: Tensor, y: Tensor) -> tuple[int, int]:
    product = float(np.float32(np.float32(lhs.scale) * np.float32(rhs.scale)))
    return quantize_multiplier(product / float(np.float32(y.scale)))


def _matrices(ctx: OpContext) -> tuple[tuple[int, ...], int, int, int]:
    """(broadcast batch shape, rows, depth, cols) after adj_x / adj_y."""
    lhs, rhs = ctx.input(0), ctx.input(1)
    assert lhs is not None and rhs is not None
    ls, rs = list(lhs.shape), list(rhs.shape)
    if ctx.options.get("adj_x"):
        ls[-1], ls[-2] = ls[-2], ls[-1]
    if ctx.options.get("adj_y"):
        rs[-1], rs[-2] = rs[-2], rs[-1]
    batch = tuple(np.broadcast_shapes(tuple(ls[:-2]), tuple(rs[:-2])))
    if ls[-1] != rs[-2]:
        raise ValueError(f"lhs depth {ls[-1]} differs from rhs depth {rs[-2]}")
    return batch, ls[-2], ls[-1], rs[-1]


def check(ctx: OpContext) -> str | None:
    lhs, rhs, y = ctx.input(0), ctx.input(1), ctx.output(0)
    if lhs is None or rhs is None:
        return "two inputs are required"
    reason = (
        require_dtypes(lhs, rhs, y)
        or require_quantized(lhs, rhs, y)
        or per_tensor_scale(lhs)
        or per_tensor_scale(rhs)
        or per_tensor_scale(y)
    )
    if reason:
        return reason
    if not 2 <= len(lhs.shape) <= 5 or not 2 <= len(rhs.shape) <= 5:
        return "inputs must be 2-D to 5-D"
    try:
        batch, rows, depth, cols = _matrices(ctx)
    except ValueError as exc:
        return str(exc)
    if y.shape != (*batch, rows, cols):
        return f"output shape {list(y.shape)}; the product is {[*batch, rows, cols]}"
    if depth < 1 or rows * cols * depth * max(1, int(np.prod(batch))) > 1 << 28:
        return "the product is empty or beyond autotune's bounds"
    if depth * 255 * 255 >= 1 << 31:
        return f"a depth of {depth} can overflow TFLM's int32 sums"
    return None


def kernel(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    a, b = args
    assert a is not None and b is not None
    lhs, rhs, y = ctx.input(0), ctx.input(1), ctx.output(0)
    assert lhs is not None and rhs is not None
    x = a.astype(np.float64) - lhs.zero_point
    w = b.astype(np.float64) - rhs.zero_point
    if ctx.options.get("adj_x"):
        x = np.swapaxes(x, -1, -2)
    if ctx.options.get("adj_y"):
        w = np.swapaxes(w, -1, -2)
    acc = np.matmul(x, w).astype(np.int64)  # exact: |terms| < 2^16, far fewer than 2^37
    mult, shift = multiplier(lhs, rhs, y)
    out = multiply_by_quantized_multiplier(acc, mult, shift) + y.zero_point
    return [np.clip(out, -128, 127).astype(np.int8)]


def _strides(t: Tensor, batch: tuple[int, ...], transposed: bool) -> tuple[list[int], int, int]:
    """Element strides of t along the batch axes (0 where broadcast) and of its two matrix
    axes as the product reads them ((row, depth) for lhs, (depth, col) for rhs)."""
    strides = row_strides(t.shape)
    lead = t.shape[:-2]
    padded = (1,) * (len(batch) - len(lead)) + tuple(lead)
    lead_strides = [0] * (len(batch) - len(lead)) + strides[:-2]
    batch_strides = [0 if n == 1 else s for n, s in zip(padded, lead_strides, strict=True)]
    first, second = strides[-2], strides[-1]
    return batch_strides, *((second, first) if transposed else (first, second))


def emit(graph: Graph, layer: Layer, function: str) -> LayerCode:
    ctx = OpContext(graph, layer)
    reason = check(ctx)
    if reason:
        raise UnsupportedOpError(graph.path, layer.op, layer.index, reason)
    lhs, rhs, y = ctx.input(0), ctx.input(1), ctx.output(0)
    assert lhs is not None and rhs is not None
    batch, rows, depth, cols = _matrices(ctx)
    lb, l_row, l_depth = _strides(lhs, batch, bool(ctx.options.get("adj_x")))
    rb, r_depth, r_col = _strides(rhs, batch, bool(ctx.options.get("adj_y")))
    batch_count = int(np.prod(batch)) if batch else 1
    # Per flattened batch index: the element offsets of its lhs and rhs matrices.
    coords = np.indices(batch).reshape(len(batch), -1).T if batch else np.zeros((1, 0), int)
    lhs_off = [int(np.dot(c, lb)) for c in coords] if batch else [0]
    rhs_off = [int(np.dot(c, rb)) for c in coords] if batch else [0]
    mult, shift = multiplier(lhs, rhs, y)
    ops = operands(graph, layer)
    source = (
        environment()
        .get_template("ops/batch_matmul.c.j2")
        .render(
            version=__version__,
            header=header_lines(graph, layer, f"{batch_count} x ({rows}x{depth} @ {depth}x{cols})"),
            signature=ops.signature(function),
            arrays=ops.arrays,
            a=ops.names[lhs.index],
            b=ops.names[rhs.index],
            out=ops.names[y.index],
            batches=batch_count,
            rows=rows,
            depth=depth,
            cols=cols,
            lhs_offsets=", ".join(map(str, lhs_off)),
            rhs_offsets=", ".join(map(str, rhs_off)),
            l_row=l_row,
            l_depth=l_depth,
            r_depth=r_depth,
            r_col=r_col,
            lhs_zp=lhs.zero_point,
            rhs_zp=rhs.zero_point,
            out_zp=y.zero_point,
            mult=mult,
            shift=shift,
        )
    )
    return LayerCode(function, source, ops.inputs, ops.outputs, ops.state, description="int8")


OPS = [Op("BATCH_MATMUL", kernel, check, emitter=emit, description="int8 batched matmul")]
