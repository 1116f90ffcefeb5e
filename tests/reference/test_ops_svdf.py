"""SVDF (int8 input and output, int16 state) against tflite-micro over consecutive calls
(state carried) and fresh ones, at rank 1 and 2, with and without bias."""

from __future__ import annotations

import numpy as np
import pytest

from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.reference.executor import run_model
from tests.conftest import assert_matches_oracle, seeded_inputs


def svdf(batch=1, n_input=10, filters=8, memory=5, rank=1, bias=True, act="NONE") -> bytes:
    rng = np.random.default_rng(8)
    b = ModelBuilder()
    x = b.tensor("x", (batch, n_input), "int8", 0.05, -2)
    wf = b.constant("wf", rng.integers(-127, 128, (filters, n_input)).astype(np.int8), 0.01, 0)
    wt = b.constant("wt", rng.integers(-9000, 9000, (filters, memory)).astype(np.int16), 3e-5, 0)
    ins = [x, wf, wt]
    units = filters // rank
    ins.append(b.constant("bias", rng.integers(-500, 500, units).astype(np.int32)) if bias else -1)
    state = b.tensor("state", (batch, filters * memory), "int16", 0.002, 0, variable=True)
    ins.append(state)
    y = b.tensor("y", (batch, units), "int8", 0.03, 4)
    b.op("SVDF", ins, [y], rank=rank, fused_activation_function=act)
    b.inputs(x)
    b.outputs(y)
    return b.build()


CASES = {
    "rank1": {},
    "rank2-batch2": {"batch": 2, "rank": 2},
    "relu": {"act": "RELU"},
}


@pytest.mark.parametrize("stateful", [True, False], ids=["state-carried", "reset-each"])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_matches_tflite_micro(case: dict, stateful: bool) -> None:
    model = svdf(**case)
    graph = parse_model(model)
    calls = [seeded_inputs(graph, s) for s in range(6)]
    assert assert_matches_oracle(model, calls, stateful=stateful, isolated=True) == "tflite-micro"
    assert np.unique(run_model(graph, calls[0])[0]).size > 2


def test_without_bias_is_refused_as_tflite_micro_cannot_run_it() -> None:
    from autotune.errors import UnsupportedOpError
    from autotune.reference.executor import Interpreter

    with pytest.raises(UnsupportedOpError, match=r"op 0 \(SVDF\).*bias is required"):
        Interpreter(parse_model(svdf(bias=False)))


def test_keyword_scrambled_names_what_it_lacks() -> None:
    from autotune.errors import UnsupportedOpError
    from autotune.model.tflite_import import load_model
    from autotune.reference.executor import Interpreter
    from tests.conftest import shared_model

    with pytest.raises(UnsupportedOpError, match=r"SVDF x7 \(ops 1, 3, 5, 7, 9, 10, 11\).*int16"):
        Interpreter(load_model(shared_model("keyword_scrambled_8bit.tflite")))
