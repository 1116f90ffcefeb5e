"""Constant folding at import: ops whose result is known before the model runs.

Keras writes a reshape whose target depends on the batch size as SHAPE -> STRIDED_SLICE
-> PACK -> RESHAPE. With static shapes every step is a constant, and TFLM's arena holds
them as such; autotune folds them into constant tensors with the reference's own kernels,
so that nothing downstream (tuning, the library) sees these ops at all. Layers are then
numbered in order again: an op index in a later message counts the remaining layers.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from autotune.model.graph import Graph, Layer
from autotune.reference import ops as _ops  # noqa: F401  (registers the kernels)
from autotune.reference.registry import REGISTRY, OpContext

FOLDABLE = ("SHAPE", "PACK", "STRIDED_SLICE")


def _foldable(graph: Graph, layer: Layer, model_outputs: set[int]) -> bool:
    if layer.op not in FOLDABLE or model_outputs & set(layer.outputs):
        return False
    if layer.op == "SHAPE":  # needs the shape only, which is static
        return True
    return all(graph.tensors[i].data is not None for i in layer.inputs if i >= 0)


def fold_constants(graph: Graph) -> int:
    """Fold in place; returns how many layers were folded away."""
    model_outputs = set(graph.outputs)
    kept: list[Layer] = []
    for layer in graph.layers:
        spec = REGISTRY.get(layer.op)
        if spec is not None and _foldable(graph, layer, model_outputs):
            ctx = OpContext(graph, layer, {})
            if spec.check is None or spec.check(ctx) is None:
                args = [None if i < 0 else graph.tensors[i].data for i in layer.inputs]
                for i, value in zip(layer.outputs, spec.kernel(ctx, args), strict=True):
                    t = graph.tensors[i]
                    t.data = np.asarray(value, dtype=t.dtype).reshape(t.shape)
                continue
        kept.append(layer)
    folded = len(graph.layers) - len(kept)
    if folded:
        graph.layers = [dataclasses.replace(layer, index=n) for n, layer in enumerate(kept)]
    return folded
