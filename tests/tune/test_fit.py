"""A model that cannot fit the target is stopped before tuning, in one line with the bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune.model.tflite_import import parse_model
from autotune.model.tflite_writer import ModelBuilder
from autotune.platform import plugins
from autotune.tune.fit import ModelTooLarge, check_fits, flash_room, model_needs
from tests.tune.test_tune_cli import autotune, one_line_error

MIB = 1024 * 1024


def fc_model(inputs: int, outputs: int) -> bytes:
    """One FULLY_CONNECTED layer with inputs x outputs int8 weights."""
    b = ModelBuilder()
    x = b.tensor("x", (1, inputs), "int8", 0.05, 0)
    w = b.constant("w", np.ones((outputs, inputs), np.int8), [0.01], 0)
    bias = b.constant("b", np.zeros(outputs, np.int32), [0.0005], 0)
    y = b.tensor("y", (1, outputs), "int8", 0.1, 0)
    b.op("FULLY_CONNECTED", [x, w, bias], [y])
    b.inputs(x)
    b.outputs(y)
    return b.build()


def relu_model(elements: int) -> bytes:
    b = ModelBuilder()
    x = b.tensor("x", (1, elements), "int8", 0.05, 0)
    y = b.tensor("big", (1, elements), "int8", 0.05, 0)
    b.op("RELU", [x], [y])
    b.inputs(x)
    b.outputs(y)
    return b.build()


def test_parameters_over_the_flash_stop_the_run_before_tuning(tmp_path: Path) -> None:
    """cortex-m4 without --part links into 1 MiB of flash: 1.1 MB of weights + 4 KB of bias cannot fit.
    One line naming both sizes and a target that holds it, exit 2, nothing tuned or written."""
    model = tmp_path / "big.tflite"
    model.write_bytes(fc_model(1100, 1000))
    out = tmp_path / "out"
    db = f"sqlite:///{tmp_path / 'r.sqlite'}"
    result = autotune(
        str(model), "--target", "cortex-m4", "--out", str(out), "--db", db, cwd=tmp_path
    )
    line = one_line_error(result)
    assert result.returncode == 2
    assert "its parameters alone need 1,104,000 B of flash" in line
    assert "cortex-m4's flash region (the core alone, no --part) has 1,048,576 B" in line
    assert "nothing was tuned" in line and "cortex-a" in line
    assert "tuning" not in result.stderr.replace(line, "")  # no search started
    assert not (out / "model").exists() and not (out / "report.json").exists()


def test_one_activation_over_the_ram_is_named() -> None:
    graph = parse_model(relu_model(600_000), "wide.tflite")
    target = plugins.get_target("cortex-m4")
    need = model_needs(graph)
    assert need.flash == 0 and need.ram == 600_000 and need.ram_tensor is not None
    with pytest.raises(ModelTooLarge) as err:
        check_fits(graph, target, "wide.tflite")
    message = str(err.value)
    assert "activation 'x' (1x600000 int8) alone needs 600,000 B of RAM" in message
    assert "ram region (the core alone, no --part) has 524,288 B" in message
    assert "parameters" not in message  # the flash is fine


def test_a_model_within_the_memory_passes() -> None:
    graph = parse_model(fc_model(1000, 1000), "ok.tflite")  # 1,004,000 B < 1 MiB
    target = plugins.get_target("cortex-m4")
    check_fits(graph, target, "ok.tflite")
    assert flash_room(target) == MIB - 16 * 1024


def test_without_a_budget_the_library_is_chosen_within_the_targets_flash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --flash-budget and no --part: when the fastest mix comes near the target's flash
    (here a cortex-m4 whose flash leaves the library 7,000 B), it is chosen again under
    that room, and the library that ships links, fits it and is bit-exact."""
    import dataclasses

    from autotune.emit.deploy import deploy
    from autotune.emit.library import Choice
    from autotune.examples import quickstart_model
    from autotune.platform import toolchain
    from autotune.platform.target import MemoryRegion
    from autotune.tune import pipeline
    from autotune.tune.fit import HARNESS_ROOM
    from autotune.tune.pipeline import TuneOptions, tune_model

    m4 = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(m4):
        pytest.skip("no toolchain for cortex-m4")
    room = 7000
    ram = m4.memory[1]
    small = dataclasses.replace(m4, memory=(MemoryRegion("flash", 0, HARNESS_ROOM + room), ram))
    assert flash_room(small) == room
    monkeypatch.setattr(pipeline, "resolve_target", lambda options: small)
    model = tmp_path / "qs.tflite"
    model.write_bytes(quickstart_model())
    options = TuneOptions("cortex-m4", trials=2, db_url=f"sqlite:///{tmp_path / 'r.sqlite'}")
    run = tune_model(model, options)
    choice = run.choice
    assert choice is not None and choice.budget.flash == room
    assert choice.flash is not None and choice.flash <= room  # the built library
    assert choice.cycles <= choice.baseline_cycles
    # As the CLI builds it: shared where the choice measured sharing.
    picks = Choice.from_trials(choice.picks, choice.share_layers)
    shipped = deploy(run.graph, small, tmp_path / "out", picks)
    assert shipped.verified_calls > 0  # linked into the small flash and bit-exact
    assert shipped.flash["total"] <= room


def test_a_library_the_linker_cannot_place_is_one_line_with_the_overflow(tmp_path: Path) -> None:
    """GNU ld's own count of the bytes over the region becomes the error's figure, with
    the option that chooses within the memory."""
    import dataclasses

    from autotune.platform import toolchain
    from autotune.platform.target import MemoryRegion
    from autotune.tune.fit import library_too_large

    m4 = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(m4):
        pytest.skip("no toolchain for cortex-m4")
    small = dataclasses.replace(m4, memory=(MemoryRegion("flash", 0, 32 * 1024), m4.memory[1]))
    src = tmp_path / "big.c"
    src.write_text(
        "#include <stdint.h>\n"
        "const int8_t weights[40000] = {1};\n"
        "volatile int8_t sink;\n"
        "void autotune_main(void);\n"
        "void autotune_main(void) { sink = weights[sink]; }\n"
    )
    with pytest.raises(toolchain.CompileError) as err:
        toolchain.build_elf(small, [src], tmp_path / "build")
    over = err.value.overflows()
    assert set(over) == {"flash"} and over["flash"] > 40000 - 32 * 1024
    line = str(library_too_large("m.tflite", small, over))
    assert line.startswith("m.tflite: the library does not fit cortex-m4: ")
    assert f"its flash region (32,768 B) overflowed by {over['flash']:,} B" in line
    assert "--flash-budget" in line
