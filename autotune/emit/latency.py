"""Latency over inputs: does an inference take the same time whatever it is given?

The library is run whole, profiled per layer, on several model inputs (seeded random,
all minimum, all maximum). A kernel with a data-dependent path is also run alone
(the layer cut out of the graph, compiled from the same generated source) on inputs
crafted to take its slow and its fast path: for SOFTMAX, a row of equal values makes
every element compute its exponential (each at its slowest), a row with one maximum
and the rest at the minimum skips them where the input scale lets a row reach below
the kernel's ``diff_min``. The result gives min/max cycles per layer and for the model and
names every layer whose time depends on its input.

The model's min/max are whole-model runs. ``bound`` adds to the slowest whole-model
run each crafted layer's excess of its slowest crafted run over the same layer run
alone on the input the random whole-model run gave it: an estimate for inputs no
whole-model run reached, labelled as such.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autotune import __version__
from autotune.db import ResultsDB
from autotune.emit.library import Choice, Library, emit_library, layer_function
from autotune.emit.verify import build_for_target, instruction_budget
from autotune.model.arrays import extreme_inputs, random_inputs
from autotune.model.extract import layers_model
from autotune.model.graph import Graph, Layer
from autotune.model.tflite_import import parse_model
from autotune.platform import plugins, toolchain
from autotune.platform.target import Target
from autotune.reference.executor import Interpreter
from autotune.reference.ops.activations import softmax_below_range, softmax_params

# op -> crafted inputs of one layer: name -> arrays for the layer's inputs.
Crafter = Callable[[Graph, Layer], dict[str, list[np.ndarray]]]
CRAFTERS: dict[str, Crafter] = {}


def crafter(op: str) -> Callable[[Crafter], Crafter]:
    """Register the slow/fast-path inputs of an op whose kernel branches on data."""

    def register(fn: Crafter) -> Crafter:
        CRAFTERS[op] = fn
        return fn

    return register


@crafter("SOFTMAX")
def _softmax_paths(graph: Graph, layer: Layer) -> dict[str, list[np.ndarray]]:
    """Rows that compute every exponential at its slowest, and, where the input range
    reaches below ``diff_min``, rows that skip them.

    A difference of 0 from the row maximum is the slowest exponential: its remainder has
    every bit of the barrel set, so all seven multiplies run (at_fixedpoint.h).
    """
    x = graph.tensors[layer.inputs[0]]
    beta = float(layer.options.get("beta", 1.0))
    if x.dtype != "int8" or softmax_below_range(x.scale, beta):
        return {}  # the uniform kernel: no branch on data
    _, _, diff_min = softmax_params(x.scale, beta)
    cases = {"softmax slow path (equal row)": [np.full(x.shape, 127, x.dtype)]}
    if diff_min > -255:
        one_hot = np.full(x.shape, -128, x.dtype)  # one maximum per row: the rest skipped
        one_hot[..., 0] = 127
        cases["softmax fast path (one-hot row)"] = [one_hot]
    return cases


@dataclass
class LayerLatency:
    index: int
    op: str
    cycles: dict[str, int]  # input name -> cycles in the whole-model run
    alone: dict[str, int] = field(default_factory=dict)  # crafted input -> cycles, layer alone

    @property
    def low(self) -> int:
        return min(self.cycles.values())

    @property
    def high(self) -> int:
        return max(self.cycles.values())

    @property
    def depends_on_input(self) -> bool:
        return self.low != self.high or len(set(self.alone.values())) > 1

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "op": self.op,
            "min": self.low,
            "max": self.high,
            "cycles": self.cycles,
            "alone": self.alone,
            "alone_min": min(self.alone.values()) if self.alone else None,
            "alone_max": max(self.alone.values()) if self.alone else None,
            "input_dependent": self.depends_on_input,
        }


@dataclass
class Latency:
    metric: str
    inputs: list[str]
    totals: dict[str, int]  # input name -> whole-model cycles
    layers: list[LayerLatency]
    per_layer: bool = True  # False: the runner does not profile, layers are not known

    @property
    def bound(self) -> int:
        extra = 0
        for layer in self.layers:
            if layer.alone:
                # The layer alone on the input the whole-model run gave it is the
                # reference point: a crafted input's excess over it is what was missed.
                seen = layer.alone.get("whole-model random input", max(layer.alone.values()))
                extra += max(0, max(layer.alone.values()) - seen)
        return max(self.totals.values()) + extra

    def as_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "inputs": self.inputs,
            "model": {
                "min": min(self.totals.values()),
                "max": max(self.totals.values()),
                "cycles": self.totals,
                "bound": self.bound,
            },
            "per_layer": self.per_layer,
            # None: not known (no per-layer profile), never "none depend on input".
            "input_dependent_layers": [
                {"index": x.index, "op": x.op} for x in self.layers if x.depends_on_input
            ]
            if self.per_layer
            else None,
            "layers": [x.as_json() for x in self.layers],
        }


def model_inputs(graph: Graph, seed: int) -> dict[str, list[np.ndarray]]:
    """Seeded random, all minimum and all maximum: one model input each."""
    rng = np.random.default_rng(seed + 2000)
    out: dict[str, list[np.ndarray]] = {"random": random_inputs(graph, rng)}
    for end in ("min", "max"):
        out[f"all {end}"] = extreme_inputs(graph, end)
    return out


def _per_function(run: Any) -> dict[str, tuple[int, int]]:
    """Per-function (instructions, cycles), callees included where the runner says."""
    extra = run.extra
    return dict(extra.get("inclusive") or extra.get("functions") or {})


def _runs(
    library: Library, graph: Graph, target: Target, cases: dict[str, list[np.ndarray]]
) -> dict[str, tuple[int | None, dict[str, tuple[int, int]]]]:
    """Build the library once with a one-call harness; run it once per case, profiled."""
    build = build_for_target(library, graph, target, 1, reset_each=True)
    runner = plugins.get_runner(target.runner)
    profile = {"profile": True} if runner.capabilities.profiles_functions else {}
    out = {}
    for name, arrays in cases.items():
        feed = {f"at_in{i}": np.ascontiguousarray(a).tobytes() for i, a in enumerate(arrays)}
        run = runner.run(build.elf, target, inputs=feed, outputs={}, budget=instruction_budget(graph, 1), **profile)
        out[name] = (run.cycles, _per_function(run))
    return out


def measure_latency(
    graph: Graph,
    target: Target,
    library: Library,
    choices: dict[int, Choice],
    work: Path,
    seed: int = 0,
) -> Latency | None:
    """Min/max cycles per layer and for the model over inputs; None without a cycle count."""
    cases = model_inputs(graph, seed)
    whole = _runs(library, graph, target, cases)
    if any(cycles is None for cycles, _ in whole.values()):
        return None
    layers = []
    for layer in graph.layers:
        fn = layer_function(layer, library.name)
        counts = {name: funcs.get(fn, (0, 0))[1] for name, (_, funcs) in whole.items()}
        if any(counts.values()):
            layers.append(LayerLatency(layer.index, layer.op, counts))
    profiled = plugins.get_runner(target.runner).capabilities.profiles_functions
    if not profiled:
        layers = []
    values = Interpreter(graph).invoke(cases["random"], keep=True)
    assert isinstance(values, dict)
    for entry in layers:
        layer = graph.layers[entry.index]
        make = CRAFTERS.get(layer.op)
        if make is None:
            continue
        entry.alone = _alone(graph, layer, target, choices, work, make, values)
    return Latency(
        plugins.metric_label(target),
        list(cases),
        {k: int(v[0] or 0) for k, v in whole.items()},
        layers,
        per_layer=profiled,
    )


def _alone(
    graph: Graph,
    layer: Layer,
    target: Target,
    choices: dict[int, Choice],
    work: Path,
    make: Crafter,
    values: dict[int, np.ndarray],
) -> dict[str, int]:
    """The layer cut out of the graph, on crafted inputs and on its whole-model input."""
    single = parse_model(layers_model(graph, layer.index))
    inputs = [i for i in layer.inputs if i >= 0 and graph.tensors[i].data is None]
    cases = {"whole-model random input": [values[i] for i in inputs]}
    cases.update(make(graph, layer))
    choice = choices.get(layer.index)
    lib = emit_library(
        single,
        target,
        work / f"alone{layer.index:02d}" / "model",
        {0: choice} if choice is not None else {},
    )
    fn = layer_function(single.layers[0], lib.name)
    runs = _runs(lib, single, target, cases)
    return {name: funcs.get(fn, (0, 0))[1] for name, (_, funcs) in runs.items()}


def latency_key(library: Library, target: Target, seed: int) -> str:
    """The DB key of a latency measurement: the library's sources, toolchain and runner."""
    h = hashlib.sha256()
    h.update(toolchain.fingerprint(target).key().encode())
    h.update(f"latency:{seed}:{__version__}:{target.runner}:{target.cycle_model}".encode())
    h.update(repr(sorted(library.file_opt.items())).encode())  # how each file is compiled
    for path in sorted(library.sources) + sorted(library.directory.glob("*.h")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def cached_latency(
    graph: Graph,
    target: Target,
    library: Library,
    choices: dict[int, Choice],
    out_dir: Path,
    seed: int,
    db_url: str | None,
) -> dict[str, Any] | None:
    """:func:`measure_latency` as JSON, measured once per library (kept in the results DB)."""
    db = ResultsDB(db_url)
    key = latency_key(library, target, seed)
    cached = db.artifact(key)
    if cached is not None:
        return cached
    with tempfile.TemporaryDirectory(prefix="autotune-latency-") as work:
        result = measure_latency(graph, target, library, choices, Path(work), seed)
    if result is None:
        return None
    record = result.as_json()
    db.store_artifact(key, "latency", record)
    return record
