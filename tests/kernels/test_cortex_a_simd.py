"""The Cortex-A SIMD paths, compiled for the real cores and run bit-exact in the emulator.

- cortex-a7 runs A32 (`-marm`), where LDRD needs an even/odd register pair: the DSP
  variants that pair loads (depthwise streams, the LSTM's int16 weight pairs, the
  widened 1x1 assembly loop) must assemble there too.
- NEON (SMULL/SMLAL2/SADALP on the A53, VMULL/VMLAL/VPADAL on the A7): suggested
  points of the convolution, fully connected and LSTM templates.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from autotune.kernels import conv2d, depthwise, fully_connected, lstm
from autotune.model.tflite_import import parse_model
from autotune.platform import plugins
from autotune.tune.spec import build_spec
from autotune.tune.variant import CheckSet, Evaluator
from tests.kernels.test_conv_templates import conv_model
from tests.kernels.test_depthwise_templates import case_spec as depthwise_case
from tests.kernels.test_depthwise_templates import emulator_or_skip, quick_checks
from tests.kernels.test_fc_templates import fc_model
from tests.kernels.test_lstm_templates import case_spec as lstm_case
from tests.kernels.test_lstm_templates import dsp_points as lstm_dsp_points


def _target(name: str):
    target = plugins.get_target(name)
    if shutil.which(target.toolchain.cc) is None:
        pytest.skip(f"{target.toolchain.cc} not installed")
    return target


def test_dsp_variants_that_pair_loads_assemble_and_run_in_a32(tmp_path: Path) -> None:
    runner = emulator_or_skip()
    target = _target("cortex-a7")
    seen: set[str] = set()
    measured = 0

    def run(template, spec, checks, points, work: Path) -> None:
        nonlocal measured
        evaluator = Evaluator(spec, target, checks, work, runner)
        for point in points:
            source = template.render(spec, target, point, "k").source
            seen.update(m for m in ("AT_LDRD(", "AT_LSTM_LDRD(", '"ldr %[o0]') if m in source)
            m = evaluator.evaluate(template, point)
            assert m.ok, (template.name, point, m.status, m.reason)
            measured += 1

    graph, spec = depthwise_case("3x3-same-odd-6ch")
    for template in depthwise.TEMPLATES:
        if template.applies(spec, target):
            dsp = [p for p in template.suggestions(spec, target) if p.get("simd") == "dsp"]
            run(template, spec, quick_checks(graph), dsp[:3], tmp_path / template.name)
    graph, spec = lstm_case("u16-f20-s6-clip")
    run(lstm.TEMPLATES[0], spec, quick_checks(graph), lstm_dsp_points(spec, target), tmp_path / "l")
    graph = parse_model(conv_model((4, 4, 16, 6, 1, 1, 1, "VALID", 1, "RELU", True), seed=3))
    spec = build_spec(graph, graph.layers[0])
    pointwise = next(t for t in conv2d.TEMPLATES if t.name == "conv2d_pointwise")
    asm = [p for p in pointwise.suggestions(spec, target) if p["asm"]]
    run(pointwise, spec, CheckSet.for_layer(graph, 0), asm[:1], tmp_path / "pw")
    # Each pattern that needed an even/odd pair was compiled, not skipped.
    assert seen == {"AT_LDRD(", "AT_LSTM_LDRD(", '"ldr %[o0]'}, seen
    assert measured >= 5


CONV_SHAPES = [  # K = patch length: 27 (a tail of 11), 32, 1x8x4 = 32 (Conv1D rows)
    (7, 6, 3, 5, 3, 3, 1, "SAME", 1, "RELU", True),
    (4, 4, 32, 6, 1, 1, 1, "VALID", 1, "NONE", True),
    (1, 40, 4, 7, 1, 8, 1, "VALID", 1, "RELU6", False),
]


@pytest.mark.parametrize("target_name", ["cortex-a53", "cortex-a7"])
def test_neon_points_are_bit_exact(target_name: str, tmp_path: Path) -> None:
    runner = emulator_or_skip()
    target = _target(target_name)
    measured = 0
    for n, shape in enumerate(CONV_SHAPES):
        graph = parse_model(conv_model(shape, seed=5))
        spec = build_spec(graph, graph.layers[0])
        evaluator = Evaluator(
            spec, target, CheckSet.for_layer(graph, 0), tmp_path / f"c{n}", runner
        )
        template = conv2d.TEMPLATES[0] if n == 0 else conv2d.TEMPLATES[n]
        neon = [p for p in template.suggestions(spec, target) if p["simd"] == "neon"]
        assert neon, (template.name, shape)
        for point in neon[:2]:
            assert "vpadalq_s16" in template.render(spec, target, point, "k").source
            m = evaluator.evaluate(template, point)
            assert m.ok, (template.name, point, m.status, m.reason)
            measured += 1
    graph = parse_model(fc_model((2, 40), 7, per_channel=True, seed=4))
    spec = build_spec(graph, graph.layers[0])
    template = fully_connected.TEMPLATES[0]
    evaluator = Evaluator(spec, target, CheckSet.for_layer(graph, 0), tmp_path / "fc", runner)
    neon = [p for p in template.suggestions(spec, target) if p["simd"] == "neon"]
    assert neon
    for point in neon[:2]:
        m = evaluator.evaluate(template, point)
        assert m.ok, (template.name, point, m.status, m.reason)
        measured += 1
    graph, spec = lstm_case("u16-f20-s6-clip")  # K = 20 (a tail of 4) and 16
    template = lstm.TEMPLATES[0]
    evaluator = Evaluator(spec, target, quick_checks(graph), tmp_path / "lstm", runner)
    neon = [p for p in template.suggestions(spec, target) if p["simd"] == "neon"]
    for point in [neon[0], neon[-1]]:
        assert "vpadalq_s16" in template.render(spec, target, point, "k").source
        m = evaluator.evaluate(template, point)
        assert m.ok, (template.name, point, m.status, m.reason)
        measured += 1
    assert measured >= 10


def test_neon_pairs_products_only_where_int16_lanes_hold_them() -> None:
    rows = np.array([[127, -127, 5], [1, 2, 3]])
    assert conv2d.neon_pairs_exact(rows)
    assert not conv2d.neon_pairs_exact(np.array([[-128, 0, 1]]))
    # One weight row of K = 20: a group of 16, then a tail of 4 per row.
    w = np.arange(2 * 20).reshape(2, 20)
    packed = conv2d.dsp_bytes(w, 2, 16)
    assert packed[:16].tolist() == list(range(16)) and packed[16:32].tolist() == list(range(20, 36))
