"""Data-movement ops: PAD, PADV2, RESHAPE (SQUEEZE, EXPAND_DIMS), TRANSPOSE, CONCATENATION, STRIDED_SLICE,
SPLIT, SPLIT_V, UNPACK and REVERSE_V2.

None of them changes a value: TFLM copies int8 data raw (CONCATENATION does not
requantize inputs whose quantization differs from the output's), so the only
semantics to get right are the index rules, which follow TFLM's kernels,
including what they ignore (STRIDED_SLICE's ellipsis, new-axis and offset).
"""

from __future__ import annotations

import numpy as np

from autotune.model.graph import Tensor
from autotune.reference.registry import DATA_TYPES, OpContext, reference_op, require_dtypes


def _data_check(ctx: OpContext, *tensors: Tensor | None) -> str | None:
    if ctx.input(0) is None:
        return "input is required"
    return require_dtypes(*tensors, allowed=DATA_TYPES)


def _constant(ctx: OpContext, i: int, what: str) -> str | None:
    t = ctx.input(i)
    if t is None:
        return f"{what} tensor is required"
    if t.data is None:
        return f"{what} tensor '{t.name}' is not constant"
    if t.dtype != "int32":
        return f"{what} tensor '{t.name}' is {t.dtype}; supported: int32"
    return None


def normalize_axis(value: int, rank: int) -> int:
    return value + rank if value < 0 else value


# --- PAD / PADV2 -------------------------------------------------------------------


def check_pad(ctx: OpContext) -> str | None:
    x, y = ctx.input(0), ctx.output(0)
    reason = _data_check(ctx, x, y) or _constant(ctx, 1, "paddings")
    if reason:
        return reason
    assert x is not None
    paddings = ctx.input(1)
    assert paddings is not None and paddings.data is not None
    if paddings.data.shape != (len(x.shape), 2):
        return f"paddings must have shape [{len(x.shape)}, 2], got {list(paddings.data.shape)}"
    if np.any(paddings.data < 0):
        return "negative paddings"
    if len(x.shape) > 5:
        return f"rank {len(x.shape)}; supported: up to 5"
    value = ctx.input(2)
    if value is not None and (value.dtype != x.dtype or value.size != 1):
        return f"constant value '{value.name}' must be one {x.dtype} element"
    return None


def pad_value(ctx: OpContext, value: np.ndarray | None) -> int | float | np.generic:
    """What PAD writes outside the input: PADV2's constant, else the quantized zero
    (the output zero point) for int8 and 0 for the other types."""
    if value is not None:
        return value.reshape(-1)[0]
    x = ctx.input(0)
    assert x is not None
    return ctx.output(0).zero_point if x.dtype == "int8" else 0


