"""Kernels that compute in place: the output written over the input, laid out as the
planner lays them out (planner.inplace_shift), bit-exact with the reference.

Every point of the in-place spaces runs on the host with one buffer for input and
output (one gcc call per case); the DSP points run in the emulator through the
measurement harness, which measures and checks an in-place variant over its input.
"""

from __future__ import annotations

import ctypes
import shutil
from pathlib import Path

import numpy as np
import pytest

from autotune.kernels.conv2d import TEMPLATES as CONV_TEMPLATES
from autotune.kernels.depthwise_inplace import TEMPLATES as DW_TEMPLATES
from autotune.model.tflite_import import parse_model
from autotune.platform import plugins
from autotune.reference.executor import Interpreter
from autotune.tune.spec import KernelSpec, build_spec
from autotune.tune.template import KernelTemplate
from autotune.tune.variant import CheckSet, Evaluator
from tests.kernels.hostc import HOST, compile_host_library
from tests.kernels.test_conv_templates import conv_model
from tests.kernels.test_depthwise_templates import depthwise_model

POINTWISE = next(t for t in CONV_TEMPLATES if t.name == "conv2d_pointwise")
RING = next(t for t in CONV_TEMPLATES if t.name == "conv2d_ring")
DEPTHWISE = DW_TEMPLATES[0]

# (ih, iw, ic, oc, kh, kw, stride, padding, dilation, activation, per_channel)
POINTWISE_CASES = {
    "shrink-odd-width": (3, 5, 12, 8, 1, 1, 1, "VALID", 1, "NONE", True),
    "expand": (4, 3, 8, 20, 1, 1, 1, "VALID", 1, "RELU6", True),
    "same-width-k-not-4": (2, 7, 6, 6, 1, 1, 1, "VALID", 1, "RELU", False),
    # Strided: output pixel (i, j) reads input pixel (2i, 2j), ahead of the output.
    "stride2-double": (8, 6, 8, 16, 1, 1, 2, "VALID", 1, "NONE", True),
    "stride2-wide-odd": (5, 4, 4, 24, 1, 1, 2, "SAME", 1, "RELU", True),
}
RING_CASES = {
    "3x3-same": (6, 5, 8, 8, 3, 3, 1, "SAME", 1, "RELU", True),
    "3x3-expand": (5, 4, 4, 12, 3, 3, 1, "SAME", 1, "NONE", True),
    "5x3-shrink-per-tensor": (7, 6, 12, 4, 5, 3, 1, "SAME", 1, "RELU6", False),
}
DEPTHWISE_CASES = {
    "3x3-same": dict(in_shape=(1, 7, 9, 8), kernel=(3, 3)),
    "3x3-stride2-valid-relu6": dict(
        in_shape=(1, 9, 8, 4), kernel=(3, 3), stride=2, padding="VALID", activation="RELU6"
    ),
    "3x3-stride2-same-batch2": dict(in_shape=(2, 8, 7, 4), kernel=(3, 3), stride=2),
    "dilated-per-tensor": dict(in_shape=(1, 6, 5, 6), kernel=(3, 3), dilation=2, per_channel=False),
    "10x4-kws": dict(in_shape=(1, 25, 5, 4), kernel=(3, 3)),
}


def pointwise_case(name: str) -> tuple[object, KernelSpec]:
    shape = POINTWISE_CASES.get(name) or RING_CASES[name]
    graph = parse_model(conv_model(shape, seed=len(name)))
    spec = build_spec(graph, graph.layers[0])
    assert spec is not None
    return graph, spec


def depthwise_case(name: str) -> tuple[object, KernelSpec]:
    graph = parse_model(depthwise_model(**DEPTHWISE_CASES[name], seed=len(name)))
    spec = build_spec(graph, graph.layers[0])
    assert spec is not None
    return graph, spec


def choices(template: KernelTemplate, spec: KernelSpec) -> dict[str, tuple]:
    return {p.name: p.choices for p in template.space(spec, HOST).params}


