"""MEAN in C: TFLM's integer QuantizedMeanOrSum for every axis set, keep_dims or not.

The output has the input's layout with the reduced axes collapsed (keep_dims only
changes the shape, not the order of the elements), so the C walks the kept axes
outside and sums the reduced axes inside. Axes of extent one vanish and neighbours
that are contiguous merge, so a spatial mean over NHWC is two loops. The multiplier
(input_scale / output_scale with 1/count folded in) is the reference's own.
"""

from __future__ import annotations

import math

from autotune.emit.layer_code import LayerCode, op_emitter
from autotune.emit.ops.shape import (
    checked_context,
    index,
    loop_nest,
    merge_axes,
    operands,
    render,
    row_strides,
    unused_parameters,
)
from autotune.errors import UnsupportedOpError
from autotune.model.graph import Graph, Layer
from autotune.reference.ops.reduce import mean_multiplier, resolved_axes

# The int32 sum and its zero-point correction stay below 2^31 in magnitude up to here.
MAX_COUNT = 1 << 23


@op_emitter("MEAN")
def mean(graph: Graph, layer: Layer, function: str) -> LayerCode:
    ctx = checked_context(graph, layer)
    x, axis_t, y = ctx.input(0), ctx.input(1), ctx.output(0)
    assert x is not None and axis_t is not None and axis_t.data is not None
    axes = resolved_axes(axis_t.data, len(x.shape))
    count = math.prod(int(x.shape[a]) for a in axes)
    if count > MAX_COUNT:
        raise UnsupportedOpError(
            graph.path, layer.op, layer.index, f"a mean of {count} values overflows the int32 sum"
        )
    multiplier, shift = mean_multiplier(x, y, count)
    ops = operands(graph, layer, bake=False)  # the axes are baked into the loops

    in_strides = row_strides(x.shape)
    kept_shape = [int(n) for k, n in enumerate(x.shape) if k not in axes]
    out_strides = iter(row_strides(kept_shape))
    kept_dims, reduced_dims = [], []
    for k, n in enumerate(x.shape):
        if k in axes:
            reduced_dims.append((int(n), in_strides[k]))
        else:
            kept_dims.append((int(n), in_strides[k], next(out_strides)))
    kept = [d for d in merge_axes(kept_dims, 2) or [] if d[0] > 1]
    reduced = [d for d in merge_axes(reduced_dims, 1) or [] if d[0] > 1]
    outer = [f"o{k}" for k in range(len(kept))]
    inner = [f"r{k}" for k in range(len(reduced))]
    src = ops.names[x.index]
    at = index(outer + inner, [d[1] for d in kept] + [d[1] for d in reduced])
    body = [
        "int32_t sum = 0;",
        *loop_nest([d[0] for d in reduced], inner, [f"sum += {src}[{at}];"], 0),
        f"{ops.names[y.index]}[{index(outer, [d[2] for d in kept])}] = {function}_output(sum);",
    ]
    text = "\n".join(loop_nest([d[0] for d in kept], outer, body, 1))
    keep_dims = bool(ctx.options.get("keep_dims", False))
    source = render(
        "mean.c.j2",
        graph,
        layer,
        f"axes {axes}, keep_dims {keep_dims}, {count} values per output",
        fn=function,
        signature=ops.signature(function),
        arrays=ops.arrays,
        unused=unused_parameters(ops, text),
        body=text,
        count=count,
        zp_times_count=x.zero_point * count,
        multiplier=multiplier,
        shift=shift,
        output_offset=y.zero_point,
    )
    return LayerCode(
        function,
        source,
        ops.inputs,
        ops.outputs,
        ops.state,
        description="axes " + ", ".join(map(str, axes)),
    )
