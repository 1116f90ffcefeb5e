"""Ops that only move elements, as tflite-micro computes them: RESIZE_NEAREST_NEIGHBOR,
DEPTH_TO_SPACE, SPACE_TO_DEPTH and GATHER (constant or run-time indices in the
reference; constant indices in C).

None of them changes a value (TFLM copies raw int8 data, whatever the quantization), so
their C is one table: for every output element, the input element it copies. The table
comes from the reference kernel itself, run on the input's element numbers.
"""

from __future__ import annotations

import numpy as np

from autotune import __version__
from autotune.codegen import environment
from autotune.emit.layer_code import LayerCode
from autotune.emit.ops.shape import header_lines, operands
from autotune.errors import InputError, UnsupportedOpError
from autotune.model.graph import Graph, Layer
from autotune.opdef import Op
from autotune.reference.registry import DATA_TYPES, OpContext, require_dtypes


def _data(ctx: OpContext, rank: int | None = 4) -> str | None:
    x, y = ctx.input(0), ctx.output(0)
    if x is None:
        return "input is required"
    reason = require_dtypes(x, y, allowed=DATA_TYPES)
    if reason:
        return reason
    if x.dtype != y.dtype:
        return f"input is {x.dtype}, output {y.dtype}"
    if rank is not None and (len(x.shape) != rank or len(y.shape) != rank):
        return f"input and output must be {rank}-D"
    return None


# --- RESIZE_NEAREST_NEIGHBOR ------------------------------------------------------------


