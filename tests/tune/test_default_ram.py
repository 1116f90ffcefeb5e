"""Without --ram-budget or --part, a tuned library needs no more RAM than tflite-micro."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotune.examples import quickstart_model
from autotune.platform import plugins, toolchain
from autotune.reference import oracle
from autotune.tune.pipeline import TuneOptions, planned_ram, tune_model


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TuneOptions, int]:
    """The quick-start model tuned without a budget, and the RAM its fastest mix needs."""
    if not toolchain.toolchain_available(plugins.get_target("cortex-m4")):
        pytest.skip("no toolchain for cortex-m4")
    tmp = tmp_path_factory.mktemp("default_ram")
    model = tmp / "qs.tflite"
    model.write_bytes(quickstart_model())
    options = TuneOptions("cortex-m4", trials=8, db_url=f"sqlite:///{tmp / 'r.sqlite'}")
    run = tune_model(model, options)
    assert run.choice is not None
    assert run.choice.defaults == []  # tflite-micro's arena (5,248 B) holds the fastest mix
    return model, options, planned_ram(run.graph, run.target, run.choice)


def test_the_fastest_mix_over_tflite_micros_arena_is_chosen_again_within_it(
    tuned: tuple[Path, TuneOptions, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, options, fastest_ram = tuned
    cap = fastest_ram - 1  # as if tflite-micro needed a byte less than the fastest mix
    monkeypatch.setattr(oracle, "tflm_arena", lambda path: {"total": cap})
    choice = tune_model(model, options).choice
    assert choice is not None
    assert choice.budget.ram == cap and choice.budget.flash is None
    assert choice.ram is not None and choice.ram <= cap  # the built library
    assert choice.defaults == [f"RAM budget {cap:,} B: tflite-micro's arena for this model"]
    assert choice.as_json()["defaults"] == choice.defaults


def test_a_cap_no_mix_reaches_leaves_the_fastest_mix_and_says_so(
    tuned: tuple[Path, TuneOptions, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, options, fastest_ram = tuned
    monkeypatch.setattr(oracle, "tflm_arena", lambda path: {"total": 64})
    run = tune_model(model, options)
    choice = run.choice
    assert choice is not None and choice.budget.ram is None
    assert choice.defaults == ["no mix needs as little RAM as tflite-micro's arena"]
    assert planned_ram(run.graph, run.target, choice) == fastest_ram
