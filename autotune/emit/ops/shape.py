"""Data-movement ops in C: TRANSPOSE, STRIDED_SLICE, CONCATENATION, SPLIT, SPLIT_V,
UNPACK, REVERSE_V2, PAD and PADV2.

Every one of them is a handful of *moves*: boxes of the output written either from
a source tensor through constant strides (possibly negative) or with a constant.
Shapes are known at generation time, so each move is simplified before it becomes
C: axes of extent one disappear, axes that are contiguous in both the source and the
destination merge, and a contiguous innermost run becomes one memcpy/memset. What
is left is a short nest of loops with constant bounds and strides. memcpy and memset
are GCC's builtins: small constant sizes are inlined, larger ones call the firmware's
libc, and no libc header is needed (some bare-metal toolchains ship none).

The index rules (negative axes, slice bounds, split offsets, the PAD value) come
from the reference kernels in autotune.reference.ops.shape, so the C cannot drift
from them. The small C-writing helpers here are shared by the other op modules.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autotune import __version__
from autotune.codegen import environment
from autotune.emit.layer_code import LayerCode, c_type, layer_io, op_emitter
from autotune.errors import UnsupportedOpError
from autotune.model.graph import Graph, Layer, Tensor
from autotune.reference import ops as _reference_ops  # noqa: F401  (registers the checks)
from autotune.reference.ops.shape import normalize_axis, pad_value, slice_plan
from autotune.reference.registry import REGISTRY, OpContext

# Contiguous runs shorter than this are copied element by element: a call costs more.
MEMCPY_MIN_BYTES = 16


# --- helpers shared by the op modules ------------------------------------------------


def checked_context(graph: Graph, layer: Layer) -> OpContext:
    """The layer's OpContext once the reference kernel has accepted the layer.

    C is generated only for what the reference computes, so that the two agree on
    every layer that reaches a device."""
    spec = REGISTRY.get(layer.op)
    if spec is None:
        raise UnsupportedOpError(graph.path, layer.op, layer.index, "no reference kernel")
    ctx = OpContext(graph, layer)
    reason = spec.check(ctx) if spec.check is not None else None
    if reason:
        raise UnsupportedOpError(graph.path, layer.op, layer.index, reason)
    return ctx


def describe(t: Tensor) -> str:
    """Shape, type and quantization of a tensor, for the generated file's header."""
    quant = f" ({t.quant.describe()})" if t.quant is not None else ""
    return f"{'x'.join(map(str, t.shape)) or 'scalar'} {t.dtype}{quant}"


def header_lines(graph: Graph, layer: Layer, note: str = "") -> list[str]:
    """The lines of the generated file's header comment: layer, op and shapes."""
    lines = [f"Layer {layer.index}: {layer.op}" + (f" - {note}" if note else "")]
    for i in layer.inputs:
        t = graph.tensor(i)
        if t is not None:
            kind = "constant" if t.data is not None else "state" if t.variable else "input"
            lines.append(f"{kind} {t.name}: {describe(t)}")
    for i in layer.outputs:
        lines.append(f"output {graph.tensors[i].name}: {describe(graph.tensors[i])}")
    return lines


def render(template: str, graph: Graph, layer: Layer, note: str = "", **context: Any) -> str:
    """Render kernels/ops/TEMPLATE with the common header."""
    return (
        environment()
        .get_template(f"ops/{template}")
        .render(version=__version__, header=header_lines(graph, layer, note), **context)
    )


def row_strides(shape: tuple[int, ...] | list[int]) -> list[int]:
    """Element strides of a row-major array."""
    out = [1] * len(shape)
    for k in range(len(shape) - 2, -1, -1):
        out[k] = out[k + 1] * int(shape[k + 1])
    return out