def in_place_points(template: KernelTemplate, spec: KernelSpec) -> list[dict]:
    points = [p for p in template.space(spec, HOST).points() if template.in_place(spec, HOST, p)]
    # One optimisation level is enough on the host (the C is the same); 24 points spread
    # over the rest still cover each blocking, unroll and requantization.
    points = [p for p in points if p["opt"] == "-O2"]
    return points[:: max(1, len(points) // 24)]


def run_in_place(
    lib: ctypes.CDLL, fn: str, spec: KernelSpec, scratch: int, x: np.ndarray, shift: int
) -> np.ndarray:
    """Call fn with the input `shift` bytes into the output's buffer (the planner puts it
    there, or further)."""
    buf = np.full(max(spec.output_size, shift + x.size), 0x55, np.int8)
    buf[shift : shift + x.size] = x.reshape(-1)
    pad = np.zeros(max(4, scratch), np.int8)
    ptr = buf.ctypes.data
    getattr(lib, fn)(
        ctypes.c_void_p(ptr + shift), ctypes.c_void_p(ptr), pad.ctypes.data_as(ctypes.c_void_p)
    )
    return buf[: spec.output_size].copy()


def assert_in_place_bit_exact(template: KernelTemplate, graph, spec, work: Path) -> int:
    points = in_place_points(template, spec)
    assert points, f"{template.name} offers no in-place point here"
    rendered = [template.render(spec, HOST, p, f"k{i}") for i, p in enumerate(points)]
    lib = compile_host_library(rendered, work, template.name, opt="-O2")
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, graph.input_tensors[0].shape).astype(np.int8)
    want = Interpreter(graph).invoke([x])[0].reshape(-1)
    assert np.count_nonzero((want > -128) & (want < 127)) > want.size // 4
    for r in rendered:
        got = run_in_place(lib, r.function, spec, r.scratch_bytes, x, r.in_place_shift)
        assert np.array_equal(got, want), (r.params, int((got != want).sum()))
    return len(rendered)


@pytest.mark.parametrize("case", sorted(POINTWISE_CASES))
def test_pointwise_in_place_is_bit_exact(case: str, tmp_path: Path) -> None:
    graph, spec = pointwise_case(case)
    assert assert_in_place_bit_exact(POINTWISE, graph, spec, tmp_path) >= 4


@pytest.mark.parametrize("case", sorted(RING_CASES))
def test_ring_in_place_is_bit_exact(case: str, tmp_path: Path) -> None:
    graph, spec = pointwise_case(case)
    assert RING.applies(spec, HOST)
    assert assert_in_place_bit_exact(RING, graph, spec, tmp_path) >= 4


@pytest.mark.parametrize("case", sorted(DEPTHWISE_CASES))
def test_depthwise_in_place_is_bit_exact(case: str, tmp_path: Path) -> None:
    graph, spec = depthwise_case(case)
    assert assert_in_place_bit_exact(DEPTHWISE, graph, spec, tmp_path) >= 2


def test_strided_pointwise_needs_exactly_its_shift(tmp_path: Path) -> None:
    """A 1x1 stride 2 doubling the channels reads ahead of its output (shift 0); a much
    wider one writes past input pixels not read yet unless the input starts 48 bytes
    after the output (output pixel (2, 1) ends at 5 x 24, its input (4, 2) starts at
    18 x 4): 16 bytes less corrupts the result."""
    graph, spec = pointwise_case("stride2-double")
    point = {**POINTWISE.space(spec, HOST).baseline(), "inplace": True}
    assert POINTWISE.in_place_shift(spec, HOST, point) == 0
    graph, spec = pointwise_case("stride2-wide-odd")
    assert POINTWISE.in_place_shift(spec, HOST, point) == 48
    rendered = POINTWISE.render(spec, HOST, point, "k0")
    lib = compile_host_library([rendered], tmp_path, "shift", opt="-O2")
    x = np.random.default_rng(7).integers(-128, 128, graph.input_tensors[0].shape)
    x = x.astype(np.int8)
    want = Interpreter(graph).invoke([x])[0].reshape(-1)
    got = run_in_place(lib, "k0", spec, rendered.scratch_bytes, x, 48)
    assert np.array_equal(got, want)
    short = run_in_place(lib, "k0", spec, rendered.scratch_bytes, x, 32)
    assert not np.array_equal(short, want)


def test_in_place_is_offered_only_where_the_access_pattern_allows() -> None:
    strided = parse_model(conv_model((6, 6, 8, 8, 1, 1, 2, "VALID", 1, "NONE", True), seed=1))
    spec = build_spec(strided, strided.layers[0])
    assert spec is not None
    assert choices(POINTWISE, spec)["inplace"] == (False, True)
    assert choices(RING, spec)["inplace"] == (False,)
    multiplier = parse_model(depthwise_model((1, 5, 5, 3), (3, 3), multiplier=2))
    spec = build_spec(multiplier, multiplier.layers[0])
    assert spec is not None and not DEPTHWISE.applies(spec, HOST)
    _, spec = pointwise_case("expand")
    assert choices(POINTWISE, spec)["inplace"] == (False, True)
    point = {**POINTWISE.space(spec, HOST).baseline(), "inplace": True}
    rendered = POINTWISE.render(spec, HOST, point, "k")
    assert rendered.in_place and "restrict input" not in rendered.source
    assert rendered.scratch_bytes == spec.dims["in_c"]  # one pixel's inputs


def test_dsp_in_place_variants_are_checked_over_their_input_in_the_emulator(
    tmp_path: Path,
) -> None:
    runner = plugins.get_runner("unicorn")
    reason = runner.available()
    if reason:
        pytest.skip(reason)
    target = plugins.get_target("cortex-m4")
    if shutil.which(target.toolchain.cc) is None:
        pytest.skip(f"{target.toolchain.cc} not installed")
    graph, spec = pointwise_case("expand")
    checks = CheckSet.for_layer(graph, 0, seed=4)
    evaluator = Evaluator(spec, target, checks, tmp_path / "pw", runner)
    widened = {
        **POINTWISE.space(spec, target).baseline(),
        "block_px": 2,
        "block_oc": 2,
        "simd": "dsp",
        "fold": True,
        "wbytes": 1,
        "widen": True,
        "asm": True,
        "inplace": True,
    }
    for point in (widened, {**widened, "asm": False, "widen": False, "block_oc": 4}):
        m = evaluator.evaluate(POINTWISE, point)
        assert m.ok, (point, m.status, m.reason)
    graph, spec = pointwise_case("stride2-wide-odd")  # the input 48 bytes into the output
    evaluator = Evaluator(
        spec, target, CheckSet.for_layer(graph, 0, seed=4), tmp_path / "pw2", runner
    )
    for point in (widened, {**widened, "asm": False, "widen": False}):
        m = evaluator.evaluate(POINTWISE, point)
        assert m.ok, (point, m.status, m.reason)
    graph, spec = pointwise_case("3x3-expand")
    evaluator = Evaluator(
        spec, target, CheckSet.for_layer(graph, 0, seed=4), tmp_path / "ring", runner
    )
    for point in RING.suggestions(spec, target)[:2]:
        m = evaluator.evaluate(RING, point)
        assert m.ok, (point, m.status, m.reason)
    graph, spec = depthwise_case("3x3-stride2-same-batch2")
    evaluator = Evaluator(
        spec, target, CheckSet.for_layer(graph, 0, seed=4), tmp_path / "dw", runner
    )
    for point in DEPTHWISE.suggestions(spec, target):
        m = evaluator.evaluate(DEPTHWISE, point)
        assert m.ok, (point, m.status, m.reason)
