"""What a library occupies, from a build that is not run: its own flash from the ELF
(the harness apart, as the deployment reports it), arena from the plan. The
whole-model choice under a budget uses it twice: on the baseline library (what the
tuned layers' variants sit next to) and on the chosen library (whether it fits)."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from autotune.emit.deploy import _harness_flash
from autotune.emit.fuse import FUSED, ResidualBlock
from autotune.emit.layer_code import LayerCode
from autotune.emit.library import Choice, Library, emit_library, library_codes
from autotune.emit.planner import ALIGN, Plan, inplace_shift, plan_memory
from autotune.emit.verify import build_for_target
from autotune.model.graph import Graph
from autotune.platform.elf import read_elf
from autotune.platform.target import Target
from autotune.tune.model_choice import Footprint, Layout


def build_footprint(graph: Graph, target: Target, choices: dict[int, Choice]) -> Footprint:
    lib, flash = _build(graph, target, choices)
    return Footprint(flash=flash, ram=lib.plan.arena_bytes + lib.state_bytes)


def _build(graph: Graph, target: Target, choices: dict[int, Choice]) -> tuple[Library, int]:
    with tempfile.TemporaryDirectory(prefix="autotune-size-") as work:
        lib = emit_library(graph, target, Path(work) / "model", choices)
        build = build_for_target(lib, graph, target, 1)
        image = read_elf(build.elf)
        # The library's own flash, as the deployment reports it: the harness apart.
        harness = _harness_flash(image, build.objects[len(lib.sources) :])
        return lib, image.sizes.flash - sum(harness.values())


def baseline_layout(
    graph: Graph, target: Target, baseline: dict[int, Choice], baseline_flash: dict[int, int]
) -> Layout:
    """Flash outside the tuned layers (the baseline library less its tuned layers' own
    variants), state, and the activations alive while each layer runs."""
    lib, flash = _build(graph, target, baseline)
    fixed = flash - sum(baseline_flash.values())
    return Layout(
        fixed_flash=fixed,
        fixed_ram=lib.state_bytes,
        live=_live(graph, lib.plan),
        inplace_saving=inplace_savings(graph, lib.plan, lib.codes),
        baseline_flash=flash,
    )


def fused_layout(
    graph: Graph,
    target: Target,
    baseline: dict[int, Choice],
    layout: Layout,
    blocks: list[ResidualBlock],
    dropped_flash: int,
) -> Layout:
    """The baseline layout with these residual blocks run row by row (their intermediate
    tensors out of the arena): activations and in-place savings from the plan (nothing is
    built); the block's three layers leave the choice, so the baseline library's flash
    is counted without their baselines (``dropped_flash``)."""
    choices = dict(baseline)
    for block in blocks:
        for i in (block.first, block.second):
            choices.pop(i, None)
        choices[block.add] = Choice(FUSED, {})
    codes = library_codes(graph, target, choices, render=False)
    plan = plan_memory(graph, codes)
    return dataclasses.replace(
        layout,
        live=_live(graph, plan, overlap=True),
        inplace_saving=inplace_savings(graph, plan, codes),
        baseline_flash=None
        if layout.baseline_flash is None
        else layout.baseline_flash - dropped_flash,
    )


def _live(graph: Graph, plan: Plan, overlap: bool = False) -> dict[int, int]:
    """Per layer, the activations alive while it runs (scratch apart). overlap: the
    bytes they span as placed (a fused block's output over its input counts once),
    else their sum (the choice adds each variant's own in-place saving to it)."""
    activations = [b for b in plan.buffers if not b.name.startswith("scratch")]
    live = {}
    for layer in graph.layers:
        alive = [b for b in activations if b.first <= layer.index <= b.last]
        if not overlap:
            live[layer.index] = sum(b.size for b in alive)
            continue
        spans = sorted((b.offset, b.offset + b.size) for b in alive)
        total, end = 0, 0
        for lo, hi in spans:
            total += max(0, hi - max(lo, end))
            end = max(end, hi)
        live[layer.index] = total
    return live


def inplace_savings(graph: Graph, plan: Plan, codes: list[LayerCode]) -> dict[int, int]:
    """Per layer with one runtime input, the arena its input and output save if the
    output is written over the input (laid out as planner.inplace_shift says), where
    the plan would allow it: the input is read last there and neither is the caller's."""
    buffer_of = {t: b for b in plan.buffers for t in b.tensors}
    savings = {}
    for layer, code in zip(graph.layers, codes, strict=True):
        if code.alias or len(code.inputs) != 1 or len(code.outputs) != 1:
            continue
        src, dst = buffer_of.get(code.inputs[0]), buffer_of.get(code.outputs[0])
        if src is None or dst is None or src is dst or src.last != layer.index:
            continue
        nin, nout = (graph.tensors[t].nbytes for t in (code.inputs[0], code.outputs[0]))
        both = inplace_shift(nin, nout) + nin if nout > nin else nin
        together = -(-max(both, nout) // ALIGN) * ALIGN
        savings[layer.index] = max(0, src.size + dst.size - together)
    return savings
