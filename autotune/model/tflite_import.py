"""Read a .tflite flatbuffer into a Graph."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np

from autotune.errors import ModelError
from autotune.model.graph import Graph, Layer, Quantization, Tensor
from autotune.model.schema import (
    ENUM_FIELDS,
    NUMPY_DTYPES,
    OP_NAMES,
    OPTIONS_TYPE_CODES,
    TENSOR_TYPE_NAMES,
    fb,
)
from autotune.model.tflite_writer import options_table_name
from autotune.model.verify import verify_graph
from autotune.reference.fold import fold_constants

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


def _options(raw: Any) -> dict[str, Any]:
    """Option table -> plain dict with snake_case keys and enum names."""
    if raw is None:
        return {}
    out: dict[str, Any] = {}
    for key, value in vars(raw).items():
        if key in ENUM_FIELDS and isinstance(value, int):
            value = ENUM_FIELDS[key].get(value, value)
        elif isinstance(value, np.ndarray):
            value = [int(v) for v in value]
        elif isinstance(value, float):
            value = float(np.float32(value))
        out[_snake(key)] = value
    return out


_OPTIONS_TABLES = {code: name for name, code in OPTIONS_TYPE_CODES.items()}


def _builtin_options(index: int, op: str, raw: Any) -> dict[str, Any]:
    """The op's options, read only from the table it takes: TFLM reads an op's options as
    that table and nothing else (a LSTM carrying SoftmaxOptions is a broken file, not a
    LSTM with a `beta`). Ops without a table of options have none."""
    expected = options_table_name(op)
    got = int(raw.builtinOptionsType or 0)
    if expected is None or got == 0:
        return {}
    if got != OPTIONS_TYPE_CODES[expected]:
        table = _OPTIONS_TABLES.get(got, f"unknown options type {got}")
        raise ModelError(f"op {index} ({op}): its options are {table}, not {expected}")
    return _options(raw.builtinOptions)


def _op_name(code: Any) -> str:
    # Codes above 127 live in builtinCode; old files only fill the deprecated byte.
    value = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    if value == fb.BuiltinOperator.CUSTOM:
        name = code.customCode.decode() if code.customCode else "?"
        return f"CUSTOM({name})"
    return OP_NAMES.get(value, f"UNKNOWN_OP_{value}")


def _quantization(q: Any) -> Quantization | None:
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    scale = np.asarray(q.scale, dtype=np.float32).reshape(-1)
    if q.zeroPoint is None or len(q.zeroPoint) == 0:
        zp = np.zeros(scale.shape, dtype=np.int64)
    else:
        zp = np.asarray(q.zeroPoint, dtype=np.int64).reshape(-1)
    return Quantization(scale=scale, zero_point=zp, axis=int(q.quantizedDimension))


def _buffer_bytes(raw: bytes, buffer: Any) -> bytes | None:
    offset = int(getattr(buffer, "offset", 0) or 0)
    if offset > 1:  # models over 2 GiB keep buffers after the flatbuffer
        size = int(buffer.size)
        if offset + size > len(raw):
            raise ModelError("buffer runs past the end of the file")
        return raw[offset : offset + size]
    if buffer.data is None or len(buffer.data) == 0:
        return None
    return np.asarray(buffer.data, dtype=np.uint8).tobytes()


def parse_model(raw: bytes, path: str = "<bytes>") -> Graph:
    """Parse flatbuffer bytes; every problem is a ModelError naming `path`."""
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise ModelError(f"{path}: not a TensorFlow Lite model (no TFL3 flatbuffer identifier)")
    try:
        model = fb.ModelT.InitFromPackedBuf(raw, 0)
        graph = _to_graph(model, raw, path)
    except ModelError as exc:
        if str(exc).startswith(path):
            raise
        raise ModelError(f"{path}: {exc}") from None
    except Exception as exc:  # the flatbuffer reader raises anything on corrupt data
        raise ModelError(
            f"{path}: truncated or corrupt flatbuffer ({type(exc).__name__}: {exc})"
        ) from None
    try:  # outside the catch-all above: a bug in the verifier must not pass for bad input
        verify_graph(graph)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
    fold_constants(graph)
    return graph


def _to_graph(model: Any, raw: bytes, path: str) -> Graph:
    if not model.subgraphs:
        raise ModelError("the model has no subgraph")
    sub = model.subgraphs[0]
    tensors = _tensors(sub, model.buffers or [], raw)
    layers = _layers(sub, model.operatorCodes or [])
    resources: dict[int, np.ndarray | None] = {}
    if any(layer.op in RESOURCE_OPS for layer in layers):
        layers, resources = _lower_resources(model, raw, tensors, layers)

    description = model.description.decode(errors="replace") if model.description else ""
    name = sub.name.decode(errors="replace") if sub.name else ""
    return Graph(
        tensors=tensors,
        layers=layers,
        inputs=[int(x) for x in (sub.inputs if sub.inputs is not None else [])],
        outputs=[int(x) for x in (sub.outputs if sub.outputs is not None else [])],
        name=name,
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        description=description,
        resources=resources,
    )


def _tensors(sub: Any, buffers: list[Any], raw: bytes) -> list[Tensor]:
    tensors: list[Tensor] = []
    for i, t in enumerate(sub.tensors or []):
        type_name = TENSOR_TYPE_NAMES.get(int(t.type), f"TYPE_{t.type}")
        dtype = NUMPY_DTYPES.get(type_name, type_name.lower())
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        name = t.name.decode(errors="replace") if t.name else f"tensor_{i}"
        data = None
        if t.buffer and t.buffer < len(buffers):
            blob = _buffer_bytes(raw, buffers[t.buffer])
            if blob is not None:
                if type_name not in NUMPY_DTYPES:
                    raise ModelError(f"tensor {i} ({name}) has constant data of type {type_name}")
                expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
                if len(blob) != expected:
                    raise ModelError(
                        f"tensor {i} ({name}) holds {len(blob)} bytes, its shape needs {expected}"
                        " (truncated or corrupt file)"
                    )
                data = np.frombuffer(blob, dtype=dtype).reshape(shape).copy()
        elif t.buffer and t.buffer >= len(buffers):
            raise ModelError(f"tensor {i} ({name}) points at missing buffer {t.buffer}")
        tensors.append(
            Tensor(
                index=i,
                name=name,
                shape=shape,
                dtype=dtype,
                quant=_quantization(t.quantization),
                data=data,
                variable=bool(t.isVariable),
            )
        )
    return tensors


def _layers(sub: Any, codes: list[Any]) -> list[Layer]:
    layers: list[Layer] = []
    for i, op in enumerate(sub.operators or []):
        if op.opcodeIndex >= len(codes):
            raise ModelError(f"op {i} refers to missing operator code {op.opcodeIndex}")
        code = codes[op.opcodeIndex]
        name = _op_name(code)
        options = _builtin_options(i, name, op)
        options.update(_options(getattr(op, "builtinOptions2", None)))
        layers.append(
            Layer(
                index=i,
                op=name,
                inputs=tuple(int(x) for x in (op.inputs if op.inputs is not None else [])),
                outputs=tuple(int(x) for x in (op.outputs if op.outputs is not None else [])),
                intermediates=tuple(
                    int(x) for x in (op.intermediates if op.intermediates is not None else [])
                ),
                options=options,
                version=int(code.version or 1),
            )
        )
    return layers


# Resource variables (streaming models keep their state in them, as TFLM supports).
RESOURCE_OPS = ("CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE")


def _handle_names(tensors: list[Tensor], layers: list[Layer], where: str) -> dict[int, str]:
    """Handle tensor -> the variable it names (container/shared_name), from VAR_HANDLE ops."""
    names: dict[int, str] = {}
    for layer in layers:
        if layer.op == "VAR_HANDLE":
            if len(layer.outputs) != 1 or not 0 <= layer.outputs[0] < len(tensors):
                raise ModelError(f"{where}op {layer.index} (VAR_HANDLE) needs one output")
            container = layer.options.get("container") or b""
            shared = layer.options.get("shared_name") or b""
            key = (
                container.decode(errors="replace")
                if isinstance(container, bytes)
                else str(container)
            )
            key += "/" + (
                shared.decode(errors="replace") if isinstance(shared, bytes) else str(shared)
            )
            names[layer.outputs[0]] = key
    return names


def _handle(layer: Layer, names: dict[int, str], where: str) -> str:
    if not layer.inputs or layer.inputs[0] not in names:
        raise ModelError(f"{where}op {layer.index} ({layer.op}) reads no VAR_HANDLE's handle")
    return names[layer.inputs[0]]


def _initial_values(model: Any, raw: bytes, call_once: Layer) -> dict[str, np.ndarray]:
    """What CALL_ONCE's init subgraph assigns: constants only, as converters write it."""
    index = int(call_once.options.get("init_subgraph_index", -1))
    where = f"op {call_once.index} (CALL_ONCE): "
    if not 0 < index < len(model.subgraphs):
        raise ModelError(f"{where}init subgraph {index} does not exist")
    sub = model.subgraphs[index]
    tensors = _tensors(sub, model.buffers or [], raw)
    layers = _layers(sub, model.operatorCodes or [])
    names = _handle_names(tensors, layers, f"{where}init subgraph {index}: ")
    values: dict[str, np.ndarray] = {}
    for layer in layers:
        if layer.op == "VAR_HANDLE":
            continue
        value = tensors[layer.inputs[1]] if len(layer.inputs) == 2 else None
        if layer.op != "ASSIGN_VARIABLE" or value is None or value.data is None:
            raise ModelError(
                f"{where}init subgraph {index} runs op {layer.index} ({layer.op}); autotune "
                "supports VAR_HANDLE and ASSIGN_VARIABLE of constants there"
            )
        values[_handle(layer, names, where)] = value.data
    return values


