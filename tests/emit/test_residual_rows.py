"""Residual blocks computed row by row (emit/fuse.py): found only where the data flow
allows, the two convolutions' outputs gone from the arena, bit-exact on the host (gcc,
warnings as errors) and on cortex-m4 in the emulator; ResNet-8's least-RAM arena
against tflite-micro's."""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import numpy as np
import pytest

from autotune.emit import fuse
from autotune.emit.deploy import deploy
from autotune.emit.library import Choice, emit_library, library_codes, small_choices
from autotune.emit.planner import check_plan, plan_memory
from autotune.model.tflite_import import load_model, parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins
from autotune.reference.executor import Interpreter
from autotune.reference.oracle import tflm_arena
from autotune.tune.spec import build_spec
from autotune.tune.template import INCLUDE_DIR
from tests.conftest import shared_model
from tests.emit.test_inplace_library import need
from tests.kernels.hostc import HOST


def residual_model(
    extra_reader: bool = False, inner: bool = True, ka: int = 3, kb: int = 5, x_first: bool = True
) -> bytes:
    """x -> conv 3x3 -> x1 (8x8x4); x1 -> conv 3x3 (4 -> 6) -> t1 -> conv 5x3 (6 -> 4)
    -> t2; y = x1 + t2; y -> conv 1x1 -> out. With extra_reader, a MUL reads x1 too
    (y * x1 replaces y downstream): x1 must then stay whole. inner=False: the block
    alone, x1 the model's input and y its output (the caller's buffers). ka, kb: the
    convolutions' kernel heights; x_first=False: y = t2 + x1."""
    rng = np.random.default_rng(11)
    b = ModelBuilder()

    def act(name: str, c: int, scale: float) -> int:
        return b.tensor(name, (1, 8, 8, c), "int8", scale, int(rng.integers(-12, 12)))

    def conv(x: int, y: int, kh: int, kw: int, ic: int, oc: int, relu: bool = False) -> None:
        ws = rng.uniform(0.004, 0.03, oc)
        w = b.constant(
            f"w{y}", rng.integers(-127, 128, (oc, kh, kw, ic)).astype(np.int8), ws, 0, axis=0
        )
        bias = b.constant(
            f"b{y}", rng.integers(-800, 800, oc).astype(np.int32), 0.05 * ws.astype(np.float32)
        )
        b.op(
            "CONV_2D",
            [x, w, bias],
            [y],
            padding="SAME",
            stride_h=1,
            stride_w=1,
            fused_activation_function="RELU" if relu else "NONE",
        )

    x = act("x", 4, 0.05)
    x1 = act("x1", 4, 0.3) if inner else x
    t1 = act("t1", 6, 0.25)
    t2 = act("t2", 4, 0.35)
    y = act("y", 4, 0.4)
    out = act("out", 4, 0.5)
    if inner:
        conv(x, x1, 3, 3, 4, 4)
    conv(x1, t1, ka, 3, 4, 6, relu=True)
    conv(t1, t2, kb, 3, 6, 4)
    b.op("ADD", [x1, t2] if x_first else [t2, x1], [y])
    if extra_reader:
        z = act("z", 4, 0.6)
        b.op("MUL", [y, x1], [z])
        y = z
    if inner:
        conv(y, out, 1, 1, 4, 4)
    b.inputs(x)
    b.outputs(out if inner else y)
    return b.build()


def test_the_block_is_found_only_where_its_input_is_read_by_the_block_alone() -> None:
    graph = parse_model(residual_model())
    (block,) = fuse.residual_blocks(graph)
    assert (block.first, block.second, block.add) == (1, 2, 3) and block.x_first
    assert not fuse.residual_blocks(parse_model(residual_model(extra_reader=True)))
    # A 5-row first kernel reads x two rows below t1's row, the 3-row second one reads t1
    # one row below y's: y's row r would overwrite x's row r while t1's next row reads it.
    assert not fuse.residual_blocks(parse_model(residual_model(ka=5, kb=3)))
    assert fuse.residual_blocks(parse_model(residual_model(ka=5, kb=5)))
    with pytest.raises(Exception, match="does not end a residual block"):
        library_codes(
            parse_model(residual_model(extra_reader=True)), HOST, {3: Choice(fuse.FUSED, {})}
        )


