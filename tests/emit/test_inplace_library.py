"""Libraries whose layers compute in place: the planner overlaps a layer's output with
its input only where the input is not read later, and the whole library stays
bit-exact with the reference on the simulator; real models' arenas against TFLM's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.emit.deploy import deploy
from autotune.emit.library import Choice, baseline_choices, emit_library, small_choices
from autotune.model.tflite_import import load_model, parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins, toolchain
from tests.conftest import shared_model


def need(target_name: str):
    target = plugins.get_target(target_name)
    if not toolchain.toolchain_available(target):
        pytest.skip(f"no toolchain for {target_name}")
    return target


def block_model() -> bytes:
    """conv 3x3 -> t1; 1x1 8->16 -> t2; depthwise 3x3 -> t3; 1x1 16->8 -> t4; t4 + t1.

    t1 is read again by the ADD, so the first 1x1 cannot write over it; the depthwise
    and the second 1x1 can."""
    rng = np.random.default_rng(5)
    b = ModelBuilder()

    def act(name: str, shape: tuple, scale: float) -> int:
        return b.tensor(name, shape, "int8", scale, int(rng.integers(-10, 10)))

    def conv(x: int, y: int, op: str, k: int, ic: int, oc: int) -> None:
        wshape = (1, k, k, oc) if op == "DEPTHWISE_CONV_2D" else (oc, k, k, ic)
        axis = 3 if op == "DEPTHWISE_CONV_2D" else 0
        ws = rng.uniform(0.002, 0.02, oc)
        w = b.constant(f"w{y}", rng.integers(-127, 128, wshape).astype(np.int8), ws, 0, axis=axis)
        bias = b.constant(
            f"b{y}", rng.integers(-2000, 2000, oc).astype(np.int32), 0.05 * ws.astype(np.float32)
        )
        opts = {"depth_multiplier": 1} if op == "DEPTHWISE_CONV_2D" else {}
        b.op(op, [x, w, bias], [y], padding="SAME", stride_h=1, stride_w=1, **opts)

    x = act("x", (1, 6, 5, 8), 0.05)
    t1 = act("t1", (1, 6, 5, 8), 0.4)
    t2 = act("t2", (1, 6, 5, 16), 0.3)
    t3 = act("t3", (1, 6, 5, 16), 0.2)
    t4 = act("t4", (1, 6, 5, 8), 0.3)
    y = act("y", (1, 6, 5, 8), 0.5)
    conv(x, t1, "CONV_2D", 3, 8, 8)
    conv(t1, t2, "CONV_2D", 1, 8, 16)
    conv(t2, t3, "DEPTHWISE_CONV_2D", 3, 16, 16)
    conv(t3, t4, "CONV_2D", 1, 16, 8)
    b.op("ADD", [t4, t1], [y])
    b.inputs(x)
    b.outputs(y)
    return b.build()


def in_place_choices(graph, target) -> dict[int, Choice]:
    choices = small_choices(graph, target)
    for index in (1, 2, 3):
        assert choices[index].template in ("conv2d_pointwise", "depthwise_inplace")
    return choices


def test_in_place_where_the_data_flow_allows_and_bit_exact(tmp_path: Path) -> None:
    target = need("cortex-m4")
    graph = parse_model(block_model())
    choices = in_place_choices(graph, target)
    lib = emit_library(graph, target, tmp_path / "plan", choices)
    over = sorted(n.split(":")[0] for n in lib.plan.notes if "computed over" in n)
    assert over == ["layer 2 (DEPTHWISE_CONV_2D)", "layer 3 (CONV_2D)"]
    p = lib.plan.offsets
    assert p[3] - p[2] >= 0 and p[4] - p[3] < 240  # t3 over t2, t4 (240 B) over t3
    assert not (p[1] < p[2] + 480 and p[2] < p[1] + 240)  # t1 is read later: no overlap
    base = emit_library(graph, target, tmp_path / "base", baseline_choices(graph, target))
    assert lib.plan.arena_bytes < base.plan.arena_bytes
    # Bit-exact on the simulator: deploy compares every call with the reference.
    result = deploy(graph, target, tmp_path / "lib", choices, checks=3)
    assert result.verified_calls >= 3


@pytest.mark.parametrize(
    ("name", "ratio"), [("kws_ref_model.tflite", 0.5), ("lstm_weather_24x7_u32.tflite", 1.0)]
)
def test_real_model_arena_against_tflite_micro(name: str, ratio: float, tmp_path: Path) -> None:
    """Arena + state at most ratio x tflite-micro's whole arena, bit-exact."""
    target = need("cortex-m4")
    graph = load_model(shared_model(name))
    result = deploy(graph, target, tmp_path, small_choices(graph, target), checks=1)
    assert result.verified_calls >= 1 and result.tflm_arena is not None
    ours = result.ram["arena"] + result.ram["state"]
    assert ours == result.arena_bytes + result.library.state_bytes
    assert ours <= ratio * result.tflm_arena["total"], (ours, result.tflm_arena)
