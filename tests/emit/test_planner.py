"""The arena planner: lifetimes, aliasing, in-place reuse, and no live overlaps."""

from __future__ import annotations

import numpy as np
import pytest

from autotune.emit.layer_code import LayerCode, layer_io
from autotune.emit.library import Choice, layer_code
from autotune.emit.planner import ALIGN, Buffer, Plan, check_plan, plan_memory
from autotune.model.graph import Graph, Layer, Tensor
from autotune.model.tflite_import import load_model, parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins
from autotune.reference.oracle import tflm_arena
from autotune.tune.spec import build_spec
from tests.conftest import shared_model


def chain(sizes: list[int]) -> Graph:
    """t0 -> op0 -> t1 -> op1 -> ... with the given tensor sizes (bytes)."""
    tensors = [Tensor(i, f"t{i}", (n,), "int8") for i, n in enumerate(sizes)]
    layers = [Layer(i, "ADD", (i,), (i + 1,)) for i in range(len(sizes) - 1)]
    return Graph(tensors, layers, [0], [len(sizes) - 1])


def codes_for(
    graph: Graph, inplace: bool = False, alias_ops: tuple[str, ...] = ("RESHAPE",)
) -> list[LayerCode]:
    out = []
    for layer in graph.layers:
        ins, outs, state = layer_io(graph, layer)
        code = LayerCode("f", "", ins[:1] if layer.op in alias_ops else ins, outs, state)
        code.alias = layer.op in alias_ops
        if inplace:
            code.inplace = [(ins[0], outs[0])]
        out.append(code)
    return out


def test_ping_pong_reuses_memory() -> None:
    g = chain([100, 200, 300, 200, 100])
    plan = plan_memory(g, codes_for(g))
    # t1..t3 are planned (t0 and t4 are the caller's); t1 and t3 never live together.
    assert set(plan.offsets) == {1, 2, 3}
    assert plan.arena_bytes == 208 + 304  # aligned sizes of the two largest live together
    assert check_plan(plan) == []
    assert plan.external == {0: ("input", 0), 4: ("output", 0)}


def test_inplace_merges_buffers() -> None:
    g = chain([64, 64, 64, 64])
    plan = plan_memory(g, codes_for(g, inplace=True))
    assert plan.offsets[1] == plan.offsets[2]
    assert plan.arena_bytes == 64


def test_reshape_aliases_and_outputs_go_to_the_caller() -> None:
    g = chain([32, 48, 48, 16])
    g.layers[1].op = "RESHAPE"
    plan = plan_memory(g, codes_for(g))
    assert plan.offsets[1] == plan.offsets[2]
    g2 = chain([32, 48, 48])
    g2.layers[1].op = "RESHAPE"
    plan2 = plan_memory(g2, codes_for(g2))
    # The reshape makes the model output: its producer writes into the caller's buffer.
    assert plan2.external[1] == ("output", 0) and plan2.arena_bytes == 0


def test_scratch_lives_one_layer() -> None:
    g = chain([10, 20, 30])
    codes = codes_for(g)
    codes[0].scratch_bytes = 100
    codes[1].scratch_bytes = 50
    plan = plan_memory(g, codes)
    assert set(plan.scratch) == {0, 1}
    assert check_plan(plan) == []


def test_check_plan_finds_overlaps() -> None:
    a = Buffer("a", 32, 0, 2, [1], offset=0)
    b = Buffer("b", 32, 1, 3, [2], offset=16)
    assert check_plan(Plan([a, b], 48, {}, {}, {}, {})) == ["a and b overlap"]
    assert ALIGN == 16


@pytest.mark.parametrize(
    "name",
    [
        "kws_ref_model.tflite",
        "vww_96_int8.tflite",
        "pretrainedResnet_quant.tflite",
        "ad01_int8.tflite",
        "trained_lstm_int8.tflite",
    ],
)
def test_real_models_fit_in_no_more_than_tflm(name: str) -> None:
    path = shared_model(name)
    g = load_model(path)
    plan = plan_memory(g, codes_for(g))
    assert check_plan(plan) == []
    tflm = tflm_arena(str(path))
    assert tflm is not None
    io = sum(g.tensors[t].nbytes for t in (*g.inputs, *g.outputs))
    # TFLM's planned tensors include the model's input and output; ours leave them to the caller.
    assert plan.arena_bytes + io <= tflm["total"]
    assert plan.arena_bytes <= tflm["head"]


def test_in_place_output_overlaps_its_input_as_far_as_the_kernel_allows() -> None:
    g = chain([64, 64, 128, 64])  # layer 1 widens 64 -> 128 bytes in place
    plan = plan_memory(g, codes_for(g, inplace=True))
    assert check_plan(plan) == []
    # The input starts at least 64 bytes after the wider output: no output unit lands
    # on input not read yet; both fit in the output's 128 bytes.
    assert plan.offsets[1] - plan.offsets[2] >= 64
    assert plan.arena_bytes == 128
    rule = next(r for r in plan.inplace if r.layer == 1)
    assert rule.allows(64, 0) and rule.allows(128, 0)
    assert not rule.allows(48, 0) and not rule.allows(0, 0)


