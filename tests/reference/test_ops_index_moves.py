"""RESIZE_NEAREST_NEIGHBOR, DEPTH_TO_SPACE, SPACE_TO_DEPTH and GATHER against
tflite-micro on single-op models and a small graph, and their C (an index table the
reference computes) on the host and on cortex-m4 against the reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.errors import AutotuneError, UnsupportedOpError
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.reference.executor import Interpreter
from tests.conftest import assert_matches_oracle, seeded_inputs
from tests.emit.test_emit_shape_ops import check_on_host, check_on_target


def resize(in_hw: tuple, out_hw: tuple, align: bool, half: bool) -> bytes:
    b = ModelBuilder()
    x = b.tensor("x", (1, *in_hw, 3), "int8", 0.1, 4)
    y = b.tensor("y", (1, *out_hw, 3), "int8", 0.1, 4)
    size = b.constant("size", np.array(out_hw, np.int32))
    b.op("RESIZE_NEAREST_NEIGHBOR", [x, size], [y], align_corners=align, half_pixel_centers=half)
    b.inputs(x)
    b.outputs(y)
    return b.build()


def block_op(op: str, in_shape: tuple, out_shape: tuple, bs: int) -> bytes:
    b = ModelBuilder()
    x = b.tensor("x", in_shape, "int8", 0.1, 4)
    y = b.tensor("y", out_shape, "int8", 0.1, 4)
    b.op(op, [x], [y], block_size=bs)
    b.inputs(x)
    b.outputs(y)
    return b.build()


def gather(axis: int, indices: np.ndarray | None, out_shape: tuple) -> bytes:
    b = ModelBuilder()
    x = b.tensor("x", (4, 5, 6), "int8", 0.1, 4)
    if indices is None:
        idx = b.tensor("idx", (3,), "int32")
    else:
        idx = b.constant("idx", indices.astype(np.int32))
    y = b.tensor("y", out_shape, "int8", 0.1, 4)
    b.op("GATHER", [x, idx], [y], axis=axis)
    b.inputs(x, idx) if indices is None else b.inputs(x)
    b.outputs(y)
    return b.build()


def calls_for(model: bytes) -> list[list[np.ndarray]]:
    graph = parse_model(model)
    return [seeded_inputs(graph, s) for s in (1, 2)]


RESIZES = {
    "up2": ((3, 4), (6, 8), False, False),
    "up-odd": ((3, 5), (7, 11), False, False),
    "down": ((9, 7), (4, 3), False, False),
    "align-corners": ((3, 5), (7, 11), True, False),
    "half-pixel": ((3, 5), (7, 11), False, True),
    "half-pixel-down": ((9, 7), (4, 3), False, True),
}


@pytest.mark.parametrize("case", RESIZES.values(), ids=RESIZES.keys())
def test_resize_nearest_matches_tflite_micro(case: tuple) -> None:
    assert assert_matches_oracle(resize(*case), calls_for(resize(*case))) == "tflite-micro"


@pytest.mark.parametrize(
    ("op", "in_shape", "out_shape", "bs"),
    [
        ("DEPTH_TO_SPACE", (1, 3, 2, 12), (1, 6, 4, 3), 2),
        ("DEPTH_TO_SPACE", (2, 2, 2, 18), (2, 6, 6, 2), 3),
        ("SPACE_TO_DEPTH", (1, 6, 4, 3), (1, 3, 2, 12), 2),
        ("SPACE_TO_DEPTH", (2, 6, 6, 2), (2, 2, 2, 18), 3),
    ],
)
def test_depth_space_match_tflite_micro(op: str, in_shape, out_shape, bs: int) -> None:
    model = block_op(op, in_shape, out_shape, bs)
    assert assert_matches_oracle(model, calls_for(model)) == "tflite-micro"


GATHERS = {
    "axis0-const": (0, np.array([3, 0, 3]), (3, 5, 6)),
    "axis1-const-2d": (1, np.array([[4, 1], [0, 0]]), (4, 2, 2, 6)),
    "axis-last-const": (-1, np.array([5, 2, 2, 0]), (4, 5, 4)),
}


@pytest.mark.parametrize("case", GATHERS.values(), ids=GATHERS.keys())
def test_gather_matches_tflite_micro(case: tuple) -> None:
    model = gather(*case)
    assert assert_matches_oracle(model, calls_for(model)) == "tflite-micro"


def test_gather_with_run_time_indices() -> None:
    model = gather(1, None, (4, 3, 6))
    x = np.arange(120, dtype=np.int64).reshape(4, 5, 6).astype(np.int8)
    calls = [[x, np.array([4, 0, 2], np.int32)], [x, np.array([1, 1, 3], np.int32)]]
    assert assert_matches_oracle(model, calls) == "tflite-micro"
    with pytest.raises(AutotuneError, match=r"op 0 \(GATHER\).*outside 0..4"):
        Interpreter(parse_model(model)).invoke([x, np.array([0, 5, 1], np.int32)])


def test_bad_block_size_and_indices_are_refused() -> None:
    with pytest.raises(UnsupportedOpError, match="not a multiple"):
        Interpreter(parse_model(block_op("DEPTH_TO_SPACE", (1, 2, 2, 6), (1, 4, 4, 1), 2)))
    with pytest.raises(UnsupportedOpError, match=r"outside 0\.\.3"):
        Interpreter(parse_model(gather(0, np.array([0, 4, 1]), (3, 5, 6))))


def small_graph() -> bytes:
    """SPACE_TO_DEPTH -> GATHER (channels) -> DEPTH_TO_SPACE -> RESIZE_NEAREST x2."""
    b = ModelBuilder()
    x = b.tensor("x", (1, 4, 4, 2), "int8", 0.1, 4)
    s2d = b.tensor("s2d", (1, 2, 2, 8), "int8", 0.1, 4)
    g = b.tensor("g", (1, 2, 2, 4), "int8", 0.1, 4)
    d2s = b.tensor("d2s", (1, 4, 4, 1), "int8", 0.1, 4)
    y = b.tensor("y", (1, 8, 8, 1), "int8", 0.1, 4)
    b.op("SPACE_TO_DEPTH", [x], [s2d], block_size=2)
    idx = b.constant("idx", np.array([7, 0, 5, 2], np.int32))
    b.op("GATHER", [s2d, idx], [g], axis=3)
    b.op("DEPTH_TO_SPACE", [g], [d2s], block_size=2)
    size = b.constant("size", np.array([8, 8], np.int32))
    b.op("RESIZE_NEAREST_NEIGHBOR", [d2s, size], [y])
    b.inputs(x)
    b.outputs(y)
    return b.build()


def test_small_graph_matches_tflite_micro() -> None:
    model = small_graph()
    assert assert_matches_oracle(model, calls_for(model)) == "tflite-micro"


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(lambda: resize(*RESIZES["half-pixel"]), id="resize"),
        pytest.param(lambda: gather(*GATHERS["axis1-const-2d"]), id="gather"),
        pytest.param(small_graph, id="graph"),
    ],
)
def test_c_matches_the_reference_on_host_and_cortex_m4(model, tmp_path: Path) -> None:
    built = model()
    check_on_host(built, tmp_path / "host")
    check_on_target(built, "cortex-m4", tmp_path / "m4")
