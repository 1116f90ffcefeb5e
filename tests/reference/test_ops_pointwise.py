"""RELU, RELU6, HARD_SWISH, MAXIMUM, MINIMUM, SQUEEZE and EXPAND_DIMS: the reference
against tflite-micro on single-op models and a small graph, and their C on the host and
on cortex-m4 (-Werror, simulator) against the reference. MAXIMUM and MINIMUM on every
type their check takes (DATA_TYPES), in the reference and in C."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.errors import UnsupportedOpError
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.reference.executor import Interpreter, run_model
from tests.conftest import assert_matches_oracle, extreme_inputs, seeded_inputs
from tests.emit.test_emit_shape_ops import check_on_host, check_on_target, typed_inputs

EVERY_INT8 = [[np.arange(-128, 128, dtype=np.int8).reshape(1, 256)]]
# (input scale, zero point, output scale, zero point): same, wider, narrower, offset.
QUANT = [
    (0.05, -3, 0.05, -3),
    (0.1, 10, 0.03, -128),
    (0.02, -100, 0.07, 5),
    (0.5, 0, 0.01, 0),
    (0.01, 3, 0.5, -7),
]


def unary(op: str, q: tuple[float, int, float, int]) -> bytes:
    b = ModelBuilder()
    x = b.tensor("x", (1, 256), "int8", q[0], q[1])
    y = b.tensor("y", (1, 256), "int8", q[2], q[3])
    b.op(op, [x], [y])
    b.inputs(x)
    b.outputs(y)
    return b.build()


def binary(op: str, a_shape: tuple, b_shape: tuple, out_shape: tuple, dtype="int8") -> bytes:
    b = ModelBuilder()
    q = (0.1, 2) if dtype == "int8" else (None, None)
    a = b.tensor("a", a_shape, dtype, *q)
    c = b.tensor("b", b_shape, dtype, *q)
    y = b.tensor("y", out_shape, dtype, *q)
    b.op(op, [a, c], [y])
    b.inputs(a, c)
    b.outputs(y)
    return b.build()


@pytest.mark.parametrize("q", QUANT)
@pytest.mark.parametrize("op", ["RELU", "RELU6", "HARD_SWISH"])
def test_unary_matches_tflite_micro_on_every_input(op: str, q: tuple) -> None:
    model = unary(op, q)
    assert assert_matches_oracle(model, EVERY_INT8) == "tflite-micro"
    out = run_model(parse_model(model), EVERY_INT8[0])[0]
    assert np.unique(out).size >= 3  # not a constant (the extreme scales saturate most)


def test_hard_swish_with_too_small_an_output_scale_is_refused() -> None:
    with pytest.raises(UnsupportedOpError, match=r"op 0 \(HARD_SWISH\).*output scale"):
        Interpreter(parse_model(unary("HARD_SWISH", (0.5, 0, 0.001, 0))))


BROADCASTS = {
    "same": ((2, 3, 8), (2, 3, 8), (2, 3, 8)),
    "row": ((2, 3, 8), (1, 1, 8), (2, 3, 8)),
    "both": ((2, 1, 8), (1, 3, 1), (2, 3, 8)),
}


@pytest.mark.parametrize("shapes", BROADCASTS.values(), ids=BROADCASTS.keys())
@pytest.mark.parametrize("op", ["MAXIMUM", "MINIMUM"])
def test_max_min_match_tflite_micro(op: str, shapes: tuple) -> None:
    model = binary(op, *shapes)
    graph = parse_model(model)
    calls = [seeded_inputs(graph, s) for s in (1, 2)] + [extreme_inputs(graph, "min")]
    assert assert_matches_oracle(model, calls) == "tflite-micro"


@pytest.mark.parametrize("dtype", ["int16", "int32", "float32"])
@pytest.mark.parametrize("op", ["MAXIMUM", "MINIMUM"])
def test_max_min_match_tflite_micro_on_every_type_they_take(op: str, dtype: str) -> None:
    model = binary(op, *BROADCASTS["both"], dtype=dtype)
    graph = parse_model(model)
    calls = [typed_inputs(graph, s) for s in (1, 2)]
    if dtype == "float32":  # NaN on either side, and signed zeros: TFLM's `>` decides
        a = np.array([np.nan, 1.0, -0.0, 0.0, np.nan, -np.inf, 3.0, -2.0] * 2, np.float32)
        b = np.array([np.nan, -0.0, 1.0], np.float32)
        calls.append([a.reshape(2, 1, 8), b.reshape(1, 3, 1)])
    else:
        calls += [extreme_inputs(graph, "min"), extreme_inputs(graph, "max")]
    assert assert_matches_oracle(model, calls) == "tflite-micro"


def small_graph() -> bytes:
    """EXPAND_DIMS -> HARD_SWISH -> MAXIMUM with a constant -> RELU6 -> SQUEEZE -> RELU."""
    b = ModelBuilder()
    x = b.tensor("x", (4, 6), "int8", 0.05, -3)
    e = b.tensor("e", (1, 4, 6), "int8", 0.05, -3)
    h = b.tensor("h", (1, 4, 6), "int8", 0.04, -20)
    m = b.tensor("m", (1, 4, 6), "int8", 0.04, -20)
    r6 = b.tensor("r6", (1, 4, 6), "int8", 0.04, -20)
    s = b.tensor("s", (4, 6), "int8", 0.04, -20)
    y = b.tensor("y", (4, 6), "int8", 0.03, -128)
    axis = b.constant("axis", np.array([0], np.int32))
    floor = b.constant("floor", np.array([[[-30, -10, 0, 10, 20, 40]]], np.int8), 0.04, -20)
    b.op("EXPAND_DIMS", [x, axis], [e])
    b.op("HARD_SWISH", [e], [h])
    b.op("MAXIMUM", [h, floor], [m])
    b.op("RELU6", [m], [r6])
    b.op("SQUEEZE", [r6], [s], squeeze_dims=[0])
    b.op("RELU", [s], [y])
    b.inputs(x)
    b.outputs(y)
    return b.build()


def test_small_graph_matches_tflite_micro() -> None:
    model = small_graph()
    graph = parse_model(model)
    calls = [seeded_inputs(graph, s) for s in (1, 2, 3)]
    calls += [extreme_inputs(graph, "min"), extreme_inputs(graph, "max")]
    assert assert_matches_oracle(model, calls) == "tflite-micro"


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(lambda: unary("RELU", QUANT[1]), id="relu"),
        pytest.param(lambda: unary("RELU6", QUANT[2]), id="relu6"),
        pytest.param(lambda: unary("HARD_SWISH", QUANT[1]), id="hard_swish"),
        pytest.param(lambda: binary("MAXIMUM", *BROADCASTS["both"]), id="maximum"),
        pytest.param(lambda: binary("MINIMUM", *BROADCASTS["row"]), id="minimum"),
        pytest.param(lambda: binary("MAXIMUM", *BROADCASTS["both"], "int16"), id="maximum-int16"),
        pytest.param(lambda: binary("MINIMUM", *BROADCASTS["row"], "int32"), id="minimum-int32"),
        pytest.param(lambda: binary("MAXIMUM", *BROADCASTS["both"], "float32"), id="max-float32"),
        pytest.param(small_graph, id="graph"),
    ],
)
def test_c_matches_the_reference_on_host_and_cortex_m4(model, tmp_path: Path) -> None:
    built = model()
    check_on_host(built, tmp_path / "host")
    check_on_target(built, "cortex-m4", tmp_path / "m4")
