"""Models with float32 or uint8 interfaces: QUANTIZE / DEQUANTIZE at the edges, as
converters emit them. The reference matches tflite-micro, and the emitted library runs
whole on the simulator bit-exact (this used to stop with an internal error, because
the check inputs assumed integer model inputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.emit.deploy import deploy
from autotune.emit.library import quick_choices
from autotune.emit.verify import run_on_target
from autotune.model.arrays import extreme_inputs, random_inputs, value_range
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins, toolchain
from autotune.reference.oracle import oracle_invoke
from tests.conftest import assert_matches_oracle


def edge_model(interface: str) -> bytes:
    """interface float32: float in -> QUANTIZE -> FC -> DEQUANTIZE -> float out;
    uint8: uint8 in -> QUANTIZE (uint8 -> int8) -> FC -> QUANTIZE (int8 -> uint8) -> out."""
    rng = np.random.default_rng(5)
    b = ModelBuilder()
    if interface == "float32":
        x = b.tensor("x", (1, 32), "float32")
    else:
        x = b.tensor("x", (1, 32), "uint8", 0.05, 128)
    xq = b.tensor("xq", (1, 32), "int8", 0.05, -3)
    w = b.constant("w", rng.integers(-127, 128, (16, 32)).astype(np.int8), 0.01, 0)
    bias = b.constant("b", rng.integers(-500, 500, 16).astype(np.int32), 0.0005, 0)
    yq = b.tensor("yq", (1, 16), "int8", 0.08, 5)
    b.op("QUANTIZE", [x], [xq])
    b.op("FULLY_CONNECTED", [xq, w, bias], [yq])
    if interface == "float32":
        y = b.tensor("y", (1, 16), "float32")
        b.op("DEQUANTIZE", [yq], [y])
    else:
        y = b.tensor("y", (1, 16), "uint8", 0.07, 131)
        b.op("QUANTIZE", [yq], [y])
    b.inputs(x)
    b.outputs(y)
    return b.build()


def calls_for(model: bytes) -> list[list[np.ndarray]]:
    graph = parse_model(model)
    rng = np.random.default_rng(3)
    return [random_inputs(graph, rng) for _ in range(3)] + [
        extreme_inputs(graph, "min"),
        extreme_inputs(graph, "max"),
    ]


@pytest.mark.parametrize("interface", ["float32", "uint8"])
def test_reference_matches_tflite_micro(interface: str) -> None:
    model = edge_model(interface)
    assert assert_matches_oracle(model, calls_for(model)) == "tflite-micro"


def test_float_inputs_span_the_quantized_range_and_beyond() -> None:
    graph = parse_model(edge_model("float32"))
    lo, hi = value_range(graph, graph.input_tensors[0])
    # QUANTIZE to int8 with scale 0.05, zero point -3 represents [-6.25, 6.5].
    assert lo < 0.05 * (-128 + 3) and hi > 0.05 * (127 + 3)


@pytest.mark.parametrize("interface", ["float32", "uint8"])
def test_library_is_bit_exact_on_the_simulator(interface: str, tmp_path: Path) -> None:
    target = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(target):
        pytest.skip("no toolchain for cortex-m4")
    model = edge_model(interface)
    graph = parse_model(model)
    result = deploy(graph, target, tmp_path, quick_choices(graph, target), checks=3)
    assert result.verified_calls >= 3
    calls = calls_for(model)
    oracle, expected = oracle_invoke(model, calls, isolated=True)
    assert oracle == "tflite-micro"
    run = run_on_target(result.library, graph, target, calls, reset_each=True)
    for got, want in zip(run.outputs, expected, strict=True):
        assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    header = (result.library.header).read_text()
    ctype = "float" if interface == "float32" else "uint8_t"
    assert f"const {ctype} *input" in header and f"{ctype} *output" in header
