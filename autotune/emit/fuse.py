"""Residual blocks computed row by row: conv -> conv -> ADD(block input, .) without the
two convolutions' outputs in the arena.

In a block y = x + conv_b(conv_a(x)) with same-size stride-1 convolutions, x must stay
until the ADD while conv_a writes a tensor as large again: two whole tensors, the
peak of ResNet-style models' arenas. Fused, the ADD's function computes y row by row:
conv_b's next output row reads kernel-height rows of t1 = conv_a(x), kept in a small
window in scratch, each computed when needed from the x rows around it; the t2 row is
added to x's row at once, and y's row r may be written over x's row r (t1's later rows
read x rows > r only, as `residual_blocks` checks from the padding). The arena keeps x
(= y) and a few rows.

Nothing is recomputed and every op keeps its own integers: the convolutions run their
templates' code on a strip (kernel-height input rows, one output row; the choice's
variant where it applies to the strip), the ADD its template's code on one row. The
least-RAM library (`library.small_choices`) uses it; a tuned run under a RAM budget
does where the budget needs it (`tune/fused.py` measures the block fused).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from autotune.emit.layer_code import LayerCode
from autotune.emit.ops.shape import render
from autotune.errors import AutotuneError
from autotune.model.graph import Graph
from autotune.platform import plugins
from autotune.platform.target import Target
from autotune.tune.space import Point
from autotune.tune.spec import KernelSpec, build_spec
from autotune.tune.template import KernelTemplate

# The Choice.template that marks an ADD layer as a fused block's (library.Choice).
FUSED = "residual_rows"


class NotFusable(AutotuneError):
    """A block's layer has no template that computes its rows on this target."""


@dataclass(frozen=True)
class ResidualBlock:
    """Layers first (x -> t1), second (t1 -> t2) and add (x, t2 -> y)."""

    first: int
    second: int
    add: int
    x: int
    t1: int
    t2: int
    y: int
    x_first: bool  # x is the ADD's first input


def _row_conv(spec: KernelSpec | None) -> bool:
    """A convolution that keeps the image size with stride 1 (so rows map to rows)."""
    if spec is None or spec.op != "CONV_2D":
        return False
    d = spec.dims
    return (
        d["batches"] == 1
        and d.get("groups", 1) == 1
        and (d["stride_h"], d["stride_w"], d["dil_h"], d["dil_w"]) == (1, 1, 1, 1)
        and (d["in_h"], d["in_w"]) == (d["out_h"], d["out_w"])
        and 0 <= d["pad_top"] <= d["k_h"] - 1
    )


def residual_blocks(graph: Graph) -> list[ResidualBlock]:
    """Every conv -> conv -> ADD(x, .) chain that can run row by row: both convolutions
    stride 1 and size-keeping, t1 read by the second only, t2 by the ADD only, x by the
    first and the ADD only, none of them the model's output, and the second
    convolution's bottom padding at least the first's top padding (so that computing
    t1 row r + pad_bottom needs no x row below r once y's row r is written)."""
    readers: dict[int, list[int]] = {}
    for layer in graph.layers:
        for t in dict.fromkeys(layer.inputs):
            readers.setdefault(t, []).append(layer.index)
    producer = {t: layer.index for layer in graph.layers for t in layer.outputs}
    specs = {layer.index: build_spec(graph, layer) for layer in graph.layers}
    blocks = []
    for layer in graph.layers:
        if layer.op != "ADD" or specs[layer.index] is None or len(layer.inputs) != 2:
            continue
        for x_first in (True, False):
            x, t2 = layer.inputs if x_first else layer.inputs[::-1]
            b = producer.get(t2)
            if b is None or not _row_conv(specs[b]):
                continue
            t1 = graph.layers[b].inputs[0]
            a = producer.get(t1)
            if a is None or not _row_conv(specs[a]) or graph.layers[a].inputs[0] != x:
                continue
            da, db = specs[a].dims, specs[b].dims  # type: ignore[union-attr]
            if db["k_h"] - 1 - db["pad_top"] < da["pad_top"]:
                continue
            if graph.tensors[x].nbytes != graph.tensors[t2].nbytes:
                continue
            if (
                readers.get(t1) != [b]
                or readers.get(t2) != [layer.index]
                or sorted(readers.get(x, [])) != sorted({a, layer.index})
                or {x, t1, t2} & set(graph.outputs)
                or not a < b < layer.index
            ):
                continue
            y = layer.outputs[0]
            blocks.append(ResidualBlock(a, b, layer.index, x, t1, t2, y, x_first))
            break
    return blocks


def strip(spec: KernelSpec) -> KernelSpec:
    """A convolution on kernel-height input rows giving one output row (no vertical
    padding: the rows outside the image are zero-point rows in the window)."""
    dims = {**spec.dims, "in_h": spec.dims["k_h"], "out_h": 1, "pad_top": 0}
    return dataclasses.replace(spec, dims=dims)


