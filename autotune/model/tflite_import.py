"""Read a .tflite flatbuffer into a Graph."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np

from autotune.errors import ModelError
from autotune.model.graph import Graph, Layer, Quantization, Tensor
from autotune.model.schema import ENUM_FIELDS, NUMPY_DTYPES, OP_NAMES, TENSOR_TYPE_NAMES, fb
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
    codes = model.operatorCodes or []
    buffers = model.buffers or []

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

    layers: list[Layer] = []
    for i, op in enumerate(sub.operators or []):
        if op.opcodeIndex >= len(codes):
            raise ModelError(f"op {i} refers to missing operator code {op.opcodeIndex}")
        code = codes[op.opcodeIndex]
        options = _options(op.builtinOptions)
        options.update(_options(getattr(op, "builtinOptions2", None)))
        layers.append(
            Layer(
                index=i,
                op=_op_name(code),
                inputs=tuple(int(x) for x in (op.inputs if op.inputs is not None else [])),
                outputs=tuple(int(x) for x in (op.outputs if op.outputs is not None else [])),
                intermediates=tuple(
                    int(x) for x in (op.intermediates if op.intermediates is not None else [])
                ),
                options=options,
                version=int(code.version or 1),
            )
        )

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
    )


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
