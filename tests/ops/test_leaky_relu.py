"""LEAKY_RELU: bit-exact with tflite-micro, and its emitted C with the reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.opdef import defined_ops
from autotune.reference.executor import Interpreter
from tests.conftest import assert_matches_oracle
from tests.emit.test_emit_shape_ops import check_on_host, check_on_target

# (alpha, (input scale, zp), (output scale, zp)): the alpha multiplier below and above
# one, an identity multiplier above one (a left shift), zero points at both ends.
CASES = {
    "typical": (0.2, (0.05, 3), (0.03, -10)),
    "alpha-above-one": (1.7, (0.02, -20), (0.05, 5)),
    "scale-up": (0.01, (0.1, 0), (0.02, -128)),
    "negative-alpha": (-0.3, (0.04, 127), (0.04, -5)),
}


def leaky_model(alpha: float, qx: tuple, qy: tuple, shape: tuple = (1, 5, 7, 3)) -> bytes:
    b = ModelBuilder()
    x = b.tensor("x", shape, "int8", qx[0], qx[1])
    y = b.tensor("y", shape, "int8", qy[0], qy[1])
    b.op("LEAKY_RELU", [x], [y], alpha=alpha)
    b.inputs(x)
    b.outputs(y)
    return b.build()


def every_int8(shape: tuple = (1, 5, 7, 3)) -> list[list[np.ndarray]]:
    n = int(np.prod(shape))
    values = np.resize(np.arange(-128, 128), n).astype(np.int8)
    return [[values.reshape(shape)], [np.flip(values).reshape(shape)]]


def test_one_definition_gives_every_part() -> None:
    op = defined_ops()["LEAKY_RELU"]
    assert op.kernel is not None and op.check is not None and op.emitter is not None
    assert op.spec is None  # not tunable: no template, the emitter's table is the C


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_reference_matches_tflite_micro(case: tuple) -> None:
    assert assert_matches_oracle(leaky_model(*case), every_int8()) == "tflite-micro"


def test_negative_inputs_use_alpha() -> None:
    graph = parse_model(leaky_model(0.5, (0.1, 0), (0.1, 0), shape=(1, 5)))
    got = Interpreter(graph).invoke([np.array([[-100, -4, 0, 4, 100]], np.int8)])
    assert got[0].reshape(-1).tolist() == [-50, -2, 0, 4, 100]


def test_float_input_is_refused_with_the_reason() -> None:
    b = ModelBuilder()
    x = b.tensor("x", (1, 4), "float32")
    y = b.tensor("y", (1, 4), "float32")
    b.op("LEAKY_RELU", [x], [y], alpha=0.1)
    b.inputs(x)
    b.outputs(y)
    with pytest.raises(Exception, match=r"LEAKY_RELU.*float"):
        Interpreter(parse_model(b.build()))


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_emitted_c_matches_the_reference_on_host(case: tuple, tmp_path: Path) -> None:
    check_on_host(leaky_model(*case, shape=(1, 256)), tmp_path, every_int8((1, 256)))


def test_emitted_c_runs_bit_exact_on_a_target(tmp_path: Path) -> None:
    check_on_target(leaky_model(*CASES["typical"]), "cortex-m4", tmp_path, every_int8())
