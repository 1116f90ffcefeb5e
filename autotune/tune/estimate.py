"""`autotune estimate`: latency, flash and RAM of a model on a core, in seconds, without tuning.

Per layer, cycles come from the best place there is, and say which:
- ``db``: the results DB's best bit-exact variant measured for this very workload on
  this target (a measurement by the target's cycle model), with its measured baseline;
- ``expected``: the per-op figures bench/calibrate_estimates.py measured on the example
  models for this target (estimates.json), times this layer's MACs (or output
  elements): the baseline loop, and a first-guess variant as what tuning starts from;
- ``none``: nothing known for this op on this target.
Flash: weights are the layer's constants (exact, as stored in the model; DSP variants
may store int16 pairs); code comes from the DB's measurement or the per-op figure.
RAM: the arena the planner lays out for the baseline library (exact for it), the state
buffers, and tflite-micro's arena for the same model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from autotune.db import ResultsDB
from autotune.emit.library import baseline_choices, planned_bytes, small_choices
from autotune.errors import AutotuneError
from autotune.model.graph import Graph, Layer
from autotune.model.stats import layer_macs
from autotune.platform import plugins
from autotune.platform.target import Target
from autotune.reference.oracle import tflm_arena
from autotune.tune.pipeline import study_context
from autotune.tune.search import StudyContext, known_trials, ranked
from autotune.tune.spec import build_spec

ESTIMATES_FILE = Path(__file__).with_name("estimates.json")


@cache
def _calibration() -> dict[str, Any]:
    if not ESTIMATES_FILE.exists():
        return {}
    return dict(json.loads(ESTIMATES_FILE.read_text()).get("targets", {}))


@dataclass
class LayerEstimate:
    index: int
    op: str
    macs: int
    source: str  # db, expected, none
    baseline_cycles: int | None
    cycles: int | None
    weights_bytes: int
    code_bytes: int | None
    note: str = ""


def _int(v: float | None) -> int | None:
    return None if v is None else round(v)


def _weights(graph: Graph, layer: Layer) -> int:
    total = 0
    for i in layer.inputs:
        t = graph.tensor(i)
        if t is not None and t.data is not None:
            total += t.nbytes
    return total


def _context(target: Target) -> StudyContext | None:
    """The DB key parts of this target; None where its compiler or runner is missing."""
    try:
        return study_context(target)
    except AutotuneError:
        return None


def _from_db(
    graph: Graph, layer: Layer, target: Target, ctx: StudyContext | None, db: ResultsDB | None
) -> LayerEstimate | None:
    spec = build_spec(graph, layer)
    if spec is None or ctx is None or db is None:
        return None
    templates = [
        t
        for t in plugins.get_kernels().values()
        if getattr(t, "op", None) == layer.op and t.applies(spec, target)
    ]
    trials = known_trials(db, spec, templates, ctx)
    best = ranked(trials)
    if not best or best[0].cycles is None:
        return None
    base = next((t for t in trials.values() if t.is_baseline and t.status == "ok"), None)
    return LayerEstimate(
        layer.index,
        layer.op,
        layer_macs(graph, layer),
        "db",
        base.cycles if base else None,
        best[0].cycles,
        _weights(graph, layer),
        best[0].code_bytes,
        f"best of {len(trials)} measured variants",
    )


def _expected(graph: Graph, layer: Layer, target: Target) -> LayerEstimate:
    macs = layer_macs(graph, layer)
    figures = _calibration().get(target.name, {}).get("ops", {}).get(layer.op)
    weights = _weights(graph, layer)
    if not figures:
        note = "no figures for this op on this target" if layer.op != "RESHAPE" else "no code"
        cycles = 0 if layer.op == "RESHAPE" else None
        return LayerEstimate(layer.index, layer.op, macs, "none", cycles, cycles, weights, 0, note)
    units = macs if figures["unit"] == "mac" else sum(graph.tensors[t].size for t in layer.outputs)
    base = figures.get("baseline_cycles_per_unit")
    guess = figures.get("first_guess_cycles_per_unit", base)
    return LayerEstimate(
        layer.index,
        layer.op,
        macs,
        "expected",
        None if base is None else round(base * units),
        None if guess is None else round(guess * units),
        weights,
        _int(figures.get("first_guess_code_bytes", figures.get("baseline_code_bytes"))),
        f"{guess} cycles per {figures['unit']} (calibrated)",
    )


def _small_arena(graph: Graph, target: Target) -> int:
    """The arena of the library of least RAM the planner reaches without a search
    (in-place variants where the data flow allows, the least scratch elsewhere)."""
    return planned_bytes(graph, target, small_choices(graph, target))[0]


def estimate(graph: Graph, target: Target, db_url: str | None = None) -> dict[str, Any]:
    """The whole estimate as the documented JSON (docs/cli.md)."""
    ctx = _context(target)
    try:
        db = ResultsDB(db_url) if ctx is not None else None
    except AutotuneError:
        db = None
    layers = [
        _from_db(graph, layer, target, ctx, db) or _expected(graph, layer, target)
        for layer in graph.layers
    ]
    arena, state = planned_bytes(graph, target, baseline_choices(graph, target))
    clock = float(target.default_clock_mhz)
    known = [e for e in layers if e.cycles is not None]
    cycles = sum(e.cycles or 0 for e in layers)
    baseline = sum(e.baseline_cycles or 0 for e in layers)
    calibration = _calibration().get(target.name, {})
    return {
        "model": graph.path,
        "target": target.name,
        "metric": plugins.metric_label(target),
        "calibration": {k: calibration.get(k) for k in ("metric", "tool_version", "date")}
        if calibration
        else None,
        "clock_mhz": clock,
        "layers": [
            {
                **asdict(e),
                "ms": None if e.cycles is None else round(e.cycles / (clock * 1000.0), 4),
            }
            for e in layers
        ],
        "totals": {
            "macs": sum(e.macs for e in layers),
            "cycles": cycles,
            "baseline_cycles": baseline,
            "ms": round(cycles / (clock * 1000.0), 4),
            "baseline_ms": round(baseline / (clock * 1000.0), 4),
            "layers_from_db": sum(e.source == "db" for e in layers),
            "layers_expected": sum(e.source == "expected" for e in layers),
            "layers_without_estimate": len(layers) - len(known),
        },
        "flash": {
            "weights": sum(e.weights_bytes for e in layers),
            "code": sum(e.code_bytes or 0 for e in layers),
        },
        "ram": {
            "arena": arena,
            "arena_in_place": _small_arena(graph, target),
            "state": state,
        },
        "tflm_arena": tflm_arena(graph.path) if graph.path else None,
    }
