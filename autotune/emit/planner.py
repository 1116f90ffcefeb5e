"""The offline memory plan: every activation tensor and scratch buffer gets an arena offset.

Lifetimes come from the graph (first writer to last reader). Tensors that are the
same bytes (a RESHAPE's output is its input) are merged into one buffer first.
Offsets are then assigned greedily, largest first, at the lowest address that
overlaps no buffer alive at the same time (the strategy of TFLM's
GreedyMemoryPlanner), with one exception: a layer that computes in place may have
its output overlap the input it is the last to read, where the input starts far
enough after the output (InPlace): e.g. a 1x1 convolution from 8 to 16 channels
keeps its input in the upper half of its output, so that each output pixel lands
on input pixels already read. The model's inputs and outputs stay in the caller's
memory and are not planned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from autotune.emit.layer_code import LayerCode
from autotune.model.graph import Graph

ALIGN = 16


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def inplace_shift(in_bytes: int, out_bytes: int) -> int:
    """The least distance (aligned) from an in-place kernel's output start to its input start.

    An in-place kernel walks input and output forward, unit by unit (pixel, element,
    channel block), and reads a unit before it writes the unit's output. With the
    output no larger than the input both may start together: output unit p ends at
    or before input unit p does. A larger output must start that much earlier than
    the input: output unit p then ends at or before input unit p ends, never over
    input not read yet. Further apart is as good (less overlap)."""
    return _align(max(0, out_bytes - in_bytes))


@dataclass(frozen=True)
class InPlace:
    """A layer's output buffer may overlap its input buffer: where input start - output
    start is at least `shift` and a multiple of `step` (a depthwise kernel that
    copies channel blocks out needs whole pixels: step = bytes per pixel)."""

    layer: int
    input: str  # buffer names
    output: str
    shift: int
    step: int

    def allows(self, input_offset: int, output_offset: int) -> bool:
        d = input_offset - output_offset
        return d >= self.shift and d % self.step == 0


@dataclass
class Buffer:
    """One region of the arena: one or more tensors (aliases), or one layer's scratch."""

    name: str
    size: int
    first: int
    last: int
    tensors: list[int] = field(default_factory=list)
    offset: int = -1

    def overlaps_in_time(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class Plan:
    buffers: list[Buffer]
    arena_bytes: int
    home: dict[int, str]  # tensor -> "arena+OFFSET", "input N", "output N"
    offsets: dict[int, int]  # tensor -> arena offset (planned tensors only)
    scratch: dict[int, int]  # layer index -> arena offset of its scratch
    external: dict[int, tuple[str, int]]  # tensor -> ("input"|"output", position)
    notes: list[str] = field(default_factory=list)
    inplace: list[InPlace] = field(default_factory=list)


class _Groups:
    """Union-find over tensor indices: one group shares one storage."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, t: int) -> int:
        self.parent.setdefault(t, t)
        while self.parent[t] != t:
            self.parent[t] = self.parent[self.parent[t]]
            t = self.parent[t]
        return t

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(b)] = self.find(a)


def plan_memory(graph: Graph, codes: list[LayerCode]) -> Plan:
    external: dict[int, tuple[str, int]] = {}
    for pos, t in enumerate(graph.inputs):
        external[t] = ("input", pos)
    for pos, t in enumerate(graph.outputs):
        external.setdefault(t, ("output", pos))

    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for layer, code in zip(graph.layers, codes, strict=True):
        if code.part_of is not None:
            continue  # runs inside another layer's call, on that layer's scratch
        for t in code.inputs:
            first.setdefault(t, -1)
            last[t] = max(last.get(t, -1), layer.index)
        for t in code.outputs:
            first.setdefault(t, layer.index)
            last.setdefault(t, layer.index)

    # A reshape of a model input reads the caller's buffer; a reshape that makes a model
    # output lets its producer write straight into the caller's buffer.
    for code in codes:
        if code.alias and code.inputs[0] in external and code.outputs[0] not in external:
            external[code.outputs[0]] = external[code.inputs[0]]
    for layer, code in reversed(list(zip(graph.layers, codes, strict=True))):
        src, dst = (code.inputs[0], code.outputs[0]) if code.alias else (None, None)
        if (
            src is not None
            and dst in external
            and src not in external
            and last.get(src) == layer.index
        ):
            external[src] = external[dst]

    groups = _Groups()
    group_last: dict[int, int] = {}  # group root -> the last layer that reads any member
    notes = []
    for layer, code in zip(graph.layers, codes, strict=True):
        if not code.alias:
            continue
        i, o = code.inputs[0], code.outputs[0]
        if i in external or o in external:
            continue  # the caller's buffer cannot alias the arena: copied instead
        groups.union(i, o)
        group_last[groups.find(i)] = max(last.get(i, -1), last.get(o, -1))
        notes.append(f"layer {layer.index} ({layer.op}): tensor {o} shares storage with {i}")

    # In place where the input (all of its bytes' names) is read for the last time here.
    # One pair at most: two inputs (or two outputs) alive together cannot share storage.
    pairs: list[tuple[int, int, int, int, int]] = []  # layer, input, output, step, shift
    for layer, code in zip(graph.layers, codes, strict=True):
        for i, o in [] if code.alias else code.inplace:
            if i in external or o in external:
                continue
            if group_last.get(groups.find(i), last.get(i)) != layer.index:
                continue
            shift = code.inplace_shift
            if shift is None:
                shift = inplace_shift(graph.tensors[i].nbytes, graph.tensors[o].nbytes)
            pairs.append((layer.index, i, o, code.inplace_step, shift))
            break

    members: dict[int, list[int]] = {}
    for t in first:
        if t in external:
            continue
        members.setdefault(groups.find(t), []).append(t)

    buffers = []
    for root, tensors in members.items():
        size = max(graph.tensors[t].nbytes for t in tensors)
        buffers.append(
            Buffer(
                name=f"t{root}",
                size=_align(size),
                first=min(first[t] for t in tensors),
                last=max(last[t] for t in tensors),
                tensors=sorted(tensors),
            )
        )
    for layer, code in zip(graph.layers, codes, strict=True):
        if code.scratch_bytes:
            buffers.append(
                Buffer(
                    f"scratch{layer.index}", _align(code.scratch_bytes), layer.index, layer.index
                )
            )
    inplace = [
        InPlace(
            index,
            f"t{groups.find(i)}",
            f"t{groups.find(o)}",
            _align(shift),
            math.lcm(ALIGN, step),
        )
        for index, i, o, step, shift in pairs
    ]
    placed = _place(buffers, inplace)
    where = {b.name: b for b in placed}
    for rule, (index, i, o, _step, _shift) in zip(inplace, pairs, strict=True):
        a, b = where[rule.input], where[rule.output]
        if a.offset < b.offset + b.size and b.offset < a.offset + a.size:
            op = graph.layers[index].op
            notes.append(f"layer {index} ({op}): tensor {o} computed over {i}")
    offsets: dict[int, int] = {}
    scratch: dict[int, int] = {}
    home: dict[int, str] = {}
    for buf in placed:
        for t in buf.tensors:
            offsets[t] = buf.offset
            home[t] = f"arena+{buf.offset}"
        if buf.name.startswith("scratch"):
            scratch[int(buf.name.removeprefix("scratch"))] = buf.offset
    for t, (kind, pos) in external.items():
        home[t] = f"{kind} {pos}"
    arena = max((b.offset + b.size for b in placed), default=0)
    return Plan(placed, arena, home, offsets, scratch, external, notes, inplace)


def _clash(a: Buffer, b: Buffer, rules: dict[tuple[str, str], InPlace]) -> bool:
    """Whether a and b, both placed, may not sit where they are."""
    if not a.overlaps_in_time(b):
        return False
    if a.offset + a.size <= b.offset or b.offset + b.size <= a.offset:
        return False
    rule = rules.get((a.name, b.name))
    if rule is not None:
        return not rule.allows(a.offset, b.offset)
    rule = rules.get((b.name, a.name))
    return rule is None or not rule.allows(b.offset, a.offset)


def _place(buffers: list[Buffer], inplace: list[InPlace]) -> list[Buffer]:
    """Largest first, each at the lowest offset where it clashes with no placed buffer.

    Candidates: 0, the end of every placed buffer alive at the same time, and, for an
    in-place partner already placed, the nearest offsets its rule allows."""
    rules = {(r.input, r.output): r for r in inplace}
    placed: list[Buffer] = []
    for buf in sorted(buffers, key=lambda b: (-b.size, b.first, b.name)):
        live = [p for p in placed if p.overlaps_in_time(buf)]
        ends = {0, *(p.offset + p.size for p in live)}
        candidates = set(ends)
        for p in live:
            # Offsets o that the rule allows against p: congruent to p's offset modulo the
            # step, at least `shift` above it (buf is the input) or below it (the output).
            if (buf.name, p.name) in rules:
                r = rules[(buf.name, p.name)]
                lo, hi = p.offset + r.shift, None
            elif (p.name, buf.name) in rules:
                r = rules[(p.name, buf.name)]
                lo, hi = 0, p.offset - r.shift
            else:
                continue
            for c in ends:
                o = max(c, lo)
                o += (p.offset - o) % r.step
                if hi is None or o <= hi:
                    candidates.add(o)
        for offset in sorted(c for c in candidates if c >= 0):
            buf.offset = offset
            if not any(_clash(buf, p, rules) for p in live):
                break
        placed.append(buf)
    return placed


def check_plan(plan: Plan) -> list[str]:
    """Problems with a plan: two buffers alive at once that overlap in the arena (other
    than an in-place layer's input and output, placed as its rule allows)."""
    rules = {(r.input, r.output): r for r in plan.inplace}
    problems = []
    for i, a in enumerate(plan.buffers):
        for b in plan.buffers[i + 1 :]:
            if _clash(a, b, rules):
                problems.append(f"{a.name} and {b.name} overlap")
    return problems
