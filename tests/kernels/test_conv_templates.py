"""CONV_2D templates: random points of every space are bit-exact with the reference."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from autotune.kernels.conv2d import TEMPLATES, dsp_weights, interleave_rows
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.reference.executor import Interpreter
from autotune.tune.spec import build_spec
from tests.kernels.hostc import HOST, run_on_host

# (in_h, in_w, in_c, out_c, k_h, k_w, stride, padding, dilation, activation, per_channel)
SHAPES = [
    (7, 6, 3, 5, 3, 3, 1, "SAME", 1, "RELU", True),
    (9, 9, 8, 6, 1, 1, 1, "VALID", 1, "NONE", True),
    (6, 5, 4, 4, 1, 1, 2, "VALID", 1, "RELU6", False),
    (1, 24, 2, 6, 1, 7, 2, "SAME", 1, "NONE", True),
    (1, 30, 3, 4, 1, 9, 1, "VALID", 1, "RELU", True),
    (8, 7, 5, 3, 3, 2, 2, "SAME", 2, "RELU_N1_TO_1", True),
    (10, 4, 1, 8, 10, 4, 2, "SAME", 1, "RELU", True),
]


def conv_model(shape: tuple, seed: int) -> bytes:
    ih, iw, ic, oc, kh, kw, s, pad, dil, act, per_channel = shape
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    x = b.tensor("x", (1, ih, iw, ic), "int8", 0.05, int(rng.integers(-20, 20)))
    w_scale = rng.uniform(0.002, 0.02, oc) if per_channel else 0.01
    w = b.constant(
        "w", rng.integers(-127, 128, (oc, kh, kw, ic)).astype(np.int8), w_scale, 0, axis=0
    )
    bias = b.constant("b", rng.integers(-3000, 3000, oc).astype(np.int32), np.full(oc, 5e-4), 0)
    eff_h, eff_w = (kh - 1) * dil + 1, (kw - 1) * dil + 1
    oh = -(-ih // s) if pad == "SAME" else (ih - eff_h) // s + 1
    ow = -(-iw // s) if pad == "SAME" else (iw - eff_w) // s + 1
    y = b.tensor(
        "y", (1, oh, ow, oc), "int8", 0.03 * np.sqrt(kh * kw * ic), int(rng.integers(-10, 10))
    )
    b.op(
        "CONV_2D",
        [x, w, bias],
        [y],
        padding=pad,
        stride_h=s,
        stride_w=s,
        dilation_h_factor=dil,
        dilation_w_factor=dil,
        fused_activation_function=act,
    )
    b.inputs(x)
    b.outputs(y)
    return b.build()


@pytest.mark.parametrize("shape", SHAPES)
def test_random_points_match_reference_on_host(shape: tuple, tmp_path: Path) -> None:
    graph = parse_model(conv_model(shape, seed=len(SHAPES)))
    spec = build_spec(graph, graph.layers[0])
    assert spec is not None
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, graph.input_tensors[0].shape).astype(np.int8)
    want = Interpreter(graph).invoke([x])[0].reshape(-1)
    assert np.count_nonzero((want > -128) & (want < 127)) > 0, "test data saturates everywhere"
    checked = 0
    for template in TEMPLATES:
        if not template.applies(spec, HOST):
            continue
        points = list(template.space(spec, HOST).points())
        chosen = [
            template.space(spec, HOST).baseline(),
            *random.Random(2).sample(points, min(5, len(points))),
        ]
        for point in chosen:
            if template.space(spec, HOST).check(point):
                continue
            rendered = template.render(spec, HOST, point, "kern")
            got = run_on_host(rendered, [x], want.size, tmp_path)
            assert np.array_equal(got, want), (template.name, point)
            checked += 1
    assert checked >= 4


def test_applicability() -> None:
    names = {}
    for shape in SHAPES:
        spec = build_spec(*(lambda g: (g, g.layers[0]))(parse_model(conv_model(shape, 0))))
        names[shape] = {t.name for t in TEMPLATES if t.applies(spec, HOST)}
    assert names[SHAPES[1]] == {"conv2d_general", "conv2d_pointwise"}
    assert names[SHAPES[3]] == {"conv2d_general", "conv2d_1xn"}
    # Stride 1 keeping the image size: the in-place line-buffer (ring) variant too.
    assert names[SHAPES[0]] == {"conv2d_general", "conv2d_ring"}
    assert names[SHAPES[5]] == {"conv2d_general"}


def test_weight_layouts() -> None:
    rows = np.arange(5 * 6, dtype=np.int64).reshape(5, 6).astype(np.int8)
    inter = interleave_rows(rows, 2)
    # First block: rows 0 and 1 interleaved by k; then rows 2, 3; row 4 stays as it is.
    assert inter[:4].tolist() == [0, 6, 1, 7]
    assert inter[-6:].tolist() == rows[4].tolist()
    words, tail = dsp_weights(rows, 1)
    # Row 0, group 0: (k0, k2) then (k1, k3) as int16 pairs; K % 4 = 2 tail bytes per row.
    assert words[0] == (0 | (2 << 16)) and words[1] == (1 | (3 << 16))
    assert tail[:2].tolist() == [4, 5]


def test_space_rejects_impossible_points() -> None:
    graph = parse_model(conv_model(SHAPES[1], 0))
    spec = build_spec(graph, graph.layers[0])
    space = TEMPLATES[0].space(spec, HOST)
    assert space.check({**space.baseline(), "block_oc": 4}) is not None  # direct loop takes none
    assert space.check({**space.baseline(), "mode": "im2col", "unroll": 3}) is not None
    assert space.check(space.baseline()) is None


@pytest.mark.parametrize("target_name", ["cortex-m4", "cortex-m0", "rv32imc"])
def test_random_points_match_reference_on_targets(target_name: str, tmp_path: Path) -> None:
    """Points of every template, the DSP paths (int16 and int8 weights) included where the
    core has them, compiled for the target and run in the emulator on three inputs."""
    from autotune.platform import plugins, toolchain
    from autotune.tune.variant import CheckSet, Evaluator

    target = plugins.get_target(target_name)
    if not toolchain.toolchain_available(target):
        pytest.skip(f"no toolchain for {target_name}")
    runner = plugins.get_runner(target.runner)
    measured = simd_measured = 0
    for shape in (SHAPES[0], SHAPES[1], SHAPES[3]):
        graph = parse_model(conv_model(shape, seed=5))
        spec = build_spec(graph, graph.layers[0])
        checks = CheckSet.for_layer(graph, 0)
        evaluator = Evaluator(spec, target, checks, tmp_path / f"s{measured}", runner)
        for template in TEMPLATES:
            if not template.applies(spec, target):
                continue
            space = template.space(spec, target)
            points = [p for p in space.points() if p["opt"] == "-O2"]
            dsp = [p for p in points if p["simd"] == "dsp"]
            chosen = random.Random(measured).sample(points, min(2, len(points)))
            chosen += [p for wb in (1, 2) for p in dsp if p["wbytes"] == wb][:1]
            chosen += [p for p in dsp if p["wbytes"] == 1][-1:]
            for point in chosen:
                m = evaluator.evaluate(template, point)
                assert m.status == "ok", (template.name, point, m.reason)
                measured += 1
                simd_measured += point["simd"] == "dsp"
    assert measured >= 8
    assert (simd_measured >= 4) == target.has("dsp")


def test_widened_assembly_pointwise_is_bit_exact_on_cortex_m4(tmp_path: Path) -> None:
    """The compact fast 1x1 path: inputs widened once per pixel pair, int8 weights split
    in the assembly loop, the fused requantization; every suggested point of it, and odd
    output-channel counts (a 1-channel tail block), on three inputs in the emulator."""
    from autotune.platform import plugins, toolchain
    from autotune.tune.variant import CheckSet, Evaluator

    target = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(target):
        pytest.skip("no toolchain for cortex-m4")
    runner = plugins.get_runner(target.runner)
    pointwise = next(t for t in TEMPLATES if t.name == "conv2d_pointwise")
    seen = set()
    for shape in [
        (5, 5, 64, 9, 1, 1, 1, "VALID", 1, "RELU", True),
        (3, 5, 32, 6, 1, 1, 1, "VALID", 1, "NONE", False),
    ]:
        graph = parse_model(conv_model(shape, seed=11))
        spec = build_spec(graph, graph.layers[0])
        evaluator = Evaluator(spec, target, CheckSet.for_layer(graph, 0), tmp_path, runner)
        points = [p for p in pointwise.suggestions(spec, target) if p["widen"]]
        assert any(p["asm"] for p in points)
        for point in points:
            m = evaluator.evaluate(pointwise, point)
            assert m.status == "ok", (shape, point, m.reason)
            seen.add((point["asm"], point["requant"]))
    assert (True, "fast") in seen


def test_kws_pointwise_layers_take_at_most_1_3_instructions_per_mac(tmp_path: Path) -> None:
    """Issue 13's floor for KWS's four 1x1 layers on cortex-m4, in exact emulator
    instruction counts: the fastest suggested compact point (int8 weights, inputs widened
    once per pixel pair, the 2x2 assembly loop, pixel pairs running across row ends)."""
    from autotune.model.stats import layer_macs
    from autotune.model.tflite_import import load_model
    from autotune.platform import plugins, toolchain
    from autotune.tune.variant import CheckSet, Evaluator, model_activations
    from tests.conftest import shared_model

    graph = load_model(shared_model("kws_ref_model.tflite"))
    target = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(target):
        pytest.skip("no toolchain for cortex-m4")
    runner = plugins.get_runner(target.runner)
    pointwise = next(t for t in TEMPLATES if t.name == "conv2d_pointwise")
    activations = model_activations(graph)
    ratios = {}
    for layer in graph.layers:
        spec = build_spec(graph, layer) if layer.op == "CONV_2D" else None
        if spec is None or not pointwise.applies(spec, target):
            continue
        point = next(
            p
            for p in pointwise.suggestions(spec, target)
            if p["asm"] and p["unroll"] == 8 and p["requant"] == "fast"
        )
        checks = CheckSet.for_layer(graph, layer.index, 0, activations)
        evaluator = Evaluator(spec, target, checks, tmp_path / f"l{layer.index}", runner)
        m = evaluator.evaluate(pointwise, point)
        assert m.ok and m.instructions, m.reason
        ratios[layer.index] = m.instructions / layer_macs(graph, layer)
    print("instructions (exact) per MAC, KWS 1x1 layers on cortex-m4:", ratios)
    assert len(ratios) == 4
    assert max(ratios.values()) <= 1.3, ratios