def row(spec: KernelSpec, size: int) -> KernelSpec:
    """An elementwise op on `size` elements (one row)."""
    return dataclasses.replace(spec, dims={**spec.dims, "size": size})


def _variant(
    spec: KernelSpec, target: Target, preferred: tuple[str, Point] | None
) -> tuple[KernelTemplate, Point]:
    """The preferred (template, point) where it applies to this spec, else the first
    suggested point or baseline of the op's templates that does (fast: the least-RAM
    library's choices are in-place variants, which strips have no use for)."""
    candidates: list[tuple[KernelTemplate, Point]] = []
    if preferred is not None:
        candidates.append((plugins.get_kernel(preferred[0]), preferred[1]))
    for t in plugins.get_kernels().values():
        if getattr(t, "op", None) == spec.op and t.applies(spec, target):
            suggested = getattr(t, "suggestions", lambda *_: [])(spec, target)
            candidates += [(t, p) for p in [*suggested, t.space(spec, target).baseline()]]
    for t, p in candidates:
        if (
            getattr(t, "op", None) == spec.op
            and t.applies(spec, target)
            and t.space(spec, target).check(p) is None
        ):
            return t, p
    raise NotFusable(
        f"layer {spec.layer_index} ({spec.op}): no template computes its rows for {target.name}"
    )


def _align4(n: int) -> int:
    return -(-n // 4) * 4


def fused_codes(
    graph: Graph,
    block: ResidualBlock,
    target: Target,
    functions: tuple[str, str, str],
    preferred: dict[int, tuple[str, Point]],
    render_c: bool = True,
) -> tuple[LayerCode, LayerCode, LayerCode]:
    """The block's three layers' code: the convolutions' strip functions (called by the
    ADD's, not by the network), and the ADD layer's function, which runs the block
    from x to y with the windows and the strips' scratch in its own scratch."""
    fa, fb, fc = functions
    specs = [build_spec(graph, graph.layers[i]) for i in (block.first, block.second, block.add)]
    sa, sb, sc = specs
    assert sa is not None and sb is not None and sc is not None
    da, db = sa.dims, sb.dims
    rowx, row1 = da["in_w"] * da["in_c"], db["in_w"] * db["in_c"]
    parts = [strip(sa), strip(sb), row(sc, rowx)]
    chosen = [
        _variant(s, target, preferred.get(i))
        for s, i in zip(parts, (block.first, block.second, block.add), strict=True)
    ]
    work = max(t.scratch_bytes(s, target, p) for (t, p), s in zip(chosen, parts, strict=True))
    windows = {
        "xwin": _align4(da["k_h"] * rowx),
        "t1win": _align4(db["k_h"] * row1),
        "t2row": _align4(rowx),
    }
    scratch = sum(windows.values()) + work
    sources = ["", "", ""]
    if render_c:
        names = (fa, fb, f"{fc}_row")
        rendered = [
            t.render(s, target, p, fn)
            for (t, p), s, fn in zip(chosen, parts, names, strict=True)
        ]
        sources = [r.source for r in rendered]
        # The ADD's row function is the driver's helper: file-local.
        sources[2] = sources[2].replace(f"void {fc}_row(", f"static void {fc}_row(", 1)
        context: dict[str, Any] = {
            "a": block.first,
            "b": block.second,
            "c": block.add,
            "fn": fc,
            "fa": fa,
            "fb": fb,
            "h": da["in_h"],
            "ka": da["k_h"],
            "kb": db["k_h"],
            "pta": da["pad_top"],
            "ptb": db["pad_top"],
            "rowx": rowx,
            "row1": row1,
            "padx": -sa.scalars["input_offset"],
            "pad1": -sb.scalars["input_offset"],
            "x_first": block.x_first,
            **windows,
        }
        sources[2] += render("residual_rows.c.j2", graph, graph.layers[block.add], **context)
    via = f"computed by layer {block.add}'s row-by-row block"
    desc = [f"{t.name}: " + ", ".join(f"{k}={v}" for k, v in p.items()) for t, p in chosen]
    a_code = LayerCode(
        fa, sources[0], [block.x], [block.t1], description=f"{desc[0]}, on rows ({via})"
    )
    b_code = LayerCode(
        fb, sources[1], [block.t1], [block.t2], description=f"{desc[1]}, on rows ({via})"
    )
    for code, (t, point) in zip((a_code, b_code), chosen[:2], strict=True):
        code.part_of = block.add
        code.headers = t.headers()
        code.opt = str(point.get("opt", code.opt))
    c_code = LayerCode(
        fc,
        sources[2],
        [block.x],
        [block.y],
        scratch_bytes=scratch,
        inplace=[(block.x, block.y)],
        inplace_shift=0,
        description=(
            f"layers {block.first}, {block.second} and {block.add} row by row; "
            f"the ADD's rows: {desc[2]}"
        ),
        headers=chosen[2][0].headers(),
        opt=str(chosen[2][1].get("opt", "-O2")),
    )
    return a_code, b_code, c_code