def c_literal(dtype: str, value: Any) -> str:
    """An exact C literal of one value of dtype (hexadecimal for floats)."""
    if dtype == "float32":
        v = float(np.float32(value))
        if math.isnan(v):  # the same bits: sign, quiet or signalling, payload
            bits = int(np.array(value, np.float32).view(np.uint32))
            kind = "nanf" if bits & 0x400000 else "nansf"
            sign = "-" if bits >> 31 else ""
            return f'({sign}__builtin_{kind}("0x{bits & 0x3FFFFF:x}"))'
        if math.isinf(v):
            return "__builtin_inff()" if v > 0 else "(-__builtin_inff())"
        return f"{v.hex()}f"
    v = int(value)
    if dtype == "int32" and v == -(2**31):
        return "(-2147483647 - 1)"
    return f"({v})" if v < 0 else str(v)


def const_array(dtype: str, name: str, values: np.ndarray, per_line: int = 16) -> str:
    """A static const C array holding values (flash on a microcontroller)."""
    flat = [c_literal(dtype, v) for v in np.asarray(values).reshape(-1)] or ["0"]
    rows = ["    " + ", ".join(flat[i : i + per_line]) + "," for i in range(0, len(flat), per_line)]
    return (
        f"static const {c_type(dtype)} {name}[{len(flat)}] __attribute__((aligned(4))) = {{\n"
        + "\n".join(rows)
        + "\n};"
    )


def index(variables: list[str], strides: list[int], offset: int = 0) -> str:
    """offset + sum(var * stride) as a C expression, with the trivial terms left out."""
    text = str(offset) if offset else ""
    for var, stride in zip(variables, strides, strict=True):
        if stride == 0:
            continue
        term = var if abs(stride) == 1 else f"{var} * {abs(stride)}"
        if text:
            text += f" {'-' if stride < 0 else '+'} {term}"
        else:
            text = term if stride > 0 else f"0 - {term}"
    return text or "0"


def loop_nest(counts: list[int], variables: list[str], body: list[str], depth: int) -> list[str]:
    """for-loops over counts (outermost first) around body, indented from depth."""
    lines = []
    for k, (count, var) in enumerate(zip(counts, variables, strict=True)):
        pad = "    " * (depth + k)
        lines.append(f"{pad}for (int32_t {var} = 0; {var} < {count}; ++{var}) {{")
    inner = "    " * (depth + len(counts))
    lines += [inner + line if line else line for line in body]
    for k in range(len(counts) - 1, -1, -1):
        lines.append("    " * (depth + k) + "}")
    return lines


def merge_axes(dims: list[tuple[int, ...]], width: int) -> list[tuple[int, ...]] | None:
    """Drop extent-one axes and merge neighbours that are contiguous in every operand.

    dims holds (count, stride of operand 0, ..., stride of operand width-1) per axis,
    outermost first. Returns None when some count is zero (nothing to do), and one
    unit axis for a single element."""
    if any(d[0] == 0 for d in dims):
        return None
    merged: list[tuple[int, ...]] = []
    for d in (d for d in dims if d[0] != 1):
        if merged and all(o == d[0] * s for o, s in zip(merged[-1][1:], d[1:], strict=True)):
            merged[-1] = (merged[-1][0] * d[0], *d[1:])
        else:
            merged.append(tuple(d))
    if not merged:
        merged = [(1, *([1] * width))]
    return merged


@dataclass
class Operands:
    """C names of a layer's tensors: parameters for activations, arrays for constants."""

    names: dict[int, str]
    params: list[str]
    arrays: list[str] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    state: list[int] = field(default_factory=list)

    def signature(self, function: str) -> str:
        return f"void {function}({', '.join(self.params)}, void *scratch)"


