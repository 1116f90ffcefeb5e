"""A library's verification builds never overwrite one another.

The whole-model check builds the same library with harnesses of 1, 4 and 5 calls and
reads the first ELF's sizes after the others were built; two autotune processes on
one model build the same library at once. Both shared one build directory per
library: the unrolled GRU (shared model) failed with "input 'at_in0' has 640 bytes but
the buffer holds 320" while another process built it, and the deployment's flash was
read from the last harness built, not the measured one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.emit.library import baseline_choices, emit_library
from autotune.emit.verify import build_for_target
from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins, toolchain
from autotune.platform.elf import read_elf


def small_model() -> bytes:
    rng = np.random.default_rng(3)
    b = ModelBuilder()
    x = b.tensor("x", (1, 24), "int8", 0.05, 0)
    w = b.constant("w", rng.integers(-127, 128, (8, 24)).astype(np.int8), [0.01], 0)
    bias = b.constant("b", np.zeros(8, np.int32), [0.0005], 0)
    y = b.tensor("y", (1, 8), "int8", 0.1, 0)
    b.op("FULLY_CONNECTED", [x, w, bias], [y])
    b.inputs(x)
    b.outputs(y)
    return b.build()


def test_each_build_keeps_its_own_elf(tmp_path: Path) -> None:
    target = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(target):
        pytest.skip("no toolchain for cortex-m4")
    graph = parse_model(small_model(), "fc.tflite")
    library = emit_library(graph, target, tmp_path / "model", baseline_choices(graph, target))
    one = build_for_target(library, graph, target, 1)
    four = build_for_target(library, graph, target, 4)
    assert one.elf != four.elf
    # The first ELF is still the one-call build: its input buffer holds one input.
    assert read_elf(one.elf).symbol("at_in0").size == 24
    assert read_elf(four.elf).symbol("at_in0").size == 4 * 24
