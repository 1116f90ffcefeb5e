"""What a residual block costs run row by row (emit/fuse.py), measured, for the whole-model
choice to weigh against the block's three layers apart.

The block's three layers are cut out of the model (`layers_model`) and emitted as a library
of their own with the block fused (the same files, compiled with the same flags, as in the
model's library), built for the target and run on its runner: first on the block's input
in the whole model (the reference's activations, which per-layer measurement uses too),
profiled per function, then on seeded random and extreme inputs; every output is checked
bit-exact against the reference. Cycles are the ADD function's inclusive count (its row
functions included); flash the three layer files' code and constants; scratch the fused
function's. The result is kept in the results DB's artifacts, keyed by the sources, the
target (toolchain, runner, cycle model), the measured input and the seed.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autotune import __version__
from autotune.db import ResultsDB, Trial
from autotune.emit import fuse
from autotune.emit.deploy import compare_outputs, expected_outputs
from autotune.emit.library import Choice, emit_library, layer_file, layer_function
from autotune.emit.verify import run_on_target
from autotune.model.arrays import check_calls, extreme_inputs
from autotune.model.extract import external_inputs, layers_model
from autotune.model.graph import Graph
from autotune.model.tflite_import import parse_model
from autotune.platform import toolchain
from autotune.platform.elf import read_elf
from autotune.platform.target import Target
from autotune.tune.model_choice import LayerInput

NAME = "block"  # the measured library's prefix


@dataclass(frozen=True)
class FusedCost:
    """A block's measured cost, run row by row."""

    block: fuse.ResidualBlock
    cycles: int  # the metric's figure (cycles, or instructions where nothing counts cycles)
    instructions: int | None
    flash: int  # code + constants of the block's three layer files
    scratch: int  # the fused function's scratch in the arena
    metric: str  # plugins.metric_label / the run's cycles label

    @property
    def layers(self) -> tuple[int, int, int]:
        return (self.block.first, self.block.second, self.block.add)


def candidates(graph: Graph, target: Target) -> list[fuse.ResidualBlock]:
    """The model's residual blocks that can run row by row on this target, cut out alone
    (the block's layers are consecutive and read nothing but its input)."""
    out = []
    for block in fuse.residual_blocks(graph):
        if block.add - block.first != 2:
            continue
        if external_inputs(graph, block.first, block.add) != [block.x]:
            continue
        try:
            fuse.fused_codes(graph, block, target, ("a", "b", "c"), {}, render_c=False)
        except fuse.NotFusable:
            continue
        out.append(block)
    return out


def measure_block(
    graph: Graph,
    block: fuse.ResidualBlock,
    target: Target,
    activations: dict[int, np.ndarray] | None,
    seed: int = 0,
    db: ResultsDB | None = None,
) -> FusedCost:
    """Measure the block fused (see the module); a build or a mismatch raises AutotuneError."""
    sub = parse_model(layers_model(graph, block.first, block.add), f"{graph.path} block")
    inner = next(b for b in fuse.residual_blocks(sub) if b.add == 2)
    with tempfile.TemporaryDirectory(prefix="autotune-block-") as work:
        library = emit_library(sub, target, Path(work) / "model", {2: Choice(fuse.FUSED, {})}, NAME)
        tensor = sub.tensors[sub.inputs[0]]
        first = [[activations[block.x].astype(tensor.dtype)]] if activations else []
        rest = [*check_calls(sub, seed, 1), *(extreme_inputs(sub, e) for e in ("min", "max"))]
        measured = first[:1] or rest[:1]
        texts = [p.read_bytes() for p in library.sources] + [measured[0][0].tobytes()]
        key = _key(target, seed, texts)
        cached = db.artifact(key) if db is not None else None
        if cached is not None:
            return FusedCost(block, **cached)
        run = run_on_target(library, sub, target, measured)
        compare_outputs(
            run.outputs, expected_outputs(sub, measured, True), f"{target.name} fused block"
        )
        more = run_on_target(library, sub, target, rest)
        compare_outputs(
            more.outputs, expected_outputs(sub, rest, True), f"{target.name} fused block"
        )
        fn = layer_function(sub.layers[inner.add], NAME)
        instructions, cycles = run.inclusive.get(fn, (run.instructions, run.cycles))
        files = {layer_file(i, sub.layers[i].op, NAME) for i in (0, 1, 2)}
        flash = 0
        for src, obj in zip(library.sources, run.build.objects, strict=False):
            if src.name in files:
                sizes = read_elf(obj).sizes
                flash += sizes.code + sizes.rodata
        scratch = library.codes[inner.add].scratch_bytes
        metric = run.cycles_label if cycles is not None else "instructions (exact)"
        record = {
            "cycles": int(cycles if cycles is not None else instructions),
            "instructions": instructions,
            "flash": flash,
            "scratch": scratch,
            "metric": metric,
        }
        if db is not None:
            db.store_artifact(key, "fused_block", record)
        return FusedCost(block, **record)


def _key(target: Target, seed: int, texts: list[bytes]) -> str:
    """The sources, the measured input, the target as measured, and how."""
    h = hashlib.sha256()
    h.update(toolchain.fingerprint(target).key().encode())
    h.update(f"{target.runner}:{target.cycle_model}:{seed}:{__version__}".encode())
    for text in texts:
        h.update(text)
    h.update(Path(__file__).read_bytes())  # how it is measured
    return h.hexdigest()


@dataclass(frozen=True)
class _Rows:
    """What the whole-model choice asks a layer's template, for a block run row by row:
    its scratch is the fused function's, and the block's RAM saving is in the layout."""

    name: str
    scratch: int

    def scratch_bytes(self, *_: object) -> int:
        return self.scratch

    def in_place(self, *_: object) -> bool:
        return False


def as_layer(cost: FusedCost, add: LayerInput) -> LayerInput:
    """The block as one layer of the choice (the ADD's, its one option the fused block):
    picking it gives the library Choice(fuse.FUSED, {}) on the ADD (Choice.from_trials)."""
    trial = Trial(
        template=fuse.FUSED,
        params="{}",
        status="ok",
        cycles=cost.cycles,
        instructions=cost.instructions,
        code_bytes=cost.flash,
        rodata_bytes=0,
        is_baseline=False,
    )
    rows = _Rows(fuse.FUSED, cost.scratch)
    return LayerInput(add.index, add.spec, {fuse.FUSED: rows}, [trial], None, cost.cycles)  # type: ignore[dict-item]
