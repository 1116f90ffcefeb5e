"""The table of reference kernels, one per TFLite builtin op.

A kernel receives an OpContext (the layer, its tensors, the variable state) and
the input arrays, and returns the output arrays. `check` runs before any
execution, so an unsupported model fails at load time with the op and its index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autotune.model.graph import Graph, Layer, Tensor


@dataclass
class OpContext:
    graph: Graph
    layer: Layer
    state: dict[int, np.ndarray] = field(default_factory=dict)  # variable tensors by index

    @property
    def options(self) -> dict[str, Any]:
        return self.layer.options

    @property
    def inputs(self) -> list[Tensor | None]:
        return self.graph.layer_inputs(self.layer)

    @property
    def outputs(self) -> list[Tensor]:
        return self.graph.layer_outputs(self.layer)

    def input(self, i: int) -> Tensor | None:
        """The i-th input tensor, None where it is absent (index -1 or past the end)."""
        if i >= len(self.layer.inputs):
            return None
        return self.graph.tensor(self.layer.inputs[i])

    def output(self, i: int = 0) -> Tensor:
        return self.graph.tensors[self.layer.outputs[i]]


Kernel = Callable[[OpContext, list[np.ndarray | None]], list[np.ndarray]]
Check = Callable[[OpContext], str | None]


@dataclass(frozen=True)
class OpSpec:
    op: str
    kernel: Kernel
    check: Check | None = None  # returns a reason when this layer cannot run


REGISTRY: dict[str, OpSpec] = {}


def reference_op(op: str, check: Check | None = None) -> Callable[[Kernel], Kernel]:
    """Register a reference kernel for a builtin op."""

    def wrap(fn: Kernel) -> Kernel:
        if op in REGISTRY:
            raise RuntimeError(f"reference kernel for {op} registered twice")
        REGISTRY[op] = OpSpec(op=op, kernel=fn, check=check)
        return fn

    return wrap


# The element types of the ops that move or compare raw values without arithmetic
# (RESHAPE, PAD, CONCATENATION, SPLIT, GATHER, ..., MAXIMUM, MINIMUM), as TFLM's kernels
# take them: one list for the reference's checks and the C emitters of those ops.
DATA_TYPES = ("int8", "int16", "int32", "float32")


def require_dtypes(*tensors: Tensor | None, allowed: tuple[str, ...] = ("int8",)) -> str | None:
    """Common check: every given (non-constant) tensor has one of the allowed types."""
    for t in tensors:
        if t is not None and t.dtype not in allowed:
            kind = "float" if t.dtype.startswith("float") else t.dtype
            return f"{kind} tensor '{t.name}' ({t.dtype}); supported: {', '.join(allowed)}"
    return None


# (fewest inputs, most inputs, outputs) of each op's layer, None where any count goes:
# kernels unpack their arguments, so a layer with other counts never reaches one.
ARITY: dict[str, tuple[int, int | None, int | None]] = {
    "CONV_2D": (2, 3, 1),
    "DEPTHWISE_CONV_2D": (2, 3, 1),
    "FULLY_CONNECTED": (2, 3, 1),
    "AVERAGE_POOL_2D": (1, 1, 1),
    "MAX_POOL_2D": (1, 1, 1),
    "ADD": (2, 2, 1),
    "SUB": (2, 2, 1),
    "MUL": (2, 2, 1),
    "SOFTMAX": (1, 1, 1),
    "LOGISTIC": (1, 1, 1),
    "TANH": (1, 1, 1),
    "QUANTIZE": (1, 1, 1),
    "DEQUANTIZE": (1, 1, 1),
    "RESHAPE": (1, 2, 1),
    "TRANSPOSE": (2, 2, 1),
    "PAD": (2, 2, 1),
    "PADV2": (2, 3, 1),
    "STRIDED_SLICE": (4, 4, 1),
    "CONCATENATION": (1, None, 1),
    "SPLIT": (2, 2, None),
    "SPLIT_V": (3, 3, None),
    "UNPACK": (1, 1, None),
    "REVERSE_V2": (2, 2, 1),
    "MEAN": (2, 2, 1),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (24, 24, 1),
    "SHAPE": (1, 1, 1),
    "PACK": (1, None, 1),
    "READ_VARIABLE": (1, 1, 1),
    "RELU": (1, 1, 1),
    "RELU6": (1, 1, 1),
    "HARD_SWISH": (1, 1, 1),
    "MAXIMUM": (2, 2, 1),
    "MINIMUM": (2, 2, 1),
    "SQUEEZE": (1, 1, 1),
    "RESIZE_NEAREST_NEIGHBOR": (2, 2, 1),
    "DEPTH_TO_SPACE": (1, 1, 1),
    "SPACE_TO_DEPTH": (1, 1, 1),
    "GATHER": (2, 2, 1),
    "BATCH_MATMUL": (2, 2, 1),
    "TRANSPOSE_CONV": (3, 4, 1),
    "SVDF": (5, 5, 1),
    "EXPAND_DIMS": (1, 2, 1),
    "ASSIGN_VARIABLE": (2, 2, 0),
}


def arity_problem(layer: Layer) -> str | None:
    """Why the layer's input or output count does not fit its op, if it does not."""
    lo, hi, outs = ARITY.get(layer.op, (0, None, None))
    n = len(layer.inputs)
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi is not None else f"at least {lo}"
        return f"takes {want} inputs, has {n}"
    if outs is not None and len(layer.outputs) != outs:
        return f"has {len(layer.outputs)} outputs, takes {outs}"
    return None
