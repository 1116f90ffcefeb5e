"""READ_VARIABLE and ASSIGN_VARIABLE: the state of streaming models, as TFLM keeps it.

The importer lowers each resource variable to a variable tensor (Graph.resources), so
both ops take it as their first input: READ_VARIABLE copies it out, ASSIGN_VARIABLE
copies a value in (raw bytes, no requantization). The value CALL_ONCE's init subgraph
assigns is in place before the first invocation; a reset puts the variable back to its
zero point (int8; 0 otherwise) and, as in TFLM, does not run the init subgraph again
(Interpreter in executor.py).
"""

from __future__ import annotations

import numpy as np

from autotune.model.graph import Tensor
from autotune.reference.registry import OpContext, reference_op


def _variable(ctx: OpContext) -> Tensor | str:
    var = ctx.input(0)
    if var is None or not var.variable or var.index not in ctx.graph.resources:
        return "its handle names no resource variable"
    return var


def _same_data(var: Tensor, other: Tensor, what: str) -> str | None:
    if other.dtype != var.dtype or other.size != var.size:
        return (
            f"{what} '{other.name}' is {other.dtype} {list(other.shape)}, the variable "
            f"'{var.name}' {var.dtype} {list(var.shape)}"
        )
    return None


def check_read(ctx: OpContext) -> str | None:
    var = _variable(ctx)
    if isinstance(var, str):
        return var
    if len(ctx.layer.outputs) != 1:
        return "needs one output"
    return _same_data(var, ctx.output(0), "output")


@reference_op("READ_VARIABLE", check=check_read)
def read_variable(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    value = args[0]
    assert value is not None
    return [value.copy()]


def check_assign(ctx: OpContext) -> str | None:
    var = _variable(ctx)
    if isinstance(var, str):
        return var
    value = ctx.input(1)
    if value is None:
        return "value is required"
    return _same_data(var, value, "value")


@reference_op("ASSIGN_VARIABLE", check=check_assign)
def assign_variable(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    var, value = ctx.input(0), args[1]
    assert var is not None and value is not None
    ctx.state[var.index] = np.asarray(value, dtype=var.dtype).reshape(var.shape).copy()
    return []
