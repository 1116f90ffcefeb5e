"""BATCH_MATMUL int8 against tflite-micro: plain, transposed operands, broadcast batches,
a constant right-hand side; and its C on the host and on cortex-m4 against the reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.reference.executor import run_model
from tests.conftest import assert_matches_oracle, extreme_inputs, seeded_inputs
from tests.emit.test_emit_shape_ops import check_on_host, check_on_target


def matmul(a_shape, b_shape, out_shape, adj_x=False, adj_y=False, const_rhs=False) -> bytes:
    b = ModelBuilder()
    lhs = b.tensor("lhs", a_shape, "int8", 0.05, -3)
    if const_rhs:
        data = np.random.default_rng(2).integers(-127, 128, b_shape).astype(np.int8)
        rhs = b.constant("rhs", data, 0.02, 1)
    else:
        rhs = b.tensor("rhs", b_shape, "int8", 0.04, 5)
    y = b.tensor("y", out_shape, "int8", 0.3, -7)
    b.op("BATCH_MATMUL", [lhs, rhs], [y], adj_x=adj_x, adj_y=adj_y)
    b.inputs(lhs) if const_rhs else b.inputs(lhs, rhs)
    b.outputs(y)
    return b.build()


CASES = {
    "plain": ((2, 3, 8), (2, 8, 4), (2, 3, 4), False, False, False),
    "adj-x": ((2, 8, 3), (2, 8, 4), (2, 3, 4), True, False, False),
    "adj-y": ((2, 3, 8), (2, 4, 8), (2, 3, 4), False, True, False),
    "broadcast": ((3, 1, 5, 6), (1, 2, 6, 4), (3, 2, 5, 4), False, False, False),
    "const-rhs": ((1, 4, 16), (16, 8), (1, 4, 8), False, False, True),
    "2d": ((5, 7), (7, 3), (5, 3), False, False, False),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_matches_tflite_micro(case: tuple) -> None:
    model = matmul(*case)
    graph = parse_model(model)
    calls = [seeded_inputs(graph, s) for s in (1, 2)]
    calls += [extreme_inputs(graph, "min"), extreme_inputs(graph, "max")]
    assert assert_matches_oracle(model, calls) == "tflite-micro"
    out = run_model(graph, calls[0])[0]
    assert np.unique(out).size > 5


@pytest.mark.parametrize("name", ["adj-y", "broadcast", "const-rhs"])
def test_c_matches_the_reference_on_host_and_cortex_m4(name: str, tmp_path: Path) -> None:
    model = matmul(*CASES[name])
    check_on_host(model, tmp_path / "host")
    check_on_target(model, "cortex-m4", tmp_path / "m4")
