"""A tuned run under --ram-budget runs a residual block row by row (emit/fuse.py, measured
by tune/fused.py) when the budget cannot be met with its layers apart, and only then."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from autotune.emit.deploy import deploy
from autotune.emit.library import Choice
from autotune.errors import AutotuneError
from autotune.model.tflite_import import load_model
from autotune.platform import plugins, toolchain
from autotune.tune import fused
from autotune.tune.front import Budget, InfeasibleBudget
from autotune.tune.pipeline import (
    Events,
    TuneOptions,
    library_choices,
    planned_ram,
    tune_model,
)
from autotune.tune.variant import model_activations
from tests.emit.test_residual_rows import residual_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TuneOptions, int]:
    """The 8x8x4 model with one block, and the least RAM of any mix with its layers apart."""
    if not toolchain.toolchain_available(plugins.get_target("cortex-m4")):
        pytest.skip("no toolchain for cortex-m4")
    tmp = tmp_path_factory.mktemp("fused_budget")
    model = tmp / "block.tflite"
    model.write_bytes(residual_model())
    options = TuneOptions("cortex-m4", trials=2, db_url=f"sqlite:///{tmp / 'r.sqlite'}")
    with pytest.raises(InfeasibleBudget) as info:
        tune_model(model, TuneOptions(**{**vars(options), "budget": Budget(ram=64)}))
    found = re.search(r"needs [\d,]+ B of flash and ([\d,]+) B of RAM", str(info.value))
    assert found, str(info.value)
    return model, options, int(found.group(1).replace(",", ""))


def _with_ram(options: TuneOptions, ram: int) -> TuneOptions:
    return TuneOptions(**{**vars(options), "budget": Budget(ram=ram)})


def test_a_budget_met_only_row_by_row_picks_the_block_and_ships_bit_exact(
    setup: tuple[Path, TuneOptions, int], tmp_path: Path
) -> None:
    model, options, apart = setup
    budget = apart - 1  # no mix with the block's layers apart fits

    class Notes(Events):
        def __init__(self) -> None:
            self.lines: list[str] = []

        def note(self, text: str) -> None:
            self.lines.append(text)

    notes = Notes()
    run = tune_model(model, _with_ram(options, budget), notes)
    # The minutes of measuring outside the searches are announced (a log never goes quiet).
    assert any("layers 1, 2 and 3 run row by row" in line for line in notes.lines), notes.lines
    choice = run.choice
    assert choice is not None
    assert [f.layers for f in choice.fused] == [[1, 2, 3]]
    block = choice.fused[0]
    assert block.cycles > 0 and block.flash > 0 and block.scratch > 0
    assert block.metric == plugins.metric_label(run.target)
    assert choice.ram is not None and choice.ram <= budget  # the built library
    assert planned_ram(run.graph, run.target, choice) <= budget
    assert [r.status for r in run.layers] == ["tunable", "fused", "fused", "fused", "tunable"]
    assert choice.as_json()["fused"][0]["layers"] == [1, 2, 3]
    # The selection counts the block once, with its measured cycles.
    others = sum(float(t.cycles or 0) for i, t in choice.picks.items() if i != 3)
    assert choice.cycles == pytest.approx(others + block.cycles)
    choices = library_choices(run)
    assert choices[3] == Choice("residual_rows", {}) and 1 not in choices and 2 not in choices
    deployed = deploy(run.graph, run.target, tmp_path, choices, checks=3)
    assert deployed.verified_calls == 3 + 2  # 3 seeded inputs and the two extremes
    assert deployed.ram["arena"] + deployed.ram["state"] <= budget
    # The ADD's inclusive cycles in the library are the block's, as measured alone.
    add = next(x for x in deployed.layers if x["index"] == 3)
    assert add["cycles"] == pytest.approx(block.cycles, rel=0.01)


def test_a_budget_met_with_the_layers_apart_fuses_nothing(
    setup: tuple[Path, TuneOptions, int],
) -> None:
    model, options, apart = setup
    run = tune_model(model, _with_ram(options, apart))
    assert run.choice is not None and run.choice.fused == []
    assert all(r.status == "tunable" for r in run.layers)
    assert 3 in run.choice.picks and run.choice.picks[3].template == "add"


def test_the_measured_block_is_checked_against_the_reference(
    setup: tuple[Path, TuneOptions, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, _, _ = setup
    graph = load_model(model)
    target = plugins.get_target("cortex-m4")
    [block] = fused.candidates(graph, target)
    activations = model_activations(graph, 0)
    cost = fused.measure_block(graph, block, target, activations, 0)
    assert cost.layers == (1, 2, 3) and cost.metric == plugins.metric_label(target)
    # One LSB off in the reference's answer for the block's input in the model: refused.
    expected = fused.expected_outputs

    def off_by_one(sub, calls, reset):  # type: ignore[no-untyped-def]
        want = expected(sub, calls, reset)
        want[0][0].flat[0] += 1
        return want

    monkeypatch.setattr(fused, "expected_outputs", off_by_one)
    with pytest.raises(AutotuneError, match="fused block: call 0 output 0: 1 of 256 values"):
        fused.measure_block(graph, block, target, activations, 0)
