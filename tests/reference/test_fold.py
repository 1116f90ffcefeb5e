"""Constant folding at import: Keras' SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE chain on
static shapes becomes constants. The folded model matches tflite-micro, which runs the
chain, and its library runs bit-exact on the simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.emit.deploy import deploy
from autotune.emit.library import quick_choices
from autotune.model.schema import TENSOR_TYPE_CODES
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins, toolchain
from autotune.reference.executor import Interpreter
from tests.conftest import assert_matches_oracle, extreme_inputs, seeded_inputs


def keras_reshape_model(units: int = 8) -> bytes:
    rng = np.random.default_rng(9)
    b = ModelBuilder()
    x = b.tensor("x", (1, 4, 4, 2), "int8", 0.1, 3)
    shape = b.tensor("shape", (4,), "int32")
    batch = b.tensor("batch", (), "int32")
    packed = b.tensor("packed", (2,), "int32")
    flat = b.tensor("flat", (1, 32), "int8", 0.1, 3)
    b.op("SHAPE", [x], [shape], out_type=TENSOR_TYPE_CODES["INT32"])
    begin, end, stride = (b.constant(n, np.array([v], np.int32)) for n, v in
                          (("begin", 0), ("end", 1), ("stride", 1)))  # fmt: skip
    b.op("STRIDED_SLICE", [shape, begin, end, stride], [batch], shrink_axis_mask=1)
    minus_one = b.constant("cols", np.array(32, np.int32))
    b.op("PACK", [batch, minus_one], [packed], values_count=2, axis=0)
    b.op("RESHAPE", [x, packed], [flat])
    w = b.constant("w", rng.integers(-127, 128, (units, 32)).astype(np.int8), 0.02, 0)
    bias = b.constant("bias", rng.integers(-300, 300, units).astype(np.int32), 0.002, 0)
    y = b.tensor("y", (1, units), "int8", 0.15, -4)
    b.op("FULLY_CONNECTED", [flat, w, bias], [y])
    b.inputs(x)
    b.outputs(y)
    return b.build()


def test_chain_is_folded_into_constants() -> None:
    graph = parse_model(keras_reshape_model())
    assert [layer.op for layer in graph.layers] == ["RESHAPE", "FULLY_CONNECTED"]
    assert [layer.index for layer in graph.layers] == [0, 1]
    packed = graph.tensors[graph.layers[0].inputs[1]]
    assert packed.data is not None and packed.data.tolist() == [1, 32]


def test_folded_model_matches_tflite_micro() -> None:
    model = keras_reshape_model()
    graph = parse_model(model)
    calls = [seeded_inputs(graph, s) for s in (1, 2)]
    calls += [extreme_inputs(graph, "min"), extreme_inputs(graph, "max")]
    assert assert_matches_oracle(model, calls) == "tflite-micro"


def test_a_chain_on_a_model_output_is_kept_and_runs() -> None:
    b = ModelBuilder()
    x = b.tensor("x", (1, 3, 5), "int8", 0.1, 0)
    s = b.tensor("s", (3,), "int32")
    b.op("SHAPE", [x], [s], out_type=TENSOR_TYPE_CODES["INT32"])
    b.inputs(x)
    b.outputs(s)
    graph = parse_model(b.build())
    assert [layer.op for layer in graph.layers] == ["SHAPE"]
    out = Interpreter(graph).invoke([np.zeros((1, 3, 5), np.int8)])
    assert out[0].tolist() == [1, 3, 5]


def test_folded_library_is_bit_exact_on_the_simulator(tmp_path: Path) -> None:
    target = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(target):
        pytest.skip("no toolchain for cortex-m4")
    graph = parse_model(keras_reshape_model())
    result = deploy(graph, target, tmp_path, quick_choices(graph, target), checks=3)
    assert result.verified_calls >= 3