def nearest(out_size: int, in_size: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    """GetNearestNeighbor for every output coordinate, in float32 as TFLM computes it."""
    if align_corners and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    offset = np.float32(0.5 if half_pixel else 0.0)
    pos = (np.arange(out_size, dtype=np.float32) + offset) * scale
    if align_corners:
        value = np.where(
            pos >= 0, np.floor(pos + np.float32(0.5)), -np.floor(-pos + np.float32(0.5))
        )
    else:
        value = np.floor(pos)
    value = np.minimum(value.astype(np.int64), in_size - 1)
    return np.maximum(value, 0) if half_pixel else value


def check_resize(ctx: OpContext) -> str | None:
    reason = _data(ctx)
    if reason:
        return reason
    size = ctx.input(1)
    if size is None or size.data is None or size.dtype != "int32" or size.size != 2:
        return "size must be a constant int32 [2]"
    x, y = ctx.input(0), ctx.output(0)
    assert x is not None
    want = (x.shape[0], *(int(v) for v in size.data.reshape(-1)), x.shape[3])
    if y.shape != want:
        return f"output shape {list(y.shape)}; the size operand gives {list(want)}"
    return None


def resize_nearest(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    y = ctx.output(0)
    align, half = (
        bool(ctx.options.get("align_corners")),
        bool(ctx.options.get("half_pixel_centers")),
    )
    rows = nearest(y.shape[1], x.shape[1], align, half)
    cols = nearest(y.shape[2], x.shape[2], align, half)
    return [x[:, rows][:, :, cols]]


# --- DEPTH_TO_SPACE / SPACE_TO_DEPTH ----------------------------------------------------


def _block(ctx: OpContext) -> int | str:
    bs = ctx.options.get("block_size", 0)
    if not isinstance(bs, int) or not 1 <= bs <= 64:
        return f"block_size {bs} is outside 1..64"
    return bs


def check_depth_to_space(ctx: OpContext) -> str | None:
    reason = _data(ctx)
    bs = _block(ctx)
    if reason or isinstance(bs, str):
        return reason or str(bs)
    x, y = ctx.input(0), ctx.output(0)
    assert x is not None
    n, h, w, c = x.shape
    if c % (bs * bs):
        return f"depth {c} is not a multiple of block_size^2 = {bs * bs}"
    if y.shape != (n, h * bs, w * bs, c // (bs * bs)):
        return f"output shape {list(y.shape)} does not match block_size {bs}"
    return None


def depth_to_space(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    bs = int(ctx.options["block_size"])
    n, h, w, c = x.shape
    oc = c // (bs * bs)
    moved = x.reshape(n, h, w, bs, bs, oc).transpose(0, 1, 3, 2, 4, 5)
    return [moved.reshape(n, h * bs, w * bs, oc)]


def check_space_to_depth(ctx: OpContext) -> str | None:
    reason = _data(ctx)
    bs = _block(ctx)
    if reason or isinstance(bs, str):
        return reason or str(bs)
    x, y = ctx.input(0), ctx.output(0)
    assert x is not None
    n, h, w, c = x.shape
    if h % bs or w % bs:
        return f"height {h} and width {w} must be multiples of block_size {bs}"
    if y.shape != (n, h // bs, w // bs, c * bs * bs):
        return f"output shape {list(y.shape)} does not match block_size {bs}"
    return None


def space_to_depth(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    bs = int(ctx.options["block_size"])
    n, h, w, c = x.shape
    moved = x.reshape(n, h // bs, bs, w // bs, bs, c).transpose(0, 1, 3, 2, 4, 5)
    return [moved.reshape(n, h // bs, w // bs, bs * bs * c)]


# --- GATHER -----------------------------------------------------------------------------


def _axis(ctx: OpContext) -> int:
    x = ctx.input(0)
    assert x is not None
    axis = int(ctx.options.get("axis", 0))
    return axis + len(x.shape) if axis < 0 else axis


def check_gather(ctx: OpContext) -> str | None:
    reason = _data(ctx, rank=None)
    if reason:
        return reason
    x, idx, y = ctx.input(0), ctx.input(1), ctx.output(0)
    assert x is not None
    if idx is None or idx.dtype not in ("int32", "int64"):
        return "indices must be int32 or int64"
    if int(ctx.options.get("batch_dims", 0)) != 0:
        return "batch_dims other than 0"
    axis = _axis(ctx)
    if not 0 <= axis < len(x.shape):
        return f"axis {ctx.options.get('axis')} is out of range for rank {len(x.shape)}"
    want = (*x.shape[:axis], *idx.shape, *x.shape[axis + 1 :])
    if y.shape != want:
        return f"output shape {list(y.shape)}; gathering gives {list(want)}"
    if idx.data is not None and (np.any(idx.data < 0) or np.any(idx.data >= x.shape[axis])):
        return f"an index is outside 0..{x.shape[axis] - 1}"
    return None


def gather(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x, idx = args
    assert x is not None and idx is not None
    axis = _axis(ctx)
    if np.any(idx < 0) or np.any(idx >= x.shape[axis]):  # TFLM's Eval fails on these too
        raise InputError(
            f"op {ctx.layer.index} (GATHER): an index is outside 0..{x.shape[axis] - 1}"
        )
    return [np.take(x, idx.astype(np.int64), axis=axis)]


# --- the C: one index table -------------------------------------------------------------


def emit_index_map(graph: Graph, layer: Layer, function: str) -> LayerCode:
    kernel, check = _KERNELS[layer.op]
    ctx = OpContext(graph, layer)
    reason = check(ctx)
    if not reason and layer.op == "GATHER":
        idx = ctx.input(1)
        if idx is None or idx.data is None:
            reason = "run-time indices (C is generated for constant indices)"
    if not reason and graph.tensors[layer.inputs[0]].data is not None:
        reason = "a constant input (nothing to compute at run time)"
    if reason:
        raise UnsupportedOpError(graph.path, layer.op, layer.index, reason)
    x, y = ctx.input(0), ctx.output(0)
    assert x is not None
    numbers = np.arange(x.size, dtype=np.int64).reshape(x.shape)
    args = [numbers, *(None if i < 0 else graph.tensors[i].data for i in layer.inputs[1:])]
    (source_index,) = kernel(ctx, args)
    flat = np.asarray(source_index).reshape(-1)
    index_type = "uint16_t" if x.size <= 65536 else "int32_t"
    rows = [", ".join(str(int(v)) for v in flat[i : i + 16]) for i in range(0, flat.size, 16)]
    ops = operands(graph, layer, bake=False)
    source = (
        environment()
        .get_template("ops/index_map.c.j2")
        .render(
            version=__version__,
            header=header_lines(graph, layer, "a copy per output element, from a table"),
            signature=ops.signature(function),
            index_type=index_type,
            size=y.size,
            rows=rows,
        )
    )
    return LayerCode(function, source, ops.inputs, ops.outputs, ops.state, description="index map")


_KERNELS = {
    "RESIZE_NEAREST_NEIGHBOR": (resize_nearest, check_resize),
    "DEPTH_TO_SPACE": (depth_to_space, check_depth_to_space),
    "SPACE_TO_DEPTH": (space_to_depth, check_space_to_depth),
    "GATHER": (gather, check_gather),
}

OPS = [
    Op(name, kernel, check, emitter=emit_index_map, description="element moves")
    for name, (kernel, check) in _KERNELS.items()
]