def _pad(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x, paddings = args[0], args[1]
    assert x is not None and paddings is not None
    fill = pad_value(ctx, args[2] if len(args) > 2 else None)
    widths = [(int(a), int(b)) for a, b in paddings]
    return [np.pad(x, widths, constant_values=fill)]


reference_op("PAD", check=check_pad)(_pad)
reference_op("PADV2", check=check_pad)(_pad)


# --- RESHAPE / TRANSPOSE -----------------------------------------------------------


def check_reshape(ctx: OpContext) -> str | None:
    x, y = ctx.input(0), ctx.output(0)
    reason = _data_check(ctx, x, y)
    if reason:
        return reason
    assert x is not None
    if x.size != y.size:
        return f"cannot reshape {list(x.shape)} into {list(y.shape)}"
    return None


@reference_op("RESHAPE", check=check_reshape)
def reshape(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    return [x.reshape(ctx.output(0).shape)]


# SQUEEZE and EXPAND_DIMS only drop or add axes of extent one: the same bytes under the
# output's (static) shape, as RESHAPE.
reference_op("SQUEEZE", check=check_reshape)(reshape)
reference_op("EXPAND_DIMS", check=check_reshape)(reshape)


def check_transpose(ctx: OpContext) -> str | None:
    x, y = ctx.input(0), ctx.output(0)
    reason = require_dtypes(x, y, allowed=("int8", "int16", "float32")) or _constant(ctx, 1, "perm")
    if reason:
        return reason
    assert x is not None
    perm_t = ctx.input(1)
    assert perm_t is not None and perm_t.data is not None
    perm = [normalize_axis(int(p), len(x.shape)) for p in perm_t.data.reshape(-1)]
    if sorted(perm) != list(range(len(x.shape))):
        return f"perm {perm_t.data.tolist()} is not a permutation of {len(x.shape)} axes"
    if len(x.shape) > 5:
        return f"rank {len(x.shape)}; supported: up to 5"
    return None


@reference_op("TRANSPOSE", check=check_transpose)
def transpose(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x, perm = args[0], args[1]
    assert x is not None and perm is not None
    return [np.transpose(x, [normalize_axis(int(p), x.ndim) for p in perm.reshape(-1)])]


# --- CONCATENATION -----------------------------------------------------------------


def check_concatenation(ctx: OpContext) -> str | None:
    tensors = ctx.inputs
    y = ctx.output(0)
    if not tensors or any(t is None for t in tensors):
        return "every input is required"
    reason = require_dtypes(*tensors, y, allowed=DATA_TYPES)
    if reason:
        return reason
    for t in tensors:
        assert t is not None
        if t.dtype != y.dtype:
            return "inputs and output must share one type"
        if y.dtype == "int8" and (t.scale, t.zero_point) != (y.scale, y.zero_point):
            return (
                f"input '{t.name}' is quantized differently from the output"
                " (TFLM does not requantize in CONCATENATION)"
            )
        if y.dtype == "int16" and t.zero_point != 0:
            return f"int16 input '{t.name}' has zero point {t.zero_point}; supported: 0"
    if ctx.options.get("fused_activation_function", "NONE") != "NONE":
        return "fused activation on CONCATENATION; supported: NONE"
    axis = normalize_axis(int(ctx.options.get("axis", 0)), len(y.shape))
    for t in tensors:
        assert t is not None
        if len(t.shape) != len(y.shape) or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, y.shape, strict=True)) if i != axis
        ):
            return f"input '{t.name}' {list(t.shape)} does not fit output {list(y.shape)}"
    return None


