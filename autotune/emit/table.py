"""Single-input int8 ops in C as a 256-entry table that the reference kernel fills."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from autotune import __version__
from autotune.codegen import c_array, environment
from autotune.emit.layer_code import LayerCode, layer_io
from autotune.errors import UnsupportedOpError
from autotune.model.graph import Graph, Layer
from autotune.reference.registry import OpContext

Kernel = Callable[[OpContext, list[np.ndarray | None]], list[np.ndarray]]
Check = Callable[[OpContext], str | None]


def table_layer(
    graph: Graph,
    layer: Layer,
    function: str,
    kernel: Kernel,
    check: Check,
    detail: Callable[[OpContext], str] | None = None,
) -> LayerCode:
    """One int8 in, one int8 out: the table is the reference's output for every input
    value (index: input + 128), so the C is bit-exact by construction; ``detail`` adds
    the op's parameters to the header comment."""
    ctx = OpContext(graph, layer)
    reason = check(ctx)
    if reason:
        raise UnsupportedOpError(graph.path, layer.op, layer.index, reason)
    x, y = ctx.input(0), ctx.output(0)
    assert x is not None
    (table,) = kernel(ctx, [np.arange(-128, 128, dtype=np.int64).astype(np.int8)])
    inputs, outputs, _ = layer_io(graph, layer)
    title = f"Layer {layer.index}: {layer.op}" + (f", {detail(ctx)}" if detail else "")
    header = [
        title,
        f"{x.size} int8 values; a 256-entry table computed by the reference (index: input + 128).",
    ]
    source = (
        environment()
        .get_template("ops/activation.c.j2")
        .render(
            version=__version__,
            header=header,
            fn=function,
            size=x.size,
            op=layer.op,
            table=c_array("int8_t", "table", table),
        )
    )
    return LayerCode(
        function,
        source,
        inputs,
        outputs,
        inplace=[(layer.inputs[0], y.index)],
        description="int8 table",
    )