def test_in_place_step_keeps_whole_pixels_between_input_and_output() -> None:
    g = chain([96, 96, 96, 96])
    codes = codes_for(g, inplace=True)
    for code in codes:
        code.inplace_step = 48  # e.g. a depthwise kernel's 48 channels
    plan = plan_memory(g, codes)
    assert check_plan(plan) == []
    assert all(r.step == 48 for r in plan.inplace)  # lcm(ALIGN, 48)
    assert (plan.offsets[1] - plan.offsets[2]) % 48 == 0
    bad = Plan(
        [Buffer("t1", 96, 0, 1, [1], offset=16), Buffer("t2", 96, 1, 2, [2], offset=0)],
        112,
        {},
        {},
        {},
        {},
        inplace=plan.inplace[:1],
    )
    assert check_plan(bad) == ["t1 and t2 overlap"]


def test_in_place_is_refused_where_the_input_is_read_later() -> None:
    # t1 -> layer 1 -> t2, and layer 2 reads t1 again (a skip connection).
    tensors = [Tensor(i, f"t{i}", (64,), "int8") for i in range(4)]
    layers = [
        Layer(0, "ADD", (0,), (1,)),
        Layer(1, "ADD", (1,), (2,)),
        Layer(2, "ADD", (2, 1), (3,)),
    ]
    g = Graph(tensors, layers, [0], [3])
    plan = plan_memory(g, codes_for(g, inplace=True))
    assert check_plan(plan) == []
    assert plan.inplace == []  # layer 2's output is the caller's, layer 1's input is read later
    assert plan.offsets[1] != plan.offsets[2] and plan.arena_bytes == 128
    # The same through a RESHAPE: t1's bytes are read later under another name.
    tensors = [Tensor(i, f"t{i}", (64,), "int8") for i in range(5)]
    layers = [
        Layer(0, "ADD", (0,), (1,)),
        Layer(1, "RESHAPE", (1,), (2,)),
        Layer(2, "ADD", (1,), (3,)),
        Layer(3, "ADD", (3, 2), (4,)),
    ]
    g = Graph(tensors, layers, [0], [4])
    plan = plan_memory(g, codes_for(g, inplace=True))
    assert check_plan(plan) == [] and plan.inplace == []
    assert plan.offsets[1] == plan.offsets[2] != plan.offsets[3]


def strided_chain(oc: int) -> Graph:
    """x -> 1x1 -> t1 (8x6x4) -> 1x1 stride 2 -> t2 (4x3xoc) -> 1x1 -> y."""
    rng = np.random.default_rng(oc)
    b = ModelBuilder()
    shapes = [(1, 8, 6, 4), (1, 8, 6, 4), (1, 4, 3, oc), (1, 4, 3, 4)]
    ts = [b.tensor(f"t{i}", s, "int8", 0.05, 0) for i, s in enumerate(shapes)]
    for i, stride in enumerate((1, 2, 1)):
        ic, n = shapes[i][3], shapes[i + 1][3]
        w = b.constant(f"w{i}", rng.integers(-127, 128, (n, 1, 1, ic)).astype(np.int8), 0.01, 0)
        bias = b.constant(f"b{i}", np.zeros(n, np.int32), np.full(n, 5e-4), 0)
        b.op(
            "CONV_2D",
            [ts[i], w, bias],
            [ts[i + 1]],
            padding="VALID",
            stride_h=stride,
            stride_w=stride,
        )
    b.inputs(ts[0])
    b.outputs(ts[3])
    return parse_model(b.build())


@pytest.mark.parametrize(("oc", "shift"), [(8, 0), (24, 112)])
def test_strided_pointwise_in_place_where_it_reads_ahead(oc: int, shift: int) -> None:
    """A 1x1 stride 2 layer reads input pixel (2i, 2j) for output pixel (i, j): doubling
    the channels its output may start with its input (it never catches up); a 6x wider
    output must start 112 bytes before it (pixel (3, 2) ends at 12 x 24, its input (6, 4)
    starts at 40 x 4), and the plan refuses anything closer."""
    graph = strided_chain(oc)
    target = plugins.get_target("cortex-m4")
    pointwise = plugins.get_kernel("conv2d_pointwise")
    spec = build_spec(graph, graph.layers[1])
    point = {**pointwise.space(spec, target).baseline(), "inplace": True}
    choices = {1: Choice(pointwise.name, point)}
    codes = [
        layer_code(graph, layer, target, choices.get(layer.index), render=False)
        for layer in graph.layers
    ]
    assert codes[1].inplace_shift == shift
    plan = plan_memory(graph, codes)
    assert check_plan(plan) == []
    t1, t2 = (next(b for b in plan.buffers if b.tensors == [t]) for t in (1, 2))
    assert any("computed over" in n for n in plan.notes)
    assert t1.offset - t2.offset >= shift and t1.offset < t2.offset + t2.size
    scratch = sum(b.size for b in plan.buffers if b.name.startswith("scratch"))
    assert plan.arena_bytes <= max(shift + t1.size, t2.size) + scratch
    rule = plan.inplace[0]
    assert rule.allows(shift, 0) and (shift == 0 or not rule.allows(shift - ALIGN, 0))
    if shift:
        t1.offset, t2.offset = shift - ALIGN, 0
        assert check_plan(plan) != []
