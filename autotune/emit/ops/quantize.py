"""QUANTIZE and DEQUANTIZE in C, for every type pair the reference accepts.

- integer -> integer (int8/int16/int32 pairs TFLM has): Requantize, one multiplier from
  the reference's requantize_multiplier, with TFLM's wrapping int32 arithmetic;
- float32 -> int8/int16: AffineQuantize, x / scale in float32 and std::round, written
  out by hand (no libm), with the reference's handling of values that do not fit an
  int32 (NaN and infinities included): they become INT32_MIN before the zero point;
- int8/int16 -> float32: scale * (q - zero_point) rounded once to float. The float
  product of two exact operands (|q - zp| < 2^24) is that single rounding, so no
  double arithmetic is needed.
"""

from __future__ import annotations

import numpy as np

from autotune.emit.layer_code import LayerCode, c_type, op_emitter
from autotune.emit.ops.shape import c_literal, checked_context, operands, render
from autotune.model.graph import Graph, Layer
from autotune.reference.ops.quantize import requantize_multiplier


@op_emitter("QUANTIZE", "DEQUANTIZE")
def quantize(graph: Graph, layer: Layer, function: str) -> LayerCode:
    ctx = checked_context(graph, layer)
    x, y = ctx.input(0), ctx.output(0)
    assert x is not None
    ops = operands(graph, layer)
    context: dict[str, object] = {}
    if layer.op == "DEQUANTIZE":
        kind = "dequantize"
        context = {"scale": c_literal("float32", x.scale), "input_zp": x.zero_point}
        note = f"{x.dtype} -> float32, scale {x.scale:g}, zero point {x.zero_point}"
    else:
        info = np.iinfo(np.dtype(y.dtype))
        context = {
            "out_min": c_literal("int32", info.min),
            "out_max": int(info.max),
            "output_zp": y.zero_point,
            "clamp": y.dtype != "int32",  # an int32 result is TFLM's wrapped int32 as it is
        }
        if x.dtype == "float32":
            kind = "from_float"
            context["scale"] = c_literal("float32", y.scale)
            note = f"float32 -> {y.dtype}, scale {y.scale:g}, zero point {y.zero_point}"
        else:
            kind = "requantize"
            multiplier, shift = requantize_multiplier(x, y)
            context.update(multiplier=multiplier, shift=shift, input_zp=x.zero_point)
            note = (
                f"{x.dtype} (s={x.scale:g}, zp={x.zero_point}) -> "
                f"{y.dtype} (s={y.scale:g}, zp={y.zero_point})"
            )
    source = render(
        "quantize.c.j2",
        graph,
        layer,
        note,
        fn=function,
        kind=kind,
        signature=ops.signature(function),
        in_type=c_type(x.dtype),
        out_type=c_type(y.dtype),
        size=y.size,
        arrays=ops.arrays,
        src=ops.names[x.index],
        dst=ops.names[y.index],
        **context,
    )
    # A forward loop reads element i before writing it, and an output element is never
    # wider than an input element, so out[i] only overwrites bytes already read.
    narrowing = np.dtype(y.dtype).itemsize <= np.dtype(x.dtype).itemsize
    return LayerCode(
        function,
        source,
        ops.inputs,
        ops.outputs,
        ops.state,
        inplace=[(x.index, y.index)] if narrowing and x.data is None else [],
        description=note,
    )
