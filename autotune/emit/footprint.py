"""What a library occupies, from a build that is not run: its own flash from the ELF
(the harness apart, as the deployment reports it), arena from the plan. The
whole-model choice under a budget uses it twice: on the baseline library (what the
tuned layers' variants sit next to) and on the chosen library (whether it fits)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from autotune.emit.deploy import _harness_flash
from autotune.emit.library import Choice, Library, emit_library
from autotune.emit.planner import ALIGN, inplace_shift
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
    plan = lib.plan
    live = {}
    activations = [b for b in plan.buffers if not b.name.startswith("scratch")]
    for layer in graph.layers:
        live[layer.index] = sum(b.size for b in activations if b.first <= layer.index <= b.last)
    fixed = flash - sum(baseline_flash.values())
    return Layout(
        fixed_flash=fixed,
        fixed_ram=lib.state_bytes,
        live=live,
        inplace_saving=inplace_savings(graph, lib),
        baseline_flash=flash,
    )


def inplace_savings(graph: Graph, lib: Library) -> dict[int, int]:
    """Per layer with one runtime input, the arena its input and output save if the
    output is written over the input (laid out as planner.inplace_shift says), where
    the plan would allow it: the input is read last there and neither is the caller's."""
    plan = lib.plan
    buffer_of = {t: b for b in plan.buffers for t in b.tensors}
    savings = {}
    for layer, code in zip(graph.layers, lib.codes, strict=True):
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
