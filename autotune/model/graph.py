"""The in-memory model: tensors, layers and the graph that links them.

Everything downstream (reference, workloads, search, emit) reads this, never the
flatbuffer, so that a model written by any converter looks the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Quantization:
    """Affine quantization: real = scale * (q - zero_point), per tensor or per channel."""

    scale: np.ndarray  # float32, one entry per tensor or per channel
    zero_point: np.ndarray  # int64, same length as scale
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    def describe(self) -> str:
        if self.per_channel:
            return f"per-channel[{self.scale.size}] axis {self.axis}"
        return f"s={float(self.scale[0]):.6g} zp={int(self.zero_point[0])}"


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: int8, int16, int32, float32, ...
    quant: Quantization | None = None
    data: np.ndarray | None = None  # constant contents, typed and shaped
    variable: bool = False  # state that persists across invocations (LSTM h and c)

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    @property
    def scale(self) -> float:
        """The per-tensor scale; raises for tensors without quantization."""
        if self.quant is None:
            raise ValueError(f"tensor {self.index} ({self.name}) is not quantized")
        return float(self.quant.scale[0])

    @property
    def zero_point(self) -> int:
        if self.quant is None:
            return 0
        return int(self.quant.zero_point[0])


@dataclass
class Layer:
    """One operator instance. Optional inputs that are absent are -1 in `inputs`."""

    index: int
    op: str  # builtin operator name as in the TFLite schema, e.g. CONV_2D
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    intermediates: tuple[int, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    version: int = 1


@dataclass
class Graph:
    tensors: list[Tensor]
    layers: list[Layer]
    inputs: list[int]
    outputs: list[int]
    name: str = ""
    path: str = ""
    sha256: str = ""
    description: str = ""
    # Resource variables (lowered to variable tensors at import): tensor index -> the value
    # CALL_ONCE's init subgraph assigns before the first invocation, or None.
    resources: dict[int, np.ndarray | None] = field(default_factory=dict)

    def tensor(self, index: int) -> Tensor | None:
        return None if index < 0 else self.tensors[index]

    def layer_inputs(self, layer: Layer) -> list[Tensor | None]:
        return [self.tensor(i) for i in layer.inputs]

    def layer_outputs(self, layer: Layer) -> list[Tensor]:
        return [self.tensors[i] for i in layer.outputs]

    @property
    def input_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.inputs]

    @property
    def output_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.outputs]

    @property
    def variable_tensors(self) -> list[Tensor]:
        return [t for t in self.tensors if t.variable]