def test_fused_block_drops_its_tensors_from_the_arena() -> None:
    graph = parse_model(residual_model())
    choices = small_choices(graph, HOST)
    assert choices[3].template == fuse.FUSED
    fused = plan_memory(graph, library_codes(graph, HOST, choices, render=False))
    assert check_plan(fused) == []
    x1, t1, t2, y = 1, 2, 3, 4
    assert t1 not in fused.offsets and t2 not in fused.offsets
    assert fused.offsets[y] == fused.offsets[x1]  # y's rows over x1's
    add = plugins.get_kernel("add")
    spec = build_spec(graph, graph.layers[3])
    apart = {**choices, 3: Choice(add.name, add.space(spec, HOST).baseline())}
    unfused = plan_memory(graph, library_codes(graph, HOST, apart, render=False))
    assert t1 in unfused.offsets and fused.arena_bytes < unfused.arena_bytes


def run_host_library(graph, choices, work: Path, x: np.ndarray) -> np.ndarray:
    lib = emit_library(graph, HOST, work / "model", choices, name="res")
    so = work / "res.so"
    warnings = ["-Wall", "-Wextra", "-Wmissing-prototypes", "-Wshadow", "-Werror"]
    flags = ["-O2", "-shared", "-fPIC", *warnings]
    subprocess.run(
        ["gcc", *flags, "-I", str(INCLUDE_DIR), "-o", str(so), *map(str, lib.sources)],
        check=True,
        capture_output=True,
        text=True,
    )
    fn = ctypes.CDLL(str(so)).res_invoke
    out = np.zeros(graph.tensors[graph.outputs[0]].size, np.int8)
    fn(x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p))
    return out


@pytest.mark.parametrize(
    "shape",
    [
        dict(),
        dict(inner=False),  # the block between the caller's buffers
        dict(ka=2, kb=2, x_first=False),  # even kernels: no top padding
        dict(ka=5, kb=5, x_first=False),
    ],
    ids=["3-5", "3-5-caller", "2-2-t2-first", "5-5-t2-first"],
)
def test_fused_block_is_bit_exact_on_the_host(shape: dict, tmp_path: Path) -> None:
    graph = parse_model(residual_model(**shape))
    choices = small_choices(graph, HOST)
    (block,) = fuse.residual_blocks(graph)
    assert choices[block.add].template == fuse.FUSED
    rng = np.random.default_rng(2)
    for k in range(3):
        x = rng.integers(-128, 128, graph.input_tensors[0].shape).astype(np.int8)
        want = Interpreter(graph).invoke([x])[0].reshape(-1)
        got = run_host_library(graph, choices, tmp_path / str(k), x)
        assert np.array_equal(got, want), int((got != want).sum())


def test_fused_block_is_bit_exact_on_cortex_m4(tmp_path: Path) -> None:
    target = need("cortex-m4")
    graph = parse_model(residual_model())
    choices = small_choices(graph, target)
    assert choices[3].template == fuse.FUSED
    result = deploy(graph, target, tmp_path, choices, checks=3)
    assert result.verified_calls >= 3
    text = (tmp_path / "model").glob("*layer03_add.c")
    source = next(iter(text)).read_text()
    assert "Layers 1, 2 and 3 fused, row by row" in source


def test_resnet8_least_ram_arena_is_at_most_half_tflite_micro(tmp_path: Path) -> None:
    """The least-RAM library's arena (the static array the emitted library declares;
    ResNet-8 keeps no state) at most half tflite-micro's whole arena. Plan and sources
    only: bench/bench_arena.py builds and runs it bit-exact (about two minutes)."""
    target = need("cortex-m4")
    graph = load_model(shared_model("pretrainedResnet_quant.tflite"))
    choices = small_choices(graph, target)
    assert [i for i, c in choices.items() if c.template == fuse.FUSED] == [3]
    lib = emit_library(graph, target, tmp_path / "model", choices)
    assert check_plan(lib.plan) == [] and lib.state_bytes == 0
    assert (
        f"static uint8_t arena[{lib.plan.arena_bytes}]"
        in (tmp_path / "model" / "pretrainedresnet_quant.c").read_text()
    )
    tflm = tflm_arena(graph.path)
    assert tflm is not None
    assert lib.plan.arena_bytes <= 0.5 * tflm["total"], (lib.plan.arena_bytes, tflm)
