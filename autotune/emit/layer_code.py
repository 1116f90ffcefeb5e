"""What the library needs from every layer: a C function, the tensors it reads and writes.

Calling convention of every layer function (tuned kernels and the other ops alike):

    void fn(const T *in0, ..., T *out0, ..., T *state0, ..., void *scratch);

inputs are the layer's non-constant, non-state tensors in the layer's input order;
constants (weights, biases, shapes, lookup tables) are baked into the function's
source as static const arrays; state tensors (LSTM hidden and cell state) are
passed read-write and persist across invocations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autotune.model.graph import Graph, Layer

C_TYPES = {
    "int8": "int8_t",
    "uint8": "uint8_t",
    "int16": "int16_t",
    "int32": "int32_t",
    "int64": "int64_t",
    "float32": "float",
    "bool": "uint8_t",
}


@dataclass
class LayerCode:
    function: str
    source: str
    inputs: list[int]
    outputs: list[int]
    state: list[int] = field(default_factory=list)
    scratch_bytes: int = 0
    # (input tensor, output tensor) pairs the function may compute in place: with the
    # input starting at least inplace_shift (default: planner.inplace_shift of the sizes)
    # after the output, a multiple of inplace_step bytes after it.
    inplace: list[tuple[int, int]] = field(default_factory=list)
    inplace_step: int = 1
    inplace_shift: int | None = None
    # The output is the input's bytes under another shape (RESHAPE): no call at all.
    alias: bool = False
    # Called by that layer's function, not by the network (a fused block's part): its
    # tensors are the fused function's business, not the arena's.
    part_of: int | None = None
    description: str = ""
    headers: list[Path] = field(default_factory=list)  # headers to ship beside the source
    opt: str = "-O2"  # the optimisation level this file is compiled with (its variant's)


def layer_io(graph: Graph, layer: Layer) -> tuple[list[int], list[int], list[int]]:
    """(inputs, outputs, state) tensor indices in the calling convention's order."""
    inputs, state = [], []
    for i in layer.inputs:
        t = graph.tensor(i)
        if t is None or t.data is not None:
            continue
        (state if t.variable else inputs).append(i)
    return inputs, list(layer.outputs), state


Emitter = Callable[[Graph, Layer, str], LayerCode]
EMITTERS: dict[str, Emitter] = {}


def op_emitter(*ops: str) -> Callable[[Emitter], Emitter]:
    """Register the C generator of one or more builtin ops that are not tuned."""

    def wrap(fn: Emitter) -> Emitter:
        for op in ops:
            if op in EMITTERS:
                raise RuntimeError(f"C emitter for {op} registered twice")
            EMITTERS[op] = fn
        return fn

    return wrap


def c_type(dtype: str) -> str:
    return C_TYPES[dtype]