def operands(graph: Graph, layer: Layer, bake: bool = True) -> Operands:
    """Name every tensor of the layer in the calling convention's order (in0.., out0..,
    state0..). With bake, constant inputs become static const arrays c0, c1, ..."""
    inputs, outputs, state = layer_io(graph, layer)
    names: dict[int, str] = {}
    params: list[str] = []
    for k, t in enumerate(inputs):
        names.setdefault(t, f"in{k}")
        params.append(f"const {c_type(graph.tensors[t].dtype)} *in{k}")
    for k, t in enumerate(outputs):
        names[t] = f"out{k}"
        params.append(f"{c_type(graph.tensors[t].dtype)} *out{k}")
    for k, t in enumerate(state):
        names[t] = f"state{k}"
        params.append(f"{c_type(graph.tensors[t].dtype)} *state{k}")
    arrays: list[str] = []
    if bake:
        for t in layer.inputs:
            tensor = graph.tensor(t)
            if tensor is not None and tensor.data is not None and t not in names:
                names[t] = f"c{len(arrays)}"
                arrays.append(const_array(tensor.dtype, names[t], tensor.data))
    return Operands(names, params, arrays, inputs, outputs, state)


def unused_parameters(ops: Operands, body: str) -> list[str]:
    """(void) casts for the parameters the body never reads (-Wextra warns otherwise)."""
    names = [p.rsplit("*", 1)[1] for p in ops.params] + ["scratch"]
    return [f"(void){n};" for n in names if not re.search(rf"\b{n}\b", body)]


# --- moves ---------------------------------------------------------------------------


@dataclass
class Move:
    """One box of an output, written from a source through strides, or with a constant.

    dims holds (count, destination stride, source stride) per axis, outermost first;
    a fill has no source and every source stride 0."""

    dst: str
    dims: list[tuple[int, int, int]]
    dst_offset: int = 0
    src: str | None = None
    src_offset: int = 0
    fill: str = ""  # C expression of the value a fill writes
    fill_byte: int | None = None  # the byte every byte of that value is, when it is one
    note: str = ""


def fill_byte(dtype: str, value: Any) -> int | None:
    """The byte memset must repeat to write value, or None when its bytes differ."""
    raw = np.asarray(value, dtype=dtype).tobytes()
    return raw[0] if len(set(raw)) == 1 else None


def move_lines(move: Move, dtype: str) -> list[str]:
    """C statements for one move (an empty list when the box is empty)."""
    dims = merge_axes([tuple(d) for d in move.dims], 2)
    if dims is None:
        return []
    size = np.dtype(dtype).itemsize
    *outer, (count, dst_stride, src_stride) = dims
    variables = [f"i{k}" for k in range(len(outer))]
    dst_at = index(variables, [d[1] for d in outer], move.dst_offset)
    src_at = index(variables, [d[2] for d in outer], move.src_offset)
    lines = [f"/* {move.note} */"] if move.note else []
    contiguous = dst_stride == 1 and (move.src is None or src_stride == 1)
    if contiguous and count * size >= MEMCPY_MIN_BYTES and (move.src or move.fill_byte is not None):
        if move.src is not None:
            body = (
                f"__builtin_memcpy(&{move.dst}[{dst_at}], &{move.src}[{src_at}], {count * size});"
            )
        else:
            body = (
                f"__builtin_memset(&{move.dst}[{dst_at}], 0x{move.fill_byte:02x}, {count * size});"
            )
        return lines + loop_nest([d[0] for d in outer], variables, [body], 0)
    # Element by element: the innermost axis becomes one more loop.
    variables.append(f"i{len(outer)}")
    strides = [d[1] for d in outer] + [dst_stride]
    target = f"{move.dst}[{index(variables, strides, move.dst_offset)}]"
    if move.src is None:
        value = move.fill
    else:
        src_strides = [d[2] for d in outer] + [src_stride]
        value = f"{move.src}[{index(variables, src_strides, move.src_offset)}]"
    counts = [d[0] for d in outer] + [count]
    if count == 1:  # a single element per outer step: no innermost loop
        counts, variables = counts[:-1], variables[:-1]
        target = f"{move.dst}[{dst_at}]"
        value = move.fill if move.src is None else f"{move.src}[{src_at}]"
    return lines + loop_nest(counts, variables, [f"{target} = {value};"], 0)


