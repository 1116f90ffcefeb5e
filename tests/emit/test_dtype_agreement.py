"""One list of supported types: every layer the reference's check accepts (and so `tune`
classifies as runnable), the C emitter emits too, for every element type a model may use.
Before, MAXIMUM and MINIMUM ran int16, int32 and float32 in `reference`, and `tune` then
stopped at the library with "no C for int16". And the model interface types of
docs/cli.md (`IO_DTYPES`) are the ones that run and are emitted: int32 ran everywhere
but was missing from the list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.emit.layer_code import c_type
from autotune.emit.library import emit_library
from autotune.model.arrays import IO_DTYPES, extreme_inputs, random_inputs
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins
from autotune.reference.executor import run_model, unsupported_layers

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


def interface_model(dtype: str) -> bytes:
    """The smallest graph with `dtype` in and out: a RESHAPE, or for uint8 (which only
    QUANTIZE reads and writes) uint8 -> int8 -> uint8."""
    b = ModelBuilder()
    if dtype == "uint8":
        x = b.tensor("x", (1, 8), "uint8", 0.05, 128)
        mid = b.tensor("mid", (1, 8), "int8", 0.05, 0)
        y = b.tensor("y", (1, 8), "uint8", 0.05, 128)
        b.op("QUANTIZE", [x], [mid])
        b.op("QUANTIZE", [mid], [y])
    else:
        q = (0.1, 0) if dtype in ("int8", "int16") else (None, None)
        x = b.tensor("x", (1, 8), dtype, *q)
        y = b.tensor("y", (1, 2, 4), dtype, *q)
        b.op("RESHAPE", [x, b.constant("shape", np.array([1, 2, 4], np.int32))], [y])
    b.inputs(x)
    b.outputs(y)
    return b.build()


@pytest.mark.parametrize("dtype", IO_DTYPES)
def test_every_interface_type_of_the_list_runs_and_is_emitted(dtype: str, tmp_path: Path) -> None:
    graph = parse_model(interface_model(dtype), f"io_{dtype}.tflite")
    assert unsupported_layers(graph) == []
    for inputs in (random_inputs(graph, np.random.default_rng(1)), extreme_inputs(graph, "max")):
        (out,) = run_model(graph, inputs)
        assert out.dtype == np.dtype(dtype)
    lib = emit_library(graph, plugins.get_target("cortex-m4"), tmp_path)
    assert f"const {c_type(dtype)} *" in lib.header.read_text()


@pytest.mark.parametrize("dtype", ["int64", "bool", "float16"])
def test_interface_types_outside_the_list_are_named(dtype: str) -> None:
    assert dtype not in IO_DTYPES
    graph = parse_model(interface_model(dtype), f"io_{dtype}.tflite")
    ((op, index, reason),) = unsupported_layers(graph)
    assert (op, index) == ("RESHAPE", 0) and dtype in reason
