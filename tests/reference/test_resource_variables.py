"""Resource variables (CALL_ONCE, VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE), as
streaming models keep their state: against tflite-micro over consecutive calls (state
carried) and fresh calls (reset), single ops and a small streaming graph; and the
library on the cortex-m4 simulator, whose deploy check runs calls with state carried."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.emit.deploy import deploy
from autotune.emit.library import quick_choices
from autotune.errors import ModelError
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins, toolchain
from autotune.reference.executor import Interpreter
from tests.conftest import assert_matches_oracle


def accumulator_model(init: bool = True) -> bytes:
    """y = x + state; state = y. The state's zero point is not 0, so that a reset to zero
    bytes instead of the zero point would show."""
    b = ModelBuilder()
    x = b.tensor("x", (1, 6), "int8", 0.1, -2)
    s = b.tensor("s", (1, 6), "int8", 0.1, 3)
    y = b.tensor("y", (1, 6), "int8", 0.1, 3)
    start = np.array([[5, -7, 0, 100, -128, 127]], np.int8) if init else None
    h = b.resource("acc", start, 0.1, 3)
    b.op("READ_VARIABLE", [h], [s])
    b.op("ADD", [x, s], [y])
    b.op("ASSIGN_VARIABLE", [h, y], [])
    b.inputs(x)
    b.outputs(y)
    return b.build()


def streaming_model() -> bytes:
    """Keeps the last 3 frames of 4 features: window = concat(state, x); the state
    becomes the newest 3 frames; a fully connected layer reads the whole window."""
    rng = np.random.default_rng(4)
    b = ModelBuilder()
    x = b.tensor("x", (1, 1, 4), "int8", 0.05, 1)
    past = b.tensor("past", (1, 3, 4), "int8", 0.05, 1)
    window = b.tensor("window", (1, 4, 4), "int8", 0.05, 1)
    newest = b.tensor("newest", (1, 3, 4), "int8", 0.05, 1)
    flat = b.tensor("flat", (1, 16), "int8", 0.05, 1)
    y = b.tensor("y", (1, 5), "int8", 0.1, -6)
    h = b.resource("frames", np.zeros((1, 3, 4), np.int8) + 1, 0.05, 1)
    b.op("READ_VARIABLE", [h], [past])
    b.op("CONCATENATION", [past, x], [window], axis=1)
    begin = b.constant("begin", np.array([0, 1, 0], np.int32))
    end = b.constant("end", np.array([1, 4, 4], np.int32))
    ones = b.constant("strides", np.array([1, 1, 1], np.int32))
    b.op("STRIDED_SLICE", [window, begin, end, ones], [newest])
    b.op("ASSIGN_VARIABLE", [h, newest], [])
    shape = b.constant("shape", np.array([1, 16], np.int32))
    b.op("RESHAPE", [window, shape], [flat])
    w = b.constant("w", rng.integers(-127, 128, (5, 16)).astype(np.int8), 0.02, 0)
    bias = b.constant("bias", rng.integers(-200, 200, 5).astype(np.int32), 0.001, 0)
    b.op("FULLY_CONNECTED", [flat, w, bias], [y])
    b.inputs(x)
    b.outputs(y)
    return b.build()


def calls(model: bytes, n: int = 5, seed: int = 0) -> list[list[np.ndarray]]:
    graph = parse_model(model)
    rng = np.random.default_rng(seed)
    shape = graph.input_tensors[0].shape
    return [[rng.integers(-60, 60, shape).astype(np.int8)] for _ in range(n)]


def test_lowered_to_variable_tensors() -> None:
    graph = parse_model(accumulator_model())
    assert [layer.op for layer in graph.layers] == ["READ_VARIABLE", "ADD", "ASSIGN_VARIABLE"]
    ((index, value),) = graph.resources.items()
    assert graph.tensors[index].variable and graph.tensors[index].name == "acc"
    assert value is not None and value.tolist() == [[5, -7, 0, 100, -128, 127]]


@pytest.mark.parametrize("stateful", [True, False], ids=["state-carried", "reset-each"])
@pytest.mark.parametrize("build", [accumulator_model, streaming_model])
def test_matches_tflite_micro(build, stateful: bool) -> None:
    model = build()
    assert assert_matches_oracle(model, calls(model), stateful=stateful) == "tflite-micro"


def test_without_an_init_subgraph_the_state_starts_at_its_zero_point() -> None:
    model = accumulator_model(init=False)
    assert assert_matches_oracle(model, calls(model), stateful=True) == "tflite-micro"


def test_state_is_carried_and_reset() -> None:
    interp = Interpreter(parse_model(accumulator_model()))
    x = [np.zeros((1, 6), np.int8) + 2]  # real 0.4 each call
    first = interp.invoke(x)[0].copy()
    second = interp.invoke(x)[0]
    assert not np.array_equal(first, second)
    interp.reset()
    after_reset = interp.invoke(x)[0]
    assert not np.array_equal(after_reset, first)  # the init value is not assigned again


def test_init_subgraph_that_computes_is_refused_by_name() -> None:
    import flatbuffers

    from autotune.model.schema import OP_CODES, fb

    model = fb.ModelT.InitFromPackedBuf(accumulator_model(), 0)
    init = model.subgraphs[1]
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = OP_CODES["TANH"]
    model.operatorCodes.append(code)
    op = fb.OperatorT()
    op.opcodeIndex = len(model.operatorCodes) - 1
    op.inputs, op.outputs = [1], [1]
    init.operators.append(op)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(ModelError, match=r"op 0 \(CALL_ONCE\): init subgraph 1 runs op 2 \(TANH\)"):
        parse_model(bytes(builder.Output()), "m.tflite")


@pytest.mark.parametrize("build", [accumulator_model, streaming_model])
def test_library_keeps_state_on_the_simulator(build, tmp_path: Path) -> None:
    target = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(target):
        pytest.skip("no toolchain for cortex-m4")
    graph = parse_model(build())
    result = deploy(graph, target, tmp_path, quick_choices(graph, target), checks=3)
    assert result.verified_calls >= 3 and result.stateful_calls >= 2
    assert result.library.state_bytes > 0