def moves_code(
    graph: Graph,
    layer: Layer,
    function: str,
    ops: Operands,
    moves: list[Move],
    dtype: str,
    note: str,
    prologue: str = "",
) -> LayerCode:
    body: list[str] = [f"    {prologue}"] if prologue else []
    for move in moves:
        lines = move_lines(move, dtype)
        if lines:
            body += ["    " + line for line in lines] + [""]
    text = "\n".join(body).rstrip("\n")
    source = render(
        "shape_move.c.j2",
        graph,
        layer,
        note,
        fn=function,
        signature=ops.signature(function),
        arrays=ops.arrays,
        unused=unused_parameters(ops, text),
        body=text,
    )
    return LayerCode(
        function,
        source,
        ops.inputs,
        ops.outputs,
        ops.state,
        description=note,
    )


def _data_type(graph: Graph, layer: Layer) -> str:
    """The one element type of a data-movement layer's data tensors."""
    data = [graph.tensors[t] for t in layer.outputs]
    dtypes = {t.dtype for t in data}
    if len(dtypes) != 1:
        raise UnsupportedOpError(
            graph.path, layer.op, layer.index, f"outputs of several types {sorted(dtypes)}"
        )
    return dtypes.pop()


def _same_type(graph: Graph, layer: Layer, tensors: list[Tensor | None], dtype: str) -> None:
    for t in tensors:
        if t is not None and t.dtype != dtype:
            raise UnsupportedOpError(
                graph.path,
                layer.op,
                layer.index,
                f"tensor '{t.name}' is {t.dtype}, the output {dtype}; data movement keeps the type",
            )


# --- the ops -------------------------------------------------------------------------


@op_emitter("TRANSPOSE")
def transpose(graph: Graph, layer: Layer, function: str) -> LayerCode:
    ctx = checked_context(graph, layer)
    x, y = ctx.input(0), ctx.output(0)
    assert x is not None and ctx.input(1) is not None
    dtype = _data_type(graph, layer)
    _same_type(graph, layer, [x], dtype)
    perm_t = ctx.input(1)
    assert perm_t is not None and perm_t.data is not None
    perm = [normalize_axis(int(p), len(x.shape)) for p in perm_t.data.reshape(-1)]
    ops = operands(graph, layer, bake=False)
    src, dst = row_strides(x.shape), row_strides(y.shape)
    dims = [(int(y.shape[k]), dst[k], src[perm[k]]) for k in range(len(perm))]
    move = Move(
        ops.names[y.index],
        dims,
        src=ops.names[x.index],
        note=f"output[...] = input permuted by {perm}",
    )
    return moves_code(graph, layer, function, ops, [move], dtype, f"perm {perm}")


@op_emitter("STRIDED_SLICE")
def strided_slice(graph: Graph, layer: Layer, function: str) -> LayerCode:
    ctx = checked_context(graph, layer)
    x, y = ctx.input(0), ctx.output(0)
    assert x is not None
    dtype = _data_type(graph, layer)
    _same_type(graph, layer, [x], dtype)
    index_arrays = []
    for i in (1, 2, 3):
        t = ctx.input(i)
        assert t is not None and t.data is not None
        index_arrays.append(t.data)
    bounds = slice_plan(ctx, x.shape, index_arrays)
    counts = [len(range(start, stop, stride)) for start, stop, stride in bounds]
    if math.prod(counts) != y.size:
        raise UnsupportedOpError(
            graph.path,
            layer.op,
            layer.index,
            f"the slice has {math.prod(counts)} elements, the output {y.size}",
        )
    src, dst = row_strides(x.shape), row_strides(counts)
    ops = operands(graph, layer, bake=False)
    dims = [
        (count, dst[k], stride * src[k])
        for k, (count, (_, _, stride)) in enumerate(zip(counts, bounds, strict=True))
    ]
    offset = sum(start * src[k] for k, (start, _, _) in enumerate(bounds) if counts[k])
    spans = ", ".join(f"{a}:{b}:{s}" for a, b, s in bounds)
    move = Move(
        ops.names[y.index], dims, src=ops.names[x.index], src_offset=offset, note=f"input[{spans}]"
    )
    return moves_code(graph, layer, function, ops, [move], dtype, f"[{spans}]")


