"""One list of supported types: every layer the reference's check accepts (and so `tune`
classifies as runnable), the C emitter emits too, for every element type a model may use.
Before, MAXIMUM and MINIMUM ran int16, int32 and float32 in `reference`, and `tune` then
stopped at the library with "no C for int16"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.emit.library import emit_library
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins
from autotune.reference.executor import unsupported_layers

TYPES = ("int8", "uint8", "int16", "int32", "float32")
POOL = {"padding": "VALID", "stride_h": 2, "stride_w": 2, "filter_height": 2, "filter_width": 2}
# op: (options, extra constant input (name, value) or "second" for a second activation,
# output shape)
CASES = {
    "RESHAPE": ({}, ("shape", [1, 32]), (1, 32)),
    "SQUEEZE": ({}, None, (1, 4, 4, 2)),
    "EXPAND_DIMS": ({}, ("axis", [0]), (1, 1, 4, 4, 2)),
    "PAD": ({}, ("pads", [[0, 0], [1, 1], [1, 1], [0, 0]]), (1, 6, 6, 2)),
    "TRANSPOSE": ({}, ("perm", [0, 2, 1, 3]), (1, 4, 4, 2)),
    "CONCATENATION": ({"axis": 3}, "second", (1, 4, 4, 4)),
    "ADD": ({}, "second", (1, 4, 4, 2)),
    "SUB": ({}, "second", (1, 4, 4, 2)),
    "MUL": ({}, "second", (1, 4, 4, 2)),
    "MAXIMUM": ({}, "second", (1, 4, 4, 2)),
    "MINIMUM": ({}, "second", (1, 4, 4, 2)),
    "SOFTMAX": ({"beta": 1.0}, None, (1, 4, 4, 2)),
    "TANH": ({}, None, (1, 4, 4, 2)),
    "RELU": ({}, None, (1, 4, 4, 2)),
    "RELU6": ({}, None, (1, 4, 4, 2)),
    "HARD_SWISH": ({}, None, (1, 4, 4, 2)),
    "MEAN": ({"keep_dims": True}, ("axis", [1, 2]), (1, 1, 1, 2)),
    "AVERAGE_POOL_2D": (POOL, None, (1, 2, 2, 2)),
    "MAX_POOL_2D": (POOL, None, (1, 2, 2, 2)),
}


def single_op(op: str, dtype: str) -> bytes:
    options, extra, out_shape = CASES[op]
    q = (0.1, 0) if dtype in ("int8", "uint8", "int16") else (None, None)
    b = ModelBuilder()
    x = b.tensor("x", (1, 4, 4, 2), dtype, *q)
    inputs, feeds = [x], [x]
    if extra == "second":
        second = b.tensor("x2", (1, 4, 4, 2), dtype, *q)
        inputs.append(second)
        feeds.append(second)
    elif extra is not None:
        inputs.append(b.constant(extra[0], np.array(extra[1], np.int32)))
    if op == "SOFTMAX" and dtype == "int8":
        q = (1 / 256, -128)  # TFLM's int8 softmax output
    y = b.tensor("y", out_shape, dtype, *q)
    b.op(op, inputs, [y], **options)
    b.inputs(*feeds)
    b.outputs(y)
    return b.build()


@pytest.mark.parametrize("op", CASES)
def test_what_the_reference_accepts_the_emitter_emits(op: str, tmp_path: Path) -> None:
    target = plugins.get_target("cortex-m4")
    accepted = []
    for dtype in TYPES:
        graph = parse_model(single_op(op, dtype), f"{op}_{dtype}.tflite")
        if unsupported_layers(graph):
            continue
        accepted.append(dtype)
        emit_library(graph, target, tmp_path / dtype)  # raises UnsupportedOpError if not
    assert "int8" in accepted, (op, accepted)
