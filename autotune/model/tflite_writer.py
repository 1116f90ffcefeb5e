"""Builds small .tflite models: the test suite's single-op cases and the bundled example.

Written with the same generated schema the importer reads, so a model built
here loads in the TFLM and TFLite interpreters exactly as a converter's would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import flatbuffers
import numpy as np

from autotune.model.schema import (
    ENUM_FIELDS,
    OP_CODES,
    OPTIONS_TYPE_CODES,
    TENSOR_TYPE_CODES,
    TFLITE_TYPES,
    fb,
)

# Ops whose options table is not simply CamelCase(op) + "Options".
_OPTIONS_NAME = {
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "MAX_POOL_2D": "Pool2DOptions",
    "L2_POOL_2D": "Pool2DOptions",
    "MEAN": "ReducerOptions",
    "SUM": "ReducerOptions",
    "REDUCE_MAX": "ReducerOptions",
    "REDUCE_MIN": "ReducerOptions",
    "REDUCE_PROD": "ReducerOptions",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTMOptions",
    "LSTM": "LSTMOptions",
    "PACK": "PackOptions",
    "DEQUANTIZE": "DequantizeOptions",
    "BATCH_MATMUL": "BatchMatMulOptions",
    "SVDF": "SVDFOptions",
}
_ENUM_VALUES = {field: {name: code for code, name in m.items()} for field, m in ENUM_FIELDS.items()}


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def options_table_name(op: str) -> str | None:
    """The BuiltinOptions union member for an op, or None when it has no options."""
    if op in _OPTIONS_NAME:
        return _OPTIONS_NAME[op]
    name = "".join(
        part.capitalize() if not part[0].isdigit() else part.upper() for part in op.split("_")
    )
    name = re.sub(r"(\d)d", r"\1D", name) + "Options"
    return name if name in OPTIONS_TYPE_CODES else None


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str
    data: np.ndarray | None
    scale: np.ndarray | None
    zero_point: np.ndarray | None
    axis: int
    variable: bool


class ModelBuilder:
    """Collects tensors and ops, then packs a TFLite flatbuffer.

    Tensors are referred to by the integer index that `tensor`/`constant` return.
    """

    def __init__(self, description: str = "autotune test model") -> None:
        self.description = description
        self._tensors: list[_Tensor] = []
        self._ops: list[tuple[str, list[int], list[int], list[int], dict[str, Any]]] = []
        self._inputs: list[int] = []
        self._outputs: list[int] = []
        self._inits: list[tuple[str, np.ndarray, float | None, int | None]] = []

    def tensor(
        self,
        name: str,
        shape: tuple[int, ...] | list[int],
        dtype: str = "int8",
        scale: float | np.ndarray | list[float] | None = None,
        zero_point: int | np.ndarray | list[int] | None = None,
        axis: int = 0,
        variable: bool = False,
    ) -> int:
        """Add an activation (or variable) tensor; returns its index."""
        return self._add(name, shape, dtype, None, scale, zero_point, axis, variable)

    def constant(
        self,
        name: str,
        data: np.ndarray,
        scale: float | np.ndarray | list[float] | None = None,
        zero_point: int | np.ndarray | list[int] | None = None,
        axis: int = 0,
    ) -> int:
        shape = np.shape(data)  # ascontiguousarray makes a scalar 1-D; keep it a scalar
        data = np.ascontiguousarray(data)
        return self._add(name, shape, data.dtype.name, data, scale, zero_point, axis, False)

    def _add(
        self,
        name: str,
        shape: tuple[int, ...] | list[int],
        dtype: str,
        data: np.ndarray | None,
        scale: float | np.ndarray | list[float] | None,
        zero_point: int | np.ndarray | list[int] | None,
        axis: int,
        variable: bool,
    ) -> int:
        sc = None if scale is None else np.atleast_1d(np.asarray(scale, dtype=np.float32))
        if sc is not None:
            zp = np.zeros(sc.shape, np.int64) if zero_point is None else np.atleast_1d(zero_point)
            zp = np.broadcast_to(np.asarray(zp, dtype=np.int64), sc.shape).copy()
        else:
            zp = None
        self._tensors.append(
            _Tensor(name, tuple(int(d) for d in shape), dtype, data, sc, zp, axis, variable)
        )
        return len(self._tensors) - 1

    def op(
        self,
        op: str,
        inputs: list[int],
        outputs: list[int],
        intermediates: list[int] | None = None,
        **options: Any,
    ) -> None:
        """Add an operator. Options use the schema's field names in snake_case."""
        if op not in OP_CODES:
            raise ValueError(f"unknown builtin op {op}")
        self._ops.append((op, list(inputs), list(outputs), list(intermediates or []), options))

    def inputs(self, *indices: int) -> None:
        self._inputs = list(indices)

    def outputs(self, *indices: int) -> None:
        self._outputs = list(indices)

    def _options(self, op: str, options: dict[str, Any]) -> tuple[int, Any]:
        table = options_table_name(op)
        if table is None:
            if options:
                raise ValueError(f"{op} takes no options, got {sorted(options)}")
            return 0, None
        obj = getattr(fb, table + "T")()
        for key, value in options.items():
            attr = _camel(key)
            if not hasattr(obj, attr):
                raise ValueError(f"{op}: {table} has no field {key}")
            if attr in _ENUM_VALUES and isinstance(value, str):
                value = _ENUM_VALUES[attr][value]
            setattr(obj, attr, value)
        return OPTIONS_TYPE_CODES[table], obj

    def resource(
        self,
        shared_name: str,
        init: np.ndarray | None = None,
        scale: float | None = None,
        zero_point: int | None = None,
    ) -> int:
        """A resource variable: VAR_HANDLE here, returning the handle tensor. With `init`,
        a CALL_ONCE init subgraph assigns it that constant first, as converters write the
        state of streaming models."""
        handle = self.tensor(f"{shared_name}/handle", (), "resource")
        self.op("VAR_HANDLE", [], [handle], container="", shared_name=shared_name)
        if init is not None:
            self._inits.append((shared_name, np.asarray(init), scale, zero_point))
        return handle

    def build(self) -> bytes:
        model = fb.ModelT()
        model.version = 3
        model.description = self.description
        model.buffers = [fb.BufferT()]  # buffer 0 is the empty sentinel
        model.operatorCodes = []
        codes: dict[str, int] = {}
        ops = list(self._ops)
        subgraphs = []
        if self._inits:
            init = ModelBuilder()
            for name, data, scale, zp in self._inits:
                handle = init.tensor(f"{name}/handle", (), "resource")
                value = init.constant(f"{name}/init", data, scale, zp)
                init.op("VAR_HANDLE", [], [handle], container="", shared_name=name)
                init.op("ASSIGN_VARIABLE", [handle, value], [])
            ops.insert(0, ("CALL_ONCE", [], [], [], {"init_subgraph_index": 1}))
            subgraphs.append(("init", init._tensors, init._ops, [], []))
        subgraphs.insert(0, ("main", self._tensors, ops, self._inputs, self._outputs))
        model.subgraphs = [self._subgraph(model, codes, *entry) for entry in subgraphs]
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    def _subgraph(
        self,
        model: Any,
        codes: dict[str, int],
        name: str,
        tensors: list[_Tensor],
        ops: list[tuple[str, list[int], list[int], list[int], dict[str, Any]]],
        inputs: list[int],
        outputs: list[int],
    ) -> Any:
        sub = fb.SubGraphT()
        sub.name = name
        sub.tensors = []
        for t in tensors:
            ft = fb.TensorT()
            ft.name = t.name
            ft.shape = list(t.shape)
            ft.type = TENSOR_TYPE_CODES[TFLITE_TYPES.get(t.dtype, t.dtype.upper())]
            ft.isVariable = t.variable
            ft.buffer = 0
            if t.data is not None:
                buf = fb.BufferT()
                buf.data = np.frombuffer(t.data.astype(t.dtype).tobytes(), dtype=np.uint8)
                model.buffers.append(buf)
                ft.buffer = len(model.buffers) - 1
            if t.scale is not None:
                q = fb.QuantizationParametersT()
                q.scale = [float(s) for s in t.scale]
                q.zeroPoint = [int(z) for z in t.zero_point]
                q.quantizedDimension = t.axis
                ft.quantization = q
            sub.tensors.append(ft)

        sub.operators = []
        for op, ins, outs, inter, options in ops:
            if op not in codes:
                code = fb.OperatorCodeT()
                value = OP_CODES[op]
                code.builtinCode = value
                code.deprecatedBuiltinCode = min(value, 127)
                code.version = 1
                codes[op] = len(model.operatorCodes)
                model.operatorCodes.append(code)
            fop = fb.OperatorT()
            fop.opcodeIndex = codes[op]
            fop.inputs = ins
            fop.outputs = outs
            if inter:
                fop.intermediates = inter
            fop.builtinOptionsType, fop.builtinOptions = self._options(op, options)
            sub.operators.append(fop)
        sub.inputs = inputs
        sub.outputs = outputs
        return sub