@op_emitter("CONCATENATION")
def concatenation(graph: Graph, layer: Layer, function: str) -> LayerCode:
    ctx = checked_context(graph, layer)
    y = ctx.output(0)
    dtype = _data_type(graph, layer)
    axis = normalize_axis(int(ctx.options.get("axis", 0)), len(y.shape))
    ops = operands(graph, layer)
    dst = row_strides(y.shape)
    moves, offset = [], 0
    for t in ctx.inputs:
        assert t is not None
        src = row_strides(t.shape)
        dims = [(int(n), dst[k], src[k]) for k, n in enumerate(t.shape)]
        moves.append(
            Move(
                ops.names[y.index],
                dims,
                dst_offset=offset * dst[axis],
                src=ops.names[t.index],
                note=f"{t.name}: output axis {axis} [{offset}, {offset + t.shape[axis]})",
            )
        )
        offset += t.shape[axis]
    return moves_code(graph, layer, function, ops, moves, dtype, f"axis {axis}")


def _split(graph: Graph, layer: Layer, function: str, data: int, axis_input: int) -> LayerCode:
    ctx = checked_context(graph, layer)
    x, axis_t = ctx.input(data), ctx.input(axis_input)
    assert x is not None and axis_t is not None and axis_t.data is not None
    dtype = _data_type(graph, layer)
    _same_type(graph, layer, [x], dtype)
    axis = normalize_axis(int(axis_t.data.reshape(-1)[0]), len(x.shape))
    ops = operands(graph, layer, bake=False)
    src = row_strides(x.shape)
    moves, offset = [], 0
    for y in ctx.outputs:
        dst = row_strides(y.shape)
        dims = [(int(n), dst[k], src[k]) for k, n in enumerate(y.shape)]
        moves.append(
            Move(
                ops.names[y.index],
                dims,
                src=ops.names[x.index],
                src_offset=offset * src[axis],
                note=f"{y.name}: input axis {axis} [{offset}, {offset + y.shape[axis]})",
            )
        )
        offset += y.shape[axis]
    return moves_code(graph, layer, function, ops, moves, dtype, f"axis {axis}")


@op_emitter("SPLIT")
def split(graph: Graph, layer: Layer, function: str) -> LayerCode:
    return _split(graph, layer, function, data=1, axis_input=0)


@op_emitter("SPLIT_V")
def split_v(graph: Graph, layer: Layer, function: str) -> LayerCode:
    return _split(graph, layer, function, data=0, axis_input=2)


@op_emitter("UNPACK")
def unpack(graph: Graph, layer: Layer, function: str) -> LayerCode:
    ctx = checked_context(graph, layer)
    x = ctx.input(0)
    assert x is not None
    dtype = _data_type(graph, layer)
    _same_type(graph, layer, [x], dtype)
    axis = normalize_axis(int(ctx.options.get("axis", 0)), len(x.shape))
    ops = operands(graph, layer, bake=False)
    src = row_strides(x.shape)
    kept = [k for k in range(len(x.shape)) if k != axis]
    dst = row_strides([x.shape[k] for k in kept])
    moves = [
        Move(
            ops.names[y.index],
            [(int(x.shape[k]), dst[j], src[k]) for j, k in enumerate(kept)],
            src=ops.names[x.index],
            src_offset=i * src[axis],
            note=f"{y.name}: input index {i} on axis {axis}",
        )
        for i, y in enumerate(ctx.outputs)
    ]
    return moves_code(graph, layer, function, ops, moves, dtype, f"axis {axis}")


