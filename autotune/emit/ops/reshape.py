"""RESHAPE, SQUEEZE and EXPAND_DIMS: the same bytes under another shape."""

from __future__ import annotations

from autotune.emit.layer_code import LayerCode, layer_io, op_emitter
from autotune.model.graph import Graph, Layer


@op_emitter("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
def reshape(graph: Graph, layer: Layer, function: str) -> LayerCode:
    inputs, outputs, _ = layer_io(graph, layer)
    # The shape operand (when it is an activation) is not data the output depends on.
    data = [layer.inputs[0]]
    del inputs
    return LayerCode(function, "", data, outputs, alias=True, description="alias of its input")
