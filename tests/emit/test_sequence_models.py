"""Issue 6's acceptance for the sequence models: each one emitted as a whole-model library
for cortex-m4 and rv32imc, run on the simulator, bit-identical to the tflite-micro
interpreter. The layers use fast untuned variants (quick_choices), so no search runs here.

Covered patterns: Conv1D as converted (RESHAPE + CONV_2D with height 1 and kernels of
512, 128 and 64 taps), the last step taken with STRIDED_SLICE, the bidirectional form
(REVERSE_V2, two LSTMs, CONCATENATION), stacked LSTMs, and a stateful model (dtln) whose
state the library keeps across calls and restores with NAME_reset().
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from autotune.emit.library import Library, emit_library, quick_choices
from autotune.emit.verify import run_on_target
from autotune.model.graph import Graph
from autotune.model.tflite_import import load_model
from autotune.platform import plugins, toolchain
from autotune.platform.target import Target
from autotune.reference.oracle import oracle_invoke
from autotune.tune.spec import build_spec
from tests.conftest import seeded_inputs, shared_model

Calls = list[list[np.ndarray]]

MODELS = {
    "seed_conv1d_lstm_800x2": ("RESHAPE", "CONV_2D", "STRIDED_SLICE", "SOFTMAX"),
    "lstm_weather_24x7_u32": ("STRIDED_SLICE", "FULLY_CONNECTED"),
    "lstm_textgen_100x64_u128": ("STRIDED_SLICE", "FULLY_CONNECTED"),
    "bilstm_50x16_u32": ("REVERSE_V2", "STRIDED_SLICE", "CONCATENATION"),
    "trained_lstm_int8": ("RESHAPE", "FULLY_CONNECTED", "SOFTMAX"),
    "micro_speech_lstm": ("RESHAPE", "FULLY_CONNECTED", "SOFTMAX"),
    "dtln_noise_suppression": ("FULLY_CONNECTED", "LOGISTIC"),
}
TARGETS = ["cortex-m4", "rv32imc"]
FRESH_SEEDS = (61, 62, 63)
STATEFUL_SEEDS = (71, 72, 73, 74, 75)

pytestmark = [pytest.mark.models, pytest.mark.toolchain]

# The oracle's answers do not depend on the target: computed once per model and mode.
_ORACLE: dict[tuple[str, bool], tuple[Calls, Calls]] = {}


def need(target_name: str) -> Target:
    target = plugins.get_target(target_name)
    if not toolchain.toolchain_available(target):
        pytest.skip(f"no toolchain for {target_name}")
    return target


def graph_of(name: str) -> tuple[Path, Graph]:
    path = shared_model(f"{name}.tflite")
    return path, load_model(path)


def silence(graph: Graph) -> list[np.ndarray]:
    """Every input at its zero point: real zero, as a silent or blank frame sequence."""
    return [np.full(t.shape, t.zero_point, t.dtype) for t in graph.input_tensors]


def oracle(name: str, stateful: bool) -> tuple[Calls, Calls]:
    """Seeded inputs and tflite-micro's outputs: fresh invocations, or consecutive calls.

    Fresh: three random inputs, plus silence when the three random ones all give the
    same outputs (the softmax of trained_lstm_int8 and micro_speech_lstm saturates to one
    class on noise), so that a library computing a constant could not pass."""
    key = (name, stateful)
    if key not in _ORACLE:
        path, graph = graph_of(name)
        seeds = STATEFUL_SEEDS if stateful else FRESH_SEEDS
        calls = [seeded_inputs(graph, seed) for seed in seeds]
        if not stateful:
            calls.append(silence(graph))
        used, expected = oracle_invoke(path.read_bytes(), calls, stateful=stateful, isolated=True)
        assert used == "tflite-micro", f"{name}: the tflite-micro interpreter did not run it"
        if not stateful and not differ(expected[: len(seeds)]):
            _ORACLE[key] = (calls, expected)
        else:
            _ORACLE[key] = (calls[: len(seeds)], expected[: len(seeds)])
    return _ORACLE[key]


def differ(outputs: Calls) -> bool:
    """Some call's first output differs from the next call's."""
    return any(not np.array_equal(a[0], b[0]) for a, b in itertools.pairwise(outputs))


def library_for(name: str, target: Target, tmp_path: Path) -> tuple[Graph, Library]:
    _, graph = graph_of(name)
    choices = quick_choices(graph, target)
    # Every layer the tuner knows (CONV_2D, FULLY_CONNECTED, UNIDIRECTIONAL_SEQUENCE_LSTM)
    # runs a fast template variant; the other ops run the emitted reference-style C.
    tunable = [layer.index for layer in graph.layers if build_spec(graph, layer) is not None]
    missing = [i for i in tunable if i not in choices]
    assert not missing, f"{name}: layers {missing} got no fast variant on {target.name}"
    return graph, emit_library(graph, target, tmp_path / "model", choices)


def assert_same(got: Calls, want: Calls, what: str) -> None:
    assert len(got) == len(want)
    for n, (g_call, w_call) in enumerate(zip(got, want, strict=True)):
        for k, (g, w) in enumerate(zip(g_call, w_call, strict=True)):
            assert g.dtype == w.dtype and g.shape == w.shape, (what, n, k, g.shape, w.shape)
            if not np.array_equal(g, w):
                diff = np.abs(g.astype(np.int64) - w.astype(np.int64))
                raise AssertionError(
                    f"{what}: call {n} output {k}: {int((diff > 0).sum())} of {diff.size} "
                    f"values differ from tflite-micro (max {int(diff.max())} LSB)"
                )


@pytest.mark.parametrize("target_name", TARGETS)
@pytest.mark.parametrize("name", list(MODELS))
def test_sequence_model_matches_tflite_micro_on_the_simulator(
    name: str, target_name: str, tmp_path: Path
) -> None:
    target = need(target_name)
    graph, library = library_for(name, target, tmp_path)
    ops = {layer.op for layer in graph.layers}
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops and set(MODELS[name]) <= ops, sorted(ops)
    calls, expected = oracle(name, stateful=False)
    run = run_on_target(library, graph, target, calls, reset_each=True)
    assert_same(run.outputs, expected, f"{name} on {target_name}, fresh invocations")
    # Distinct inputs give distinct outputs somewhere, or equality would prove little.
    assert differ(expected), f"{name}: every input gives the same outputs"


@pytest.mark.parametrize("target_name", TARGETS)
def test_dtln_keeps_its_state_across_calls_and_resets(target_name: str, tmp_path: Path) -> None:
    target = need(target_name)
    name = "dtln_noise_suppression"
    graph, library = library_for(name, target, tmp_path)
    assert library.state_bytes == 2 * (128 + 2 * 128)  # two LSTMs: int8 hidden, int16 cell

    # Five consecutive calls, state carried over on both sides.
    calls, expected = oracle(name, stateful=True)
    run = run_on_target(library, graph, target, calls, reset_each=False)
    assert_same(run.outputs, expected, f"{name} on {target_name}, consecutive calls")

    # The state matters: the same inputs as fresh invocations give other outputs.
    _, fresh = oracle_invoke(
        shared_model(f"{name}.tflite").read_bytes(), calls, stateful=False, isolated=True
    )
    assert any(not np.array_equal(s[0], f[0]) for s, f in zip(expected[1:], fresh[1:], strict=True))

    # NAME_reset() before every call: after three calls have moved the state,
    # a reset run of the first input reproduces the first call exactly.
    replay = [calls[0], calls[1], calls[2], calls[0]]
    again = run_on_target(library, graph, target, replay, reset_each=True)
    assert_same(again.outputs, [fresh[0], fresh[1], fresh[2], fresh[0]], f"{name} reset")
    assert np.array_equal(again.outputs[3][0], run.outputs[0][0])
