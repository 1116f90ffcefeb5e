"""Calibration: the fit of a part's memory parameters to board cycle counts.

The recorded measurements in data/ are SYNTHETIC (no board was used): the core model's
cycles plus cache misses from a trace times known penalties, plus noise; see
data/make_calibration_recording.py. The fit must find the known penalties back.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from autotune.platform import plugins, toolchain
from autotune.platform.calibrate import (
    INTERCEPT,
    CalibrationError,
    Linear,
    benchmark_names,
    build_benchmarks,
    calibrate,
    calibrated_preset,
    fit,
    linearize,
    measure,
)
from autotune.platform.runner import Runner, RunnerCapabilities
from autotune.platform.target import Target
from tests.cli.test_cli_basics import autotune

RECORDING = Path(__file__).with_name("data") / "calibration_stm32l4r5_synthetic.json"


def recorded() -> tuple[dict, Linear, dict[str, int]]:
    doc = json.loads(RECORDING.read_text())
    assert doc["synthetic"] is True
    rows = doc["benchmarks"]
    model = Linear(
        {b: float(r["base"]) for b, r in rows.items()},
        {b: {p: float(v) for p, v in r["per_unit"].items()} for b, r in rows.items()},
    )
    return doc, model, {b: r["measured"] for b, r in rows.items()}


def test_fit_finds_the_recorded_parts_penalties() -> None:
    doc, model, measured = recorded()
    result = fit(measured, model)
    assert result.values == doc["true"]
    # No benchmark is sensitive to the flash wait states: every access is cached.
    assert result.unconstrained == ["memories.flash.wait_states"]
    assert abs(result.overhead - doc["overhead"]) < 40
    assert max(abs(e) for e in result.errors.values()) < 4 * doc["noise"]


def test_fit_is_wrong_when_the_measurements_are() -> None:
    doc, model, measured = recorded()
    slower = dict(measured)
    slower["code_large"] += 3 * model.per_unit["code_large"]["caches.art-i.miss_penalty"]
    result = fit(slower, model)
    assert result.values["caches.art-i.miss_penalty"] > doc["true"]["caches.art-i.miss_penalty"]
    assert result.values["caches.art-d.miss_penalty"] == doc["true"]["caches.art-d.miss_penalty"]


def test_penalties_are_never_negative_and_the_overhead_is_free() -> None:
    model = Linear(
        {"a": 1000.0, "b": 1000.0, "c": 1000.0},
        {"a": {"p": 100.0, "q": 0.0}, "b": {"p": 0.0, "q": 100.0}, "c": {"p": 50.0, "q": 50.0}},
    )
    # Faster than the zero-penalty model on q's benchmark: q cannot go below zero, and
    # the constant per run may be negative.
    result = fit({"a": 1300, "b": 900, "c": 1100}, model)
    assert result.values["q"] == 0 and result.values["p"] >= 3
    exact = fit({"a": 1000 + 400 - 20, "b": 1000 + 200 - 20, "c": 1000 + 300 - 20}, model)
    assert exact.values == {"p": 4, "q": 2} and exact.overhead == pytest.approx(-20)


def test_linearize_recovers_a_linear_models_sensitivities() -> None:
    def predict(values: dict[str, int]) -> dict[str, float]:
        return {
            "x": 500 + 10 * values["w"] + 3 * values["m"],
            "y": 800 + 0 * values["w"] + 7 * values["m"],
        }

    model = linearize(predict, ["w", "m"])
    assert model.base == {"x": 500, "y": 800}
    assert model.per_unit == {"x": {"w": 10, "m": 3}, "y": {"w": 0, "m": 7}}
    assert model.predict({"w": 2, "m": 1}, overhead=5) == {"x": 528, "y": 812}


def test_missing_or_empty_measurements_are_named() -> None:
    _, model, measured = recorded()
    del measured["smlad_chain"]
    with pytest.raises(CalibrationError, match="smlad_chain"):
        fit(measured, model)
    _, model, measured = recorded()
    measured["code_small"] = 0
    with pytest.raises(CalibrationError, match="code_small"):
        fit(measured, model)


def test_calibrated_preset_is_the_part_file_format() -> None:
    _, model, measured = recorded()
    result = fit(measured, model)
    values = {"memories.flash.wait_states": 5, **result.values}
    preset = calibrated_preset("stm32l4r5", 2, values, result, "gdb runner, 8 benchmarks")
    assert preset["base"] == "stm32l4r5" and preset["version"] == 2
    assert preset["name"].startswith("stm32l4r5-cal-")
    other = calibrated_preset(
        "stm32l4r5", 2, {**values, "memories.flash.wait_states": 4}, result, ""
    )
    assert other["name"] != preset["name"]  # another calibration, another label
    assert preset["caches"] == {"art-i": {"miss_penalty": 7}, "art-d": {"miss_penalty": 6}}
    assert preset["memories"] == {"flash": {"wait_states": 5}}
    assert set(preset["fit"]["benchmarks"]) == set(measured)
    assert INTERCEPT in preset["fit"]
    json.dumps(preset)  # writable as is
    with pytest.raises(CalibrationError, match=r"not caches\.NAME\.FIELD"):
        calibrated_preset("stm32l4r5", 2, {"flash": 5}, result, "")


@pytest.mark.toolchain
def test_benchmarks_build_and_run_where_they_apply(tmp_path: Path) -> None:
    m4, m3 = plugins.get_target("cortex-m4"), plugins.get_target("cortex-m3")
    if not toolchain.toolchain_available(m4):
        pytest.skip("no arm toolchain")
    assert "smlad_chain" in benchmark_names(m4) and "smlad_chain" not in benchmark_names(m3)
    elfs = build_benchmarks(m4, tmp_path)
    cycles = measure(plugins.get_runner(m4.runner), m4, elfs)
    _, model, _ = recorded()
    # The recording was made from these benchmarks on this core model.
    assert cycles == {b: int(v) for b, v in model.base.items()}, (
        "the core model changed: regenerate the recording "
        "(python tests/platform/data/make_calibration_recording.py)"
    )
    assert np.all(np.array(list(cycles.values())) > 1000)


def test_calibrate_names_what_is_missing(tmp_path: Path) -> None:
    if importlib.util.find_spec("autotune.platform.parts") is None:
        done = autotune("calibrate", "--part", "stm32l4r5", "--remote", "127.0.0.1:9", cwd=tmp_path)
        assert done.returncode == 2
        assert "no part presets" in done.stderr and "Traceback" not in done.stderr
    else:
        done = autotune("calibrate", "--part", "no-such-part", cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr


class _ModelBoard(Runner):
    """A stand-in board: the part's own timing model with known parameters."""

    name = "model-board"
    capabilities = RunnerCapabilities(executes=True, counts_cycles=True)

    def __init__(self, timed: Target) -> None:
        self.timed = timed

    def run(self, elf_path, target, inputs=None, outputs=None, budget=50_000_000, profile=False):
        return plugins.get_runner(self.timed.runner).run(
            elf_path, self.timed, inputs, outputs, budget
        )


