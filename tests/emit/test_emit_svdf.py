"""SVDF as emitted C, bit-exact with the reference (which tests/reference/test_ops_svdf.py
pins to tflite-micro): every single-op case on the host, fresh and with the state carried
over calls; the keyword-like graph (QUANTIZE, SVDF with int8 and int16 time weights, FC,
SOFTMAX to int16, QUANTIZE to int32) on the host and on cortex-m4 with stateful calls;
TFLM's keyword benchmark model whole on cortex-m4, its SVDF outputs compared too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.emit.layer_code import EMITTERS
from autotune.emit.library import emit_library
from autotune.emit.verify import run_on_host, run_on_target
from autotune.model.tflite_import import load_model, parse_model
from autotune.platform import plugins, toolchain
from tests.conftest import extreme_inputs, seeded_inputs, shared_model
from tests.emit.test_emit_activations import assert_warning_free
from tests.emit.test_emit_lstm import assert_fresh_and_stateful_on_host, assert_same, expected
from tests.reference.test_ops_svdf import CASES, keyword_like, svdf


def calls_for(graph, n: int = 6) -> list[list[np.ndarray]]:
    calls = [seeded_inputs(graph, s) for s in range(n)]
    return [*calls, extreme_inputs(graph, "min"), extreme_inputs(graph, "max")]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_single_op_on_host_fresh_and_stateful(case: dict, tmp_path: Path) -> None:
    graph = parse_model(svdf(**case))
    assert_fresh_and_stateful_on_host(graph, calls_for(graph), tmp_path)


def test_source_names_the_layer_and_keeps_the_state(tmp_path: Path) -> None:
    graph = parse_model(svdf(time="int8", batch=2, rank=2, memory=3))
    code = EMITTERS["SVDF"](graph, graph.layers[0], "svdf0")
    assert [graph.tensors[t].name for t in code.state] == ["state"]
    assert "Layer 0: SVDF - 2 x 10 -> 4 units, 8 filters (rank 2) x 3 steps, int8" in code.source
    assert "int8_t *state0" in code.source and "static const int8_t c1[24]" in code.source
    library = emit_library(graph, plugins.get_target("cortex-m4"), tmp_path / "model")
    assert library.state_bytes == 2 * 8 * 3
    main = (library.directory / f"{library.name}.c").read_text()
    assert "(int8_t)(-50)" in main  # reset to the int8 state's zero point, as TFLM


def test_keyword_like_graph_on_host(tmp_path: Path) -> None:
    graph = parse_model(keyword_like(batch=2))
    library = emit_library(graph, plugins.get_target("cortex-m4"), tmp_path / "model")
    calls = calls_for(graph)
    assert_same(expected(graph, calls, True), run_on_host(library, graph, calls, True))
    assert_same(expected(graph, calls, False), run_on_host(library, graph, calls, False))


@pytest.mark.toolchain
def test_keyword_like_graph_on_cortex_m4_stateful(tmp_path: Path) -> None:
    target = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(target):
        pytest.skip(f"{target.toolchain.cc} is not installed")
    graph = parse_model(keyword_like())
    library = emit_library(graph, target, tmp_path / "model")
    assert_warning_free(library, "cortex-m4", tmp_path)
    calls = calls_for(graph, 5)
    run = run_on_target(library, graph, target, calls, reset_each=False)
    assert_same(expected(graph, calls, reset_each=False), run.outputs)


@pytest.mark.models
@pytest.mark.toolchain
def test_keyword_scrambled_on_cortex_m4_with_its_svdf_outputs(tmp_path: Path) -> None:
    # The model's scrambled weights saturate it ([0, 32767] out for any input, two values
    # per SVDF output): the SVDF outputs are compared too, but the small graphs above are
    # what shows the arithmetic; this shows the real model builds and runs stateful.
    target = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(target):
        pytest.skip(f"{target.toolchain.cc} is not installed")
    graph = load_model(shared_model("keyword_scrambled_8bit.tflite"))
    svdf_outputs = [layer.outputs[0] for layer in graph.layers if layer.op == "SVDF"]
    assert len(svdf_outputs) == 7
    graph.outputs = [*graph.outputs, *svdf_outputs]
    library = emit_library(graph, target, tmp_path / "model")
    calls = [seeded_inputs(graph, s) for s in range(5)]
    want = expected(graph, calls, reset_each=False)
    run = run_on_target(library, graph, target, calls, reset_each=False)
    assert_same(want, run.outputs)
