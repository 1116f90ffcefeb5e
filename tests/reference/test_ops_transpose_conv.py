"""TRANSPOSE_CONV int8 (per-channel weights) against tflite-micro: strides, SAME and
VALID padding, with and without bias and activation; its C on the host and on cortex-m4
against the reference; and the int16 SEANet file still refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.errors import UnsupportedOpError
from autotune.model.tflite_import import load_model, parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.reference.executor import Interpreter, run_model
from tests.conftest import assert_matches_oracle, extreme_inputs, seeded_inputs, shared_model
from tests.emit.test_emit_shape_ops import check_on_host, check_on_target


def out_extent(padding: str, size: int, k: int, s: int) -> int:
    return size * s if padding == "SAME" else (size - 1) * s + k


def tconv(in_hw, k, stride, padding="SAME", bias=True, act="NONE", in_c=3, out_c=4) -> bytes:
    rng = np.random.default_rng(6)
    b = ModelBuilder()
    x = b.tensor("x", (1, *in_hw, in_c), "int8", 0.05, -4)
    w = rng.integers(-127, 128, (out_c, *k, in_c)).astype(np.int8)
    wt = b.constant("w", w, list(rng.uniform(0.005, 0.02, out_c)), [0] * out_c, axis=0)
    oh = out_extent(padding, in_hw[0], k[0], stride[0])
    ow = out_extent(padding, in_hw[1], k[1], stride[1])
    shape = b.constant("shape", np.array([1, oh, ow, out_c], np.int32))
    y = b.tensor("y", (1, oh, ow, out_c), "int8", 0.12, 3)
    ins = [shape, wt, x]
    if bias:
        ins.append(b.constant("bias", rng.integers(-800, 800, out_c).astype(np.int32)))
    b.op(
        "TRANSPOSE_CONV", ins, [y], padding=padding, stride_h=stride[0], stride_w=stride[1],
        fused_activation_function=act,
    )  # fmt: skip
    b.inputs(x)
    b.outputs(y)
    return b.build()


CASES = {
    "s2-same": ((3, 4), (3, 3), (2, 2), "SAME", True, "NONE"),
    "s2-valid": ((3, 4), (3, 3), (2, 2), "VALID", True, "NONE"),
    "s1-same-nobias": ((4, 4), (3, 3), (1, 1), "SAME", False, "NONE"),
    "s3x2-even-kernel": ((3, 3), (4, 2), (3, 2), "SAME", True, "RELU"),
    "kernel-1x1": ((5, 2), (1, 1), (2, 2), "VALID", True, "RELU6"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_matches_tflite_micro(case: tuple) -> None:
    model = tconv(*case)
    graph = parse_model(model)
    calls = [seeded_inputs(graph, s) for s in (1, 2)]
    calls += [extreme_inputs(graph, "min"), extreme_inputs(graph, "max")]
    assert assert_matches_oracle(model, calls) == "tflite-micro"
    assert np.unique(run_model(graph, calls[0])[0]).size > 5


@pytest.mark.parametrize("name", ["s2-same", "s3x2-even-kernel"])
def test_c_matches_the_reference_on_host_and_cortex_m4(name: str, tmp_path: Path) -> None:
    model = tconv(*CASES[name])
    check_on_host(model, tmp_path / "host")
    check_on_target(model, "cortex-m4", tmp_path / "m4")


def test_int16_seanet_transpose_conv_is_refused_by_name() -> None:
    graph = load_model(shared_model("seanet_transpose_conv0_int16x8.tflite"))
    with pytest.raises(UnsupportedOpError, match=r"op 0 \(TRANSPOSE_CONV\).*int16"):
        Interpreter(graph)