def _lower_resources(
    model: Any, raw: bytes, tensors: list[Tensor], layers: list[Layer]
) -> tuple[list[Layer], dict[int, np.ndarray | None]]:
    """Each resource variable becomes a variable tensor that READ_VARIABLE and
    ASSIGN_VARIABLE take directly; VAR_HANDLE and CALL_ONCE go, and what the init
    subgraph assigns becomes the variable's value for the first invocation."""
    names = _handle_names(tensors, layers, "")
    initial: dict[str, np.ndarray] = {}
    for layer in layers:
        if layer.op == "CALL_ONCE":
            initial.update(_initial_values(model, raw, layer))
    variables: dict[str, int] = {}
    for layer in layers:
        if layer.op not in ("READ_VARIABLE", "ASSIGN_VARIABLE"):
            continue
        key = _handle(layer, names, "")
        ends = [*layer.outputs, *layer.inputs[1:]]
        if key in variables or not ends or not 0 <= ends[0] < len(tensors):
            continue
        like = tensors[ends[0]]
        variables[key] = len(tensors)
        tensors.append(
            Tensor(len(tensors), key.lstrip("/"), like.shape, like.dtype, like.quant, None, True)
        )
    resources: dict[int, np.ndarray | None] = {}
    for key, index in variables.items():
        value = initial.get(key)
        var = tensors[index]
        if value is not None and (value.dtype != np.dtype(var.dtype) or value.size != var.size):
            raise ModelError(
                f"resource variable '{var.name}' is {var.dtype} {list(var.shape)}, its initial "
                f"value {value.dtype} {list(value.shape)}"
            )
        resources[index] = None if value is None else value.reshape(var.shape)
    kept: list[Layer] = []
    for layer in layers:
        if layer.op in ("CALL_ONCE", "VAR_HANDLE"):
            continue
        if layer.op in ("READ_VARIABLE", "ASSIGN_VARIABLE"):
            var = variables.get(_handle(layer, names, ""), -1)
            layer = dataclasses.replace(layer, inputs=(var, *layer.inputs[1:]))
        kept.append(dataclasses.replace(layer, index=len(kept)))
    return kept, resources


def load_model(path: str | Path) -> Graph:
    """Read a .tflite file. Missing files and bad contents raise ModelError."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ModelError(f"{p}: is a directory, not a .tflite file") from None
    except OSError as exc:
        raise ModelError(f"{p}: cannot read ({exc.strerror})") from None
    return parse_model(raw, str(p))
