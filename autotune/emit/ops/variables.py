"""READ_VARIABLE and ASSIGN_VARIABLE in C: one copy between the variable's static state
buffer (kept across invocations by the library) and an activation. The variable's
initial value and reset are the library's (emit/library.py)."""

from __future__ import annotations

from autotune.emit.layer_code import LayerCode, op_emitter
from autotune.emit.ops.shape import checked_context, operands, render
from autotune.model.graph import Graph, Layer


@op_emitter("READ_VARIABLE", "ASSIGN_VARIABLE")
def variable(graph: Graph, layer: Layer, function: str) -> LayerCode:
    ctx = checked_context(graph, layer)
    var = ctx.input(0)
    assert var is not None
    ops = operands(graph, layer)
    if layer.op == "READ_VARIABLE":
        src, dst, what = ops.names[var.index], ops.names[layer.outputs[0]], "read"
    else:
        src, dst, what = ops.names[layer.inputs[1]], ops.names[var.index], "assign"
    note = f"resource variable '{var.name}', {var.nbytes} bytes"
    source = render(
        "variable.c.j2",
        graph,
        layer,
        note,
        what=what,
        signature=ops.signature(function),
        src=src,
        dst=dst,
        nbytes=var.nbytes,
        arrays=ops.arrays,
    )
    return LayerCode(function, source, ops.inputs, ops.outputs, ops.state, description=note)
