"""The verifier every imported graph passes before anything reads it.

Like TFLM's flatbuffer verifier and its Prepare-time checks, and stricter where autotune
would otherwise do work that no microcontroller model needs: tensor indices in range, a
data flow in which every tensor is written once before it is read, shapes without
negative dimensions, quantization that is finite, positive and fits its type, option
values that are numbers, and the memory and work the model would need bounded. Each
rejection is one line naming the tensor or the op and its index. Op-specific checks
(types, option ranges, output shapes) live with each op's reference kernel and run
when an interpreter is built (`reference.executor.check_supported`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from autotune.errors import ModelError
from autotune.model.graph import Graph, Layer, Tensor
from autotune.model.schema import NUMPY_DTYPES

# No microcontroller model comes near these; a mutated or malicious file easily does.
MAX_TENSOR_ELEMENTS = 1 << 24  # 16 Mi elements in one tensor
MAX_ACTIVATION_BYTES = 256 << 20  # all non-constant tensors together
MAX_LAYER_MACS = 1 << 32  # multiply-accumulates of one layer in one invocation
MAX_SCALE = float(np.finfo(np.float32).max)  # any finite float32 scale is accepted

KNOWN_DTYPES = frozenset(NUMPY_DTYPES.values())

# Ops whose MAC count reads weight shapes: (required inputs, rank of each shaped input).
_WEIGHT_RANKS: dict[str, tuple[int, dict[int, int]]] = {
    "CONV_2D": (2, {0: 4, 1: 4}),
    "DEPTHWISE_CONV_2D": (2, {0: 4, 1: 4}),
    "FULLY_CONNECTED": (2, {1: 2}),
    "TRANSPOSE_CONV": (3, {1: 4}),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (3, {2: 2}),  # input 1 is absent in CIFG models
    "SVDF": (3, {1: 2, 2: 2}),
}


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _where_tensor(t: Tensor) -> str:
    return f"tensor {t.index} ('{t.name}')"


def _where_op(layer: Layer) -> str:
    return f"op {layer.index} ({layer.op})"


def _elements(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if shape else 1


def _check_tensor(t: Tensor, used: bool, flows: bool) -> None:
    where = _where_tensor(t)
    if any(d < 0 for d in t.shape):
        raise ModelError(f"{where} has a negative dimension in shape {list(t.shape)}")
    if not used:
        return
    if t.dtype not in KNOWN_DTYPES:
        raise ModelError(f"{where} has type {t.dtype.upper()}, which autotune cannot hold")
    n = _elements(t.shape)
    if n > MAX_TENSOR_ELEMENTS:
        size = n * np.dtype(t.dtype).itemsize
        raise ModelError(
            f"{where} has shape {list(t.shape)} ({_bytes(size)} of {t.dtype}); autotune "
            f"accepts at most {MAX_TENSOR_ELEMENTS:,} elements per tensor"
        )
    if n == 0 and t.data is None and flows:
        raise ModelError(f"{where} has no elements (shape {list(t.shape)})")
    if t.quant is not None:
        _check_quant(t, where)


def _check_quant(t: Tensor, where: str) -> None:
    q = t.quant
    assert q is not None
    scale, zp = q.scale, q.zero_point
    if zp.size != scale.size:
        raise ModelError(f"{where} has {scale.size} scales but {zp.size} zero points")
    bad = [float(s) for s in scale if not (np.isfinite(s) and 0 <= s <= MAX_SCALE)]
    if bad:
        raise ModelError(f"{where} has quantization scale {bad[0]:g} (must be finite, >= 0)")
    if t.data is None and np.any(scale == 0):
        raise ModelError(f"{where} has quantization scale 0")
    # A per-channel bias may keep its filter's axis number (person_detect does).
    bias_like = len(t.shape) == 1 and t.shape[0] == scale.size
    if scale.size > 1 and not bias_like:
        if not 0 <= q.axis < len(t.shape):
            raise ModelError(
                f"{where} is quantized along axis {q.axis}, but has {len(t.shape)} dimensions"
            )
        if t.shape[q.axis] != scale.size:
            raise ModelError(
                f"{where} has {scale.size} scales along axis {q.axis} of size {t.shape[q.axis]}"
            )
    kind = np.dtype(t.dtype).kind
    if kind in "iu" and t.dtype not in ("int64", "uint64"):
        info = np.iinfo(np.dtype(t.dtype))
        if np.any(zp < info.min) or np.any(zp > info.max):
            bad_zp = int(zp[(zp < info.min) | (zp > info.max)][0])
            raise ModelError(f"{where} has zero point {bad_zp}, outside the range of {t.dtype}")


def _check_options(layer: Layer) -> None:
    for key, value in layer.options.items():
        values: Any = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise ModelError(f"{_where_op(layer)}: option {key} is {v}")


def _check_indices(graph: Graph) -> None:
    n = len(graph.tensors)
    for kind, indices in (("input", graph.inputs), ("output", graph.outputs)):
        for i in indices:
            if not 0 <= i < n:
                raise ModelError(f"model {kind} refers to missing tensor {i} (the model has {n})")
    for layer in graph.layers:
        for kind, indices, optional in (
            ("input", layer.inputs, True),
            ("output", layer.outputs, False),
            ("intermediate", layer.intermediates, True),
        ):
            for i in indices:
                if not (-1 if optional else 0) <= i < n:
                    raise ModelError(f"{_where_op(layer)}: {kind} refers to missing tensor {i}")


def _check_dataflow(graph: Graph) -> None:
    """Every tensor an op reads exists by then; every tensor is written once."""
    ready: set[int] = {t.index for t in graph.tensors if t.data is not None or t.variable}
    writer: dict[int, str] = {}
    for i in graph.inputs:
        t = graph.tensors[i]
        if t.data is not None:
            raise ModelError(f"model input {_where_tensor(t)} is a constant")
        ready.add(i)
        writer[i] = "the caller (it is a model input)"
    for layer in graph.layers:
        for i in layer.inputs:
            if i >= 0 and i not in ready:
                t = graph.tensors[i]
                raise ModelError(
                    f"{_where_op(layer)} reads {_where_tensor(t)} before any op writes it"
                )
        for i in layer.outputs:
            t = graph.tensors[i]
            if t.data is not None:
                raise ModelError(f"{_where_op(layer)} writes constant {_where_tensor(t)}")
            if i in writer:
                raise ModelError(
                    f"{_where_op(layer)} writes {_where_tensor(t)}, already written by {writer[i]}"
                )
            writer[i] = _where_op(layer)
            ready.add(i)
    for i in graph.outputs:
        if i not in writer:
            raise ModelError(
                f"model output {_where_tensor(graph.tensors[i])} is never written by any op"
            )


def _check_shapes_for_counts(graph: Graph, layer: Layer) -> None:
    need = _WEIGHT_RANKS.get(layer.op)
    if need is None:
        return
    count, ranks = need
    if len(layer.inputs) < count or any(layer.inputs[i] < 0 for i in (0, *ranks)):
        raise ModelError(f"{_where_op(layer)} needs {count} inputs, has {len(layer.inputs)}")
    if not layer.outputs:
        raise ModelError(f"{_where_op(layer)} has no output")
    for pos, rank in ranks.items():
        t = graph.tensors[layer.inputs[pos]]
        if len(t.shape) != rank:
            raise ModelError(
                f"{_where_op(layer)}: input {pos} {_where_tensor(t)} must be {rank}-D, "
                f"has shape {list(t.shape)}"
            )


def verify_graph(graph: Graph) -> None:
    """Raise ModelError (one line, naming the tensor or op) for the first problem found."""
    from autotune.model.stats import layer_macs  # stats reads shapes this function vouches for

    _check_indices(graph)
    flows: set[int] = set(graph.inputs) | set(graph.outputs)
    for layer in graph.layers:
        flows.update(i for i in (*layer.inputs, *layer.outputs) if i >= 0)
    # Intermediates only carry calibration scales (LSTM gates); they may be empty.
    used = flows | {i for layer in graph.layers for i in layer.intermediates if i >= 0}
    for t in graph.tensors:
        _check_tensor(t, t.index in used, t.index in flows)
    activation_bytes = sum(
        graph.tensors[i].nbytes for i in used if graph.tensors[i].data is None
    )
    if activation_bytes > MAX_ACTIVATION_BYTES:
        raise ModelError(
            f"the model's non-constant tensors need {_bytes(activation_bytes)}; autotune "
            f"accepts at most {_bytes(MAX_ACTIVATION_BYTES)}"
        )
    _check_dataflow(graph)
    for layer in graph.layers:
        _check_options(layer)
        _check_shapes_for_counts(graph, layer)
        macs = layer_macs(graph, layer)
        if macs > MAX_LAYER_MACS:
            raise ModelError(
                f"{_where_op(layer)} needs {macs:,} multiply-accumulates per invocation; "
                f"autotune accepts at most {MAX_LAYER_MACS:,} per layer"
            )
