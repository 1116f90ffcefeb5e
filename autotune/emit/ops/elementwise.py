"""ADD, SUB and MUL in C, with numpy-style broadcasting (MAXIMUM and MINIMUM, defined in
autotune/ops/pointwise.py, use the same loops, on every type their reference check takes).

Same-shape ADD normally goes to the tuned `add` template; this emitter is the
general form (any broadcast, SUB, MUL, and ADD wherever no template applies). The
loops walk the output in order; a broadcast operand simply has stride 0 along the
axes it repeats on, and axes that are contiguous for the output and both operands
merge, so a same-shape op is one flat loop. The quantization parameters are the
reference's (add_params, mul_multiplier, activation_range), baked in as constants.
"""

from __future__ import annotations

from autotune.emit.layer_code import LayerCode, c_type, op_emitter
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
from autotune.model.graph import Graph, Layer, Tensor
from autotune.reference.ops.elementwise import add_params, mul_multiplier
from autotune.reference.quant_params import activation_range
from autotune.reference.registry import DATA_TYPES


def broadcast_strides(t: Tensor, shape: tuple[int, ...]) -> list[int]:
    """t's element strides along the axes of shape: 0 where t repeats (extent one)."""
    padded = (1,) * (len(shape) - len(t.shape)) + tuple(t.shape)
    strides = row_strides(padded)
    return [0 if n == 1 else s for n, s in zip(padded, strides, strict=True)]


@op_emitter("ADD", "SUB", "MUL")
def binary(graph: Graph, layer: Layer, function: str) -> LayerCode:
    ctx = checked_context(graph, layer)
    a, b, y = ctx.input(0), ctx.input(1), ctx.output(0)
    assert a is not None and b is not None
    ops = operands(graph, layer)
    act = ctx.options.get("fused_activation_function", "NONE")
    raw = layer.op in ("MAXIMUM", "MINIMUM")  # raw values compared: every DATA_TYPES type
    if y.dtype not in (DATA_TYPES if raw else ("int8",)):
        raise UnsupportedOpError(graph.path, layer.op, layer.index, f"no C for {y.dtype}")
    act_min, act_max = (0, 0) if raw else activation_range(act, y)  # MAX/MIN: no activation
    params: dict[str, int] = {}
    if raw:
        pass
    elif layer.op == "MUL":
        multiplier, shift = mul_multiplier(a, b, y)
        params = {
            "input1_offset": -a.zero_point,
            "input2_offset": -b.zero_point,
            "output_multiplier": multiplier,
            "output_shift": shift,
            "output_offset": y.zero_point,
        }
    else:
        params = add_params(a, b, y)
        shifts = [params[f"{k}_shift"] for k in ("input1", "input2", "output")]
        if max(shifts) > 0:  # the reference only ever rescales these by factors below one
            raise UnsupportedOpError(
                graph.path, layer.op, layer.index, f"rescale shifts {shifts} above zero"
            )

    dims = merge_axes(
        [
            (int(n), o, sa, sb)
            for n, o, sa, sb in zip(
                y.shape,
                row_strides(y.shape),
                broadcast_strides(a, y.shape),
                broadcast_strides(b, y.shape),
                strict=True,
            )
        ],
        3,
    )
    body: list[str] = []
    if dims is not None:
        dims = [d for d in dims if d[0] > 1]
        variables = [f"i{k}" for k in range(len(dims))]

        def at(name: str, which: int) -> str:
            return f"{name}[{index(variables, [d[which] for d in dims])}]"

        element = (
            f"{at(ops.names[y.index], 1)} = ({c_type(y.dtype)}){function}_element("
            f"{at(ops.names[a.index], 2)}, {at(ops.names[b.index], 3)});"
        )
        body = loop_nest([d[0] for d in dims], variables, [element], 1)
    text = "\n".join(body)
    shapes = " x ".join(f"[{', '.join(map(str, t.shape))}]" for t in (a, b))
    source = render(
        "elementwise_binary.c.j2",
        graph,
        layer,
        f"{shapes}, activation {act}",
        fn=function,
        op=layer.op,
        signature=ops.signature(function),
        arrays=ops.arrays,
        unused=unused_parameters(ops, text),
        body=text,
        p=params,
        act_min=act_min,
        act_max=act_max,
        element="float" if y.dtype == "float32" else "int32_t",
    )
    # out[i] reads only element i of an operand that is not broadcast, before writing it.
    inplace = [(t, y.index) for t in dict.fromkeys(ops.inputs) if graph.tensors[t].size == y.size]
    return LayerCode(
        function,
        source,
        ops.inputs,
        ops.outputs,
        ops.state,
        inplace=inplace,
        description=f"{shapes} {act}",
    )