@pytest.mark.toolchain
def test_calibration_finds_a_parts_parameters_and_the_preset_loads(tmp_path: Path) -> None:
    parts = pytest.importorskip("autotune.platform.parts")
    target = plugins.get_target("cortex-m4")
    if not toolchain.toolchain_available(target):
        pytest.skip("no arm toolchain")
    truth = tmp_path / "truth.json"
    truth.write_text(
        json.dumps(
            {
                "base": "stm32l4r5",
                "name": "truth",
                "caches": {"art-i": {"miss_penalty": 9}, "art-d": {"miss_penalty": 12}},
            }
        )
    )
    board = _ModelBoard(parts.apply_part(target, parts.load_part_file(truth, plugins.get_parts())))
    names = [n for n in benchmark_names(target) if n != "tuned_conv"]  # keeps the test short
    preset, fitted = calibrate(board, target, "stm32l4r5", tmp_path / "work", names)
    assert fitted.values == {"caches.art-i.miss_penalty": 9, "caches.art-d.miss_penalty": 12}
    assert max(abs(e) for e in fitted.errors.values()) < 1e-3
    # Every flash access of this part goes through a cache: its wait states are not
    # constrained by any benchmark, and the preset keeps the built-in value.
    assert fitted.unconstrained == ["memories.flash.wait_states"]
    built_in = plugins.get_part("stm32l4r5")
    assert preset["memories"]["flash"]["wait_states"] == built_in.memory("flash").wait_states
    written = tmp_path / "cal.json"
    written.write_text(json.dumps(preset))
    loaded = parts.load_part_file(written, plugins.get_parts())
    assert loaded.cache("art-i").miss_penalty == 9 and loaded.cache("art-d").miss_penalty == 12
    assert loaded.name == preset["name"] and loaded.version == built_in.version + 1
    assert preset["name"] in parts.apply_part(target, loaded).cycle_model
