"""Issue 5's acceptance: real models emitted as one library, run whole on the simulator,
bit-identical to the tflite-micro interpreter; arena no larger than TFLM's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.emit.deploy import deploy
from autotune.emit.library import quick_choices
from autotune.emit.verify import run_on_target
from autotune.model.tflite_import import load_model
from autotune.platform import plugins, toolchain
from autotune.reference.oracle import oracle_invoke
from tests.conftest import seeded_inputs, shared_model

MODELS = [
    "kws_ref_model.tflite",
    "vww_96_int8.tflite",
    "pretrainedResnet_quant.tflite",
    "ad01_int8.tflite",
    "trained_lstm_int8.tflite",
]


def need(target_name: str):
    target = plugins.get_target(target_name)
    if not toolchain.toolchain_available(target):
        pytest.skip(f"no toolchain for {target_name}")
    return target


@pytest.mark.parametrize("target_name", ["cortex-m4", "rv32imc"])
@pytest.mark.parametrize("name", MODELS)
def test_library_matches_tflite_micro_on_the_simulator(
    name: str, target_name: str, tmp_path: Path
) -> None:
    target = need(target_name)
    path = shared_model(name)
    graph = load_model(path)
    choices = quick_choices(graph, target)
    assert choices, "no tunable layer got a fast variant"
    result = deploy(graph, target, tmp_path, choices, checks=3)
    calls = [seeded_inputs(graph, seed) for seed in (11, 12, 13)]
    oracle, expected = oracle_invoke(path.read_bytes(), calls, isolated=True)
    assert oracle == "tflite-micro"
    run = run_on_target(result.library, graph, target, calls, reset_each=True)
    for got, want in zip(run.outputs, expected, strict=True):
        assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    # The arena is planned no larger than what tflite-micro needs for the same model.
    assert result.tflm_arena is not None
    assert result.arena_bytes <= result.tflm_arena["total"]
    assert result.flash["total"] > 0 and result.ram["total"] >= result.arena_bytes


def test_kws_flash_and_ram_split_matches_size_tool(tmp_path: Path) -> None:
    target = need("cortex-m4")
    graph = load_model(shared_model("kws_ref_model.tflite"))
    result = deploy(graph, target, tmp_path, quick_choices(graph, target))
    size = result.size_tool
    assert size is not None, "arm-none-eabi-size is part of binutils-arm-none-eabi"
    flash, ram = result.flash, result.ram
    # Berkeley `size` sees the whole ELF: the library plus the test harness (startup,
    # autotune_main, the input/output buffers and their initial values, the stack).
    assert size["text"] + size["data"] == flash["total"] + flash["harness"]
    assert flash["code"] + flash["weights"] + flash["data_init"] == flash["total"]
    assert flash["data_init"] < 1000  # the 490-byte input buffer is the harness's, not here
    assert flash["harness"] >= 490
    assert size["data"] + size["bss"] == ram["total"] + ram["io_buffers"] + ram["stack_reserved"]
    assert ram["arena"] + ram["state"] + ram["other"] == ram["total"]
    assert ram["arena"] == result.arena_bytes and 0 < ram["stack_needed"] <= ram["stack_reserved"]
    assert flash["weights"] >= 22_000  # the model's ~22.6 K int8 weights live in flash
    # Per-layer cycles from the profiled run add up to the invocation's work.
    assert sum(entry["cycles"] for entry in result.layers) <= result.cycles
    assert sum(entry["cycles"] for entry in result.layers) > 0.95 * result.cycles