@op_emitter("REVERSE_V2")
def reverse_v2(graph: Graph, layer: Layer, function: str) -> LayerCode:
    ctx = checked_context(graph, layer)
    x, y, axis_t = ctx.input(0), ctx.output(0), ctx.input(1)
    assert x is not None and axis_t is not None and axis_t.data is not None
    dtype = _data_type(graph, layer)
    _same_type(graph, layer, [x], dtype)
    axes = sorted({normalize_axis(int(a), len(x.shape)) for a in axis_t.data.reshape(-1)})
    ops = operands(graph, layer, bake=False)
    strides = row_strides(x.shape)
    dims, offset = [], 0
    for k, n in enumerate(x.shape):
        if k in axes:
            dims.append((int(n), strides[k], -strides[k]))
            offset += (int(n) - 1) * strides[k]
        else:
            dims.append((int(n), strides[k], strides[k]))
    move = Move(
        ops.names[y.index],
        dims,
        src=ops.names[x.index],
        src_offset=offset,
        note=f"input reversed along axes {axes}",
    )
    return moves_code(graph, layer, function, ops, [move], dtype, f"axes {axes}")


@op_emitter("PAD", "PADV2")
def pad(graph: Graph, layer: Layer, function: str) -> LayerCode:
    ctx = checked_context(graph, layer)
    x, y, paddings_t = ctx.input(0), ctx.output(0), ctx.input(1)
    assert x is not None and paddings_t is not None and paddings_t.data is not None
    dtype = _data_type(graph, layer)
    _same_type(graph, layer, [x], dtype)
    ops = operands(graph, layer, bake=False)
    value_t = ctx.input(2)
    if value_t is not None and value_t.data is None:
        # PADV2 with a value computed at run time: read it once.
        fill, byte, what = "value", None, f"the value of {value_t.name}"
        prologue = f"{c_type(dtype)} value = {ops.names[value_t.index]}[0];"
    else:
        value = pad_value(ctx, value_t.data if value_t is not None else None)
        fill, byte, what = c_literal(dtype, value), fill_byte(dtype, value), f"{value}"
        prologue = ""
    widths = [(int(a), int(b)) for a, b in paddings_t.data.reshape(-1, 2)]
    out = row_strides(y.shape)
    rank = len(x.shape)
    before: list[Move] = []
    after: list[Move] = []
    dst = ops.names[y.index]
    for k in range(rank):
        # Axes before k: inside the input; axis k: one border; axes after k: everything.
        inner = [(int(x.shape[j]), out[j], 0) for j in range(k)]
        outer_offset = sum(widths[j][0] * out[j] for j in range(k))
        tail = [(int(y.shape[j]), out[j], 0) for j in range(k + 1, rank)]
        lo, hi = widths[k]
        before.append(
            Move(
                dst,
                [*inner, (lo, out[k], 0), *tail],
                outer_offset,
                fill=fill,
                fill_byte=byte,
                note=f"axis {k}: {lo} before",
            )
        )
        after.append(
            Move(
                dst,
                [*inner, (hi, out[k], 0), *tail],
                outer_offset + (lo + x.shape[k]) * out[k],
                fill=fill,
                fill_byte=byte,
                note=f"axis {k}: {hi} after",
            )
        )
    src = row_strides(x.shape)
    copy = Move(
        dst,
        [(int(n), out[k], src[k]) for k, n in enumerate(x.shape)],
        sum(lo * out[k] for k, (lo, _) in enumerate(widths)),
        src=ops.names[x.index],
        note="the input",
    )
    moves = [*before, copy, *reversed(after)]
    note = f"paddings {widths}, value {what}"
    return moves_code(graph, layer, function, ops, moves, dtype, note, prologue)
