"""Cut layers out of a Graph into standalone .tflite models (per-layer oracle checks)."""

from __future__ import annotations

from autotune.model.graph import Graph
from autotune.model.tflite_writer import ModelBuilder


def external_inputs(graph: Graph, first: int, last: int | None = None) -> list[int]:
    """The tensors layers first..last read but do not produce and are not constants or
    state: the inputs of their ``layers_model``, in that order."""
    last = first if last is None else last
    produced: set[int] = set()
    inputs: list[int] = []
    for layer in graph.layers[first : last + 1]:
        for i in layer.inputs:
            t = graph.tensor(i)
            external = t is not None and t.data is None and not t.variable
            if external and i not in produced and i not in inputs:
                inputs.append(i)
        for i in layer.outputs:
            produced.add(i)
    return inputs


def layers_model(graph: Graph, first: int, last: int | None = None) -> bytes:
    """Layers first..last (inclusive) as a model whose inputs are the tensors they read
    but do not produce and are not constants, and whose outputs are the last layer's."""
    last = first if last is None else last
    chosen = graph.layers[first : last + 1]
    b = ModelBuilder(f"layers {first}-{last} of {graph.path or graph.name}")
    mapping: dict[int, int] = {}

    def add(index: int) -> int:
        if index < 0:
            return -1
        if index not in mapping:
            t = graph.tensors[index]
            q = t.quant
            scale = None if q is None else q.scale
            zp = None if q is None else q.zero_point
            axis = 0 if q is None else q.axis
            if t.data is not None:
                mapping[index] = b.constant(t.name, t.data, scale, zp, axis)
            else:
                mapping[index] = b.tensor(t.name, t.shape, t.dtype, scale, zp, axis, t.variable)
        return mapping[index]

    inputs = external_inputs(graph, first, last)
    for layer in chosen:
        b.op(
            layer.op,
            [add(i) for i in layer.inputs],
            [add(i) for i in layer.outputs],
            [add(i) for i in layer.intermediates],
            **layer.options,
        )
    b.inputs(*(mapping[i] for i in inputs))
    b.outputs(*(mapping[i] for i in chosen[-1].outputs))
    return b.build()
