"""The arrays autotune feeds a model: seeded random inputs and the extremes, for every
element type a model's inputs may have.

Integer inputs span their type. A float32 input (a model whose edges are QUANTIZE /
DEQUANTIZE, as converters emit for float interfaces) spans the real range its first
QUANTIZE can represent, a quarter beyond on each side so that saturation is exercised;
"min" and "max" are those ends.
"""

from __future__ import annotations

import numpy as np

from autotune.model.graph import Graph, Tensor

# The element types a model input or output may have: the same list in the reference,
# the emitted library's C interface and docs/cli.md (tests/emit/test_dtype_agreement.py).
IO_DTYPES = ("int8", "uint8", "int16", "int32", "float32")
FLOAT_FALLBACK = 8.0  # the span of a float input no QUANTIZE reads


def value_range(graph: Graph, t: Tensor) -> tuple[float, float]:
    """The lowest and highest value fed to input tensor `t`."""
    dt = np.dtype(t.dtype)
    if dt.kind in "iub":
        info = np.iinfo(dt) if dt.kind != "b" else np.iinfo(np.uint8)
        hi = 1 if dt.kind == "b" else int(info.max)
        return int(info.min), hi
    for layer in graph.layers:
        if layer.op == "QUANTIZE" and layer.inputs and layer.inputs[0] == t.index:
            y = graph.tensors[layer.outputs[0]]
            if y.quant is not None and np.dtype(y.dtype).kind in "iu":
                info = np.iinfo(np.dtype(y.dtype))
                lo = y.scale * (int(info.min) - y.zero_point)
                hi = y.scale * (int(info.max) - y.zero_point)
                margin = 0.25 * (hi - lo)
                return lo - margin, hi + margin
    return -FLOAT_FALLBACK, FLOAT_FALLBACK


def random_inputs(graph: Graph, rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for t in graph.input_tensors:
        lo, hi = value_range(graph, t)
        if np.dtype(t.dtype).kind == "f":
            out.append(rng.uniform(lo, hi, t.shape).astype(t.dtype))
        else:
            out.append(
                rng.integers(int(lo), int(hi), t.shape, dtype=np.int64, endpoint=True).astype(
                    t.dtype
                )
            )
    return out


def check_calls(graph: Graph, seed: int, n: int) -> list[list[np.ndarray]]:
    """The whole model's seeded check inputs. Call 0 is the measured one: the library's
    headline run, and (through the reference) the input each layer is tuned on."""
    rng = np.random.default_rng(seed + 1000)
    return [random_inputs(graph, rng) for _ in range(n)]


def extreme_inputs(graph: Graph, end: str) -> list[np.ndarray]:
    """Every input element at its lowest ("min") or highest ("max") value."""
    pick = 0 if end == "min" else 1
    return [
        np.full(t.shape, value_range(graph, t)[pick], dtype=t.dtype) for t in graph.input_tensors
    ]
