"""UNIDIRECTIONAL_SEQUENCE_LSTM as emitted C, bit-exact with the reference executor.

Small single-op models cover the corners on the host (sizes, batch > 1, time-
and batch-major, cell clip, zero points, cell scales, state carried across
calls); one model runs on cortex-m4, cortex-m0 and rv32imc; the real LSTM models
run whole on the simulator, dtln over five calls that keep their state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from autotune.emit.library import Library, emit_library
from autotune.emit.verify import run_on_host, run_on_target
from autotune.errors import UnsupportedOpError
from autotune.model.graph import Graph
from autotune.model.tflite_import import load_model, parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins
from autotune.reference.executor import Interpreter
from tests.conftest import extreme_inputs, seeded_inputs, shared_model
from tests.emit.test_emit_activations import assert_warning_free

Calls = list[list[np.ndarray]]


@dataclass(frozen=True)
class Lstm:
    """One single-layer LSTM test model."""

    batch: int = 1
    steps: int = 3
    inputs: int = 5
    units: int = 4
    time_major: bool = False
    cell_clip: float = 0.0
    input_zp: int = 3
    hidden_zp: int = -2
    hidden_scale: float = 1.0 / 128
    cell_power: int = -11
    weight_zps: tuple[int, ...] = (0,) * 8
    seed: int = 0

    def build(self) -> bytes:
        rng = np.random.default_rng(self.seed)
        b = ModelBuilder("lstm test")
        lead = (self.steps, self.batch) if self.time_major else (self.batch, self.steps)
        x = b.tensor("x", (*lead, self.inputs), "int8", 0.05, self.input_zp)
        ins = [x]
        for g in range(8):
            cols = self.inputs if g < 4 else self.units
            w = rng.integers(-127, 128, (self.units, cols)).astype(np.int8)
            ins.append(b.constant(f"w{g}", w, float(rng.uniform(0.004, 0.03)), self.weight_zps[g]))
        ins += [-1, -1, -1]  # no peephole weights
        for g in range(4):
            bias = rng.integers(-3000, 3000, self.units).astype(np.int32)
            ins.append(b.constant(f"bias{g}", bias, 5e-4, 0))
        ins += [-1, -1]  # no projection
        q_h = (self.hidden_scale, self.hidden_zp)
        h = b.tensor("h", (self.batch, self.units), "int8", *q_h, variable=True)
        c = b.tensor("c", (self.batch, self.units), "int16", 2.0**self.cell_power, 0, variable=True)
        ins += [h, c, -1, -1, -1, -1]  # no layer normalization
        y = b.tensor("y", (*lead, self.units), "int8", *q_h)
        b.op(
            "UNIDIRECTIONAL_SEQUENCE_LSTM",
            ins,
            [y],
            fused_activation_function="TANH",
            cell_clip=self.cell_clip,
            proj_clip=0.0,
            time_major=self.time_major,
        )
        b.inputs(x)
        b.outputs(y)
        return b.build()


def calls_for(graph: Graph) -> Calls:
    return [
        seeded_inputs(graph, 1),
        seeded_inputs(graph, 2),
        extreme_inputs(graph, "max"),
        extreme_inputs(graph, "min"),
        seeded_inputs(graph, 3),
    ]


def expected(graph: Graph, calls: Calls, reset_each: bool) -> Calls:
    interp = Interpreter(graph)
    out = []
    for inputs in calls:
        if reset_each:
            interp.reset()
        out.append(interp.invoke(inputs))
    return out


def assert_same(want: Calls, got: Calls) -> None:
    for n, (w_call, g_call) in enumerate(zip(want, got, strict=True)):
        for w, g in zip(w_call, g_call, strict=True):
            diff = int((w != g).sum())
            assert diff == 0, f"call {n}: {diff} of {w.size} elements differ"


HOST_CASES = {
    "small": Lstm(),
    "batch2-clip": Lstm(batch=2, cell_clip=0.6, seed=1),
    "time-major-batch2": Lstm(batch=2, time_major=True, steps=4, seed=2),
    "time-major-batch3-clip": Lstm(batch=3, time_major=True, cell_clip=2.0, seed=3),
    "weight-zero-points": Lstm(weight_zps=(1, -2, 0, 3, 0, 0, -1, 2), seed=4),
    "larger": Lstm(steps=8, inputs=16, units=12, hidden_zp=5, seed=5),
    "zero-points-0": Lstm(input_zp=0, hidden_zp=0, hidden_scale=0.02, seed=6),
    "cell-2^-15": Lstm(cell_power=-15, cell_clip=0.9, seed=7),
    "cell-2^-8": Lstm(cell_power=-8, hidden_scale=0.01, seed=8),
    "one-unit-one-input": Lstm(inputs=1, units=1, steps=6, seed=10),
}


@pytest.mark.parametrize("case", list(HOST_CASES), ids=list(HOST_CASES))
def test_lstm_on_host_fresh_and_stateful(tmp_path: Path, case: str) -> None:
    graph = parse_model(HOST_CASES[case].build())
    assert_fresh_and_stateful_on_host(graph, calls_for(graph), tmp_path)


def assert_fresh_and_stateful_on_host(graph: Graph, calls: Calls, tmp_path: Path) -> None:
    """The library on the host, reset before each call and with its state carried over."""
    library = emit_library(graph, plugins.get_target("cortex-m4"), tmp_path / "model")
    fresh = expected(graph, calls, reset_each=True)
    stateful = expected(graph, calls, reset_each=False)
    assert_same(fresh, run_on_host(library, graph, calls, reset_each=True))
    assert_same(stateful, run_on_host(library, graph, calls, reset_each=False))
    # The state must matter, or the stateful run proves nothing about it.
    assert any(not np.array_equal(f[0], s[0]) for f, s in zip(fresh[1:], stateful[1:], strict=True))


def test_lstm_source_folds_zero_points_and_keeps_state(tmp_path: Path) -> None:
    from autotune.emit.layer_code import EMITTERS

    graph = parse_model(HOST_CASES["larger"].build())
    # The op emitter itself: emit_library renders the tuned LSTM template's baseline instead.
    code = EMITTERS["UNIDIRECTIONAL_SEQUENCE_LSTM"](graph, graph.layers[0], "lstm")
    assert [graph.tensors[t].name for t in code.state] == ["h", "c"]
    assert code.scratch_bytes == 4 * 12 * 2  # the four gates of one batch row, int16
    assert "recurrent_bias" in code.source  # hidden zero point 5, folded at generation
    assert "x_sum" not in code.source and "h_sum" not in code.source  # symmetric weights
    zps = emit_library(
        parse_model(HOST_CASES["weight-zero-points"].build()),
        plugins.get_target("cortex-m4"),
        tmp_path / "zps",
    )
    assert "x_products -= 3 * x_sum;" in zps.codes[0].source  # the output gate's
    assert "h_products += 1 * h_sum;" in zps.codes[0].source  # the cell gate's (-1)


def test_lstm_with_a_cell_scale_too_coarse_for_int32_rescaling_is_refused(tmp_path: Path) -> None:
    # 2^3: tanh's input rescaling multiplies by 3 << 15, past int32 for large cells.
    graph = parse_model(Lstm(cell_power=3).build())
    with pytest.raises(UnsupportedOpError, match=r"cell state scale 8 \(2\^3\)"):
        emit_library(graph, plugins.get_target("cortex-m4"), tmp_path / "model")


@pytest.mark.toolchain
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m0", "rv32imc"])
def test_lstm_on_target_stateful(tmp_path: Path, target: str) -> None:
    graph = parse_model(Lstm(batch=2, steps=3, inputs=6, units=5, cell_clip=0.8, seed=11).build())
    tgt = plugins.get_target(target)
    library = emit_library(graph, tgt, tmp_path / "model")
    assert_warning_free(library, target, tmp_path)
    calls = calls_for(graph)[:3]
    run = run_on_target(library, graph, tgt, calls, reset_each=False)
    assert_same(expected(graph, calls, reset_each=False), run.outputs)


# ---------------------------------------------------------------- real models


def _real(name: str, target: str, tmp_path: Path) -> tuple[Graph, Library]:
    graph = load_model(shared_model(name))
    return graph, emit_library(graph, plugins.get_target(target), tmp_path / "model")


@pytest.mark.models
@pytest.mark.toolchain
@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("trained_lstm_int8.tflite", "cortex-m4"),
        ("trained_lstm_int8.tflite", "rv32imc"),
        ("lstm_weather_24x7_u32.tflite", "cortex-m4"),
        ("lstm_weather_24x7_u32.tflite", "rv32imc"),
    ],
)
def test_real_lstm_model_on_target(tmp_path: Path, name: str, target: str) -> None:
    graph, library = _real(name, target, tmp_path)
    assert any(c.function.endswith("unidirectional_sequence_lstm") for c in library.codes)
    calls = [seeded_inputs(graph, seed) for seed in (1, 2, 3)]
    run = run_on_target(library, graph, plugins.get_target(target), calls)
    assert_same(expected(graph, calls, reset_each=True), run.outputs)


@pytest.mark.models
@pytest.mark.toolchain
@pytest.mark.parametrize("target", ["cortex-m4", "rv32imc"])
def test_dtln_keeps_state_over_five_calls_on_target(tmp_path: Path, target: str) -> None:
    graph, library = _real("dtln_noise_suppression.tflite", target, tmp_path)
    assert len(library.codes[0].state) == 2 and len(library.codes[1].state) == 2
    calls = [seeded_inputs(graph, seed) for seed in range(5)]
    run = run_on_target(library, graph, plugins.get_target(target), calls, reset_each=False)
    assert_same(expected(graph, calls, reset_each=False), run.outputs)
