"""Runs a whole Graph with the reference kernels, layer by layer."""

from __future__ import annotations

import numpy as np

from autotune.errors import InputError, ModelError, UnsupportedOpError
from autotune.model.graph import Graph, Layer, Tensor
from autotune.reference import ops as _ops  # noqa: F401  (registers the kernels)
from autotune.reference.registry import REGISTRY, OpContext, arity_problem


def initial_state(graph: Graph) -> dict[int, np.ndarray]:
    """Variable tensors as TFLM resets them: int8 to the zero point, others to zero."""
    state: dict[int, np.ndarray] = {}
    for t in graph.variable_tensors:
        # Resource variables too (measured on the tflite-micro wheel: reset and never
        # assigned, an int8 resource variable reads its zero point).
        fill = t.zero_point if t.dtype == "int8" else 0
        state[t.index] = np.full(t.shape, fill, dtype=t.dtype)
    return state


def unsupported_reason(graph: Graph, layer: Layer, state: dict[int, np.ndarray]) -> str | None:
    """None when the reference can run this layer, else why not ("" for an unknown op)."""
    spec = REGISTRY.get(layer.op)
    if spec is None:
        return ""
    problem = arity_problem(layer)
    if problem:
        return problem
    if spec.check is not None:
        return spec.check(OpContext(graph, layer, state)) or None
    return None


def unsupported_layers(graph: Graph) -> list[tuple[str, int, str]]:
    """(op, index, reason) of every layer the reference cannot execute."""
    state = initial_state(graph)
    found = []
    for layer in graph.layers:
        reason = unsupported_reason(graph, layer, state)
        if reason is not None:
            found.append((layer.op, layer.index, reason))
    return found


def check_supported(graph: Graph) -> None:
    """Raise UnsupportedOpError naming every layer the reference cannot execute, by op."""
    found = unsupported_layers(graph)
    if found:
        raise UnsupportedOpError.grouped(graph.path, found)


def check_input(tensor: Tensor, array: np.ndarray, position: int, path: str = "") -> np.ndarray:
    where = f"{path}: " if path else ""
    if array.dtype != np.dtype(tensor.dtype):
        raise InputError(
            f"{where}input {position} ('{tensor.name}') must be {tensor.dtype}, got {array.dtype}"
        )
    if tuple(array.shape) != tuple(tensor.shape):
        raise InputError(
            f"{where}input {position} ('{tensor.name}') must have shape "
            f"{list(tensor.shape)}, got {list(array.shape)}"
        )
    return array


class Interpreter:
    """The bit-exact reference. Variable tensors persist across invoke() until reset()."""

    def __init__(self, graph: Graph) -> None:
        check_supported(graph)
        self.graph = graph
        self.state = initial_state(graph)
        # CALL_ONCE's init subgraph runs on the first invocation, and only then.
        self.pending_init = any(v is not None for v in graph.resources.values())

    def reset(self) -> None:
        """State back to TFLM's reset values (the init subgraph does not run again)."""
        self.state = initial_state(self.graph)

    def invoke(
        self, inputs: list[np.ndarray], keep: bool = False
    ) -> list[np.ndarray] | dict[int, np.ndarray]:
        """Run once. Returns the outputs, or every tensor's value by index when keep=True."""
        g = self.graph
        if len(inputs) != len(g.inputs):
            raise InputError(f"{g.path}: the model takes {len(g.inputs)} inputs, got {len(inputs)}")
        if self.pending_init:
            for index, value in g.resources.items():
                if value is not None:
                    self.state[index] = value.copy()
            self.pending_init = False
        values: dict[int, np.ndarray] = {}
        for pos, (index, array) in enumerate(zip(g.inputs, inputs, strict=True)):
            values[index] = check_input(g.tensors[index], np.asarray(array), pos, g.path)
        for layer in g.layers:
            ctx = OpContext(g, layer, self.state)
            args: list[np.ndarray | None] = []
            for i in layer.inputs:
                t = g.tensor(i)
                if t is None:
                    args.append(None)
                elif i in values:
                    args.append(values[i])
                elif t.data is not None:
                    args.append(t.data)
                elif t.variable:
                    args.append(self.state[i])
                else:
                    raise RuntimeError(
                        f"op {layer.index} ({layer.op}) reads tensor {i} before it is written"
                    )
            results = REGISTRY[layer.op].kernel(ctx, args)
            for i, out in zip(layer.outputs, results, strict=True):
                t = g.tensors[i]
                out = np.asarray(out, dtype=t.dtype)
                if out.size != t.size:  # a check let an inconsistent layer through
                    raise ModelError(
                        f"{g.path}: op {layer.index} ({layer.op}) computes {out.size} values "
                        f"for output tensor {i} ('{t.name}') of shape {list(t.shape)}"
                    )
                values[i] = out.reshape(t.shape)
        if keep:
            return values
        return [values[i] for i in g.outputs]


def run_model(graph: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """One fresh invocation (variable state reset)."""
    out = Interpreter(graph).invoke(inputs)
    assert isinstance(out, list)
    return out