@reference_op("CONCATENATION", check=check_concatenation)
def concatenation(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    """Raw concatenation: int8 inputs keep their codes whatever their quantization."""
    axis = normalize_axis(int(ctx.options.get("axis", 0)), len(ctx.output(0).shape))
    return [np.concatenate([a for a in args if a is not None], axis=axis)]


# --- STRIDED_SLICE -----------------------------------------------------------------


def slice_bounds(
    shape: tuple[int, ...],
    begin: np.ndarray,
    end: np.ndarray,
    strides: np.ndarray,
    begin_mask: int,
    end_mask: int,
    shrink_mask: int,
) -> list[tuple[int, int, int]]:
    """(start, stop, stride) per axis, as TFLM's StartForAxis / StopForAxis compute them."""
    bounds = []
    for axis, size in enumerate(shape):
        stride = int(strides[axis])
        if size == 0:
            bounds.append((0, 0, stride))
            continue
        lo, hi = (0, size) if stride > 0 else (-1, size - 1)
        start = int(begin[axis])
        if begin_mask & (1 << axis):
            start = -(2**31) if stride > 0 else 2**31 - 1
        if start < 0:
            start += size
        start = min(max(start, lo), hi)
        if shrink_mask & (1 << axis):
            bounds.append((start, start + 1, stride))
            continue
        stop = int(end[axis])
        if end_mask & (1 << axis):
            stop = 2**31 - 1 if stride > 0 else -(2**31)
        if stop < 0:
            stop += size
        stop = min(max(stop, lo), hi)
        bounds.append((start, stop, stride))
    return bounds


def slice_plan(
    ctx: OpContext, shape: tuple[int, ...], index: list[np.ndarray]
) -> list[tuple[int, int, int]]:
    """Bounds for this layer; index holds the begin, end and strides arrays."""
    opts = ctx.options
    begin, end, strides = (np.asarray(a).reshape(-1) for a in index)
    return slice_bounds(
        shape,
        begin,
        end,
        strides,
        int(opts.get("begin_mask", 0)),
        int(opts.get("end_mask", 0)),
        int(opts.get("shrink_axis_mask", 0)),
    )


def check_strided_slice(ctx: OpContext) -> str | None:
    x, y = ctx.input(0), ctx.output(0)
    reason = _data_check(ctx, x, y)
    for i, what in ((1, "begin"), (2, "end"), (3, "strides")):
        reason = reason or _constant(ctx, i, what)
    if reason:
        return reason
    assert x is not None
    if len(x.shape) > 4:
        return f"rank {len(x.shape)}; supported: up to 4"
    index = []
    for i in (1, 2, 3):
        t = ctx.input(i)
        assert t is not None and t.data is not None
        if t.data.size != len(x.shape):
            return f"'{t.name}' has {t.data.size} entries for a rank-{len(x.shape)} input"
        index.append(t.data)
    if np.any(index[2] == 0):
        return "stride 0"
    shrink = int(ctx.options.get("shrink_axis_mask", 0))
    plan = slice_plan(ctx, x.shape, index)
    for axis, (start, stop, stride) in enumerate(plan):
        picked = range(start, stop, stride)
        if len(picked) and not (0 <= picked[0] < x.shape[axis] and 0 <= picked[-1] < x.shape[axis]):
            return f"the slice reads outside axis {axis} of size {x.shape[axis]}"
        if shrink & (1 << axis) and len(picked) != 1:
            # TFLM's loop walks [begin, begin + 1) by the stride: a negative one picks nothing.
            return f"shrunk axis {axis} picks {len(picked)} elements (stride {stride})"
    shape = [
        max(0, -(-(stop - start) // stride))
        for axis, (start, stop, stride) in enumerate(plan)
        if not shrink & (1 << axis)
    ]
    if shape != list(y.shape):
        return (
            f"the slice has shape {shape}, the output {list(y.shape)}"
            " (TFLM ignores ellipsis_mask, new_axis_mask and offset)"
        )
    return None


@reference_op("STRIDED_SLICE", check=check_strided_slice)
def strided_slice(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x, begin, end, strides = args
    assert x is not None and begin is not None and end is not None and strides is not None
    plan = slice_plan(ctx, x.shape, [begin, end, strides])
    picks = [np.arange(start, stop, stride) for start, stop, stride in plan]
    return [x[np.ix_(*picks)].reshape(ctx.output(0).shape)]


# --- SPLIT / SPLIT_V / UNPACK ------------------------------------------------------


def _split_check(ctx: OpContext, data_index: int, axis_index: int) -> str | None:
    x = ctx.input(data_index)
    if x is None:
        return "input is required"
    reason = require_dtypes(x, *ctx.outputs, allowed=DATA_TYPES) or _constant(
        ctx, axis_index, "axis"
    )
    if reason:
        return reason
    axis_t = ctx.input(axis_index)
    assert axis_t is not None and axis_t.data is not None
    axis = normalize_axis(int(axis_t.data.reshape(-1)[0]), len(x.shape))
    if not 0 <= axis < len(x.shape):
        return f"axis {int(axis_t.data.reshape(-1)[0])} is out of range for rank {len(x.shape)}"
    sizes = [y.shape[axis] if len(y.shape) == len(x.shape) else -1 for y in ctx.outputs]
    if sum(sizes) != x.shape[axis] or -1 in sizes:
        return f"outputs do not tile input axis {axis} ({x.shape[axis]} elements)"
    return None


def _split_by_outputs(ctx: OpContext, x: np.ndarray, axis_value: np.ndarray) -> list[np.ndarray]:
    axis = normalize_axis(int(axis_value.reshape(-1)[0]), x.ndim)
    edges = np.cumsum([y.shape[axis] for y in ctx.outputs])[:-1]
    return np.split(x, edges, axis=axis)


@reference_op("SPLIT", check=lambda ctx: _split_check(ctx, 1, 0))
def split(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    axis, x = args[0], args[1]
    assert x is not None and axis is not None
    return _split_by_outputs(ctx, x, axis)


@reference_op("SPLIT_V", check=lambda ctx: _split_check(ctx, 0, 2))
def split_v(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x, axis = args[0], args[2]
    assert x is not None and axis is not None
    return _split_by_outputs(ctx, x, axis)


def check_unpack(ctx: OpContext) -> str | None:
    x = ctx.input(0)
    reason = _data_check(ctx, x, *ctx.outputs)
    if reason:
        return reason
    assert x is not None
    axis = normalize_axis(int(ctx.options.get("axis", 0)), len(x.shape))
    if not 0 <= axis < len(x.shape):
        return f"axis {ctx.options.get('axis')} is out of range for rank {len(x.shape)}"
    if len(ctx.outputs) != x.shape[axis]:
        return f"{len(ctx.outputs)} outputs for an axis of {x.shape[axis]}"
    return None


@reference_op("UNPACK", check=check_unpack)
def unpack(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    axis = normalize_axis(int(ctx.options.get("axis", 0)), x.ndim)
    return [np.take(x, i, axis=axis) for i in range(x.shape[axis])]


# --- REVERSE_V2 --------------------------------------------------------------------


def check_reverse(ctx: OpContext) -> str | None:
    x, y = ctx.input(0), ctx.output(0)
    reason = _data_check(ctx, x, y) or _constant(ctx, 1, "axis")
    if reason:
        return reason
    assert x is not None
    axis_t = ctx.input(1)
    assert axis_t is not None and axis_t.data is not None
    for a in axis_t.data.reshape(-1):
        if not -len(x.shape) <= int(a) < len(x.shape):
            return f"axis {int(a)} is out of range for rank {len(x.shape)}"
    axes = sorted({normalize_axis(int(a), len(x.shape)) for a in axis_t.data.reshape(-1)})
    if axes and axes != list(range(axes[0], axes[-1] + 1)):
        return f"axes {axes} are not contiguous (TFLM reverses one contiguous run of axes)"
    return None


@reference_op("REVERSE_V2", check=check_reverse)
def reverse_v2(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x, axis = args[0], args[1]
    assert x is not None and axis is not None
    axes = sorted({normalize_axis(int(a), x.ndim) for a in axis.reshape(-1)})
    return [np.flip(x, axis=tuple(axes))]


# --- SHAPE / PACK -------------------------------------------------------------------
# Keras' dynamic-reshape pattern (SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE) is folded
# into constants at import (reference/fold.py) with these same kernels.


def check_shape(ctx: OpContext) -> str | None:
    x, y = ctx.input(0), ctx.output(0)
    if x is None:
        return "input is required"
    if y.dtype not in ("int32", "int64"):
        return f"output '{y.name}' is {y.dtype}; supported: int32, int64"
    if y.shape != (len(x.shape),):
        return f"output has shape {list(y.shape)}, the input's rank is {len(x.shape)}"
    return None


@reference_op("SHAPE", check=check_shape)
def shape(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    x = ctx.input(0)
    assert x is not None
    return [np.array(x.shape, dtype=ctx.output(0).dtype)]


def check_pack(ctx: OpContext) -> str | None:
    xs, y = ctx.inputs, ctx.output(0)
    if not xs or any(x is None for x in xs):
        return "every input is required"
    reason = require_dtypes(*xs, y, allowed=DATA_TYPES)
    if reason:
        return reason
    first = xs[0]
    assert first is not None
    if any(x is not None and (x.shape != first.shape or x.dtype != first.dtype) for x in xs):
        return "inputs differ in shape or type"
    count = ctx.options.get("values_count", len(xs))
    if count != len(xs):
        return f"values_count {count} for {len(xs)} inputs"
    axis = normalize_axis(int(ctx.options.get("axis", 0)), len(first.shape) + 1)
    if not 0 <= axis <= len(first.shape):
        return f"axis {ctx.options.get('axis')} is out of range for rank {len(first.shape)}"
    want = (*first.shape[:axis], len(xs), *first.shape[axis:])
    if y.shape != want:
        return f"output has shape {list(y.shape)}, packing gives {list(want)}"
    return None


@reference_op("PACK", check=check_pack)
def pack(ctx: OpContext, args: list[np.ndarray | None]) -> list[np.ndarray]:
    first = args[0]
    assert first is not None
    axis = normalize_axis(int(ctx.options.get("axis", 0)), first.ndim + 1)
    return [np.stack([a for a in args if a is not None], axis=axis)]
