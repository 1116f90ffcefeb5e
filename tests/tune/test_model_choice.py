"""The whole-model choice with verification: a pick that fails on its layer's own values
falls back to the next best (down to the baseline), and the report says why."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from autotune.db import Trial
from autotune.tune.front import Budget, InfeasibleBudget
from autotune.tune.model_choice import (
    Footprint,
    LayerInput,
    Layout,
    choose_model,
    write_front_plot,
)


class _Template:
    name = "t"

    def scratch_bytes(self, spec: object, target: object, params: dict) -> int:
        return int(params.get("scratch", 0))

    def in_place(self, spec: object, target: object, params: dict) -> int:
        return int(params.get("inplace", 0))


def _trial(
    tid: int, cycles: int, flash: int, baseline: bool = False, scratch: int = 0, inplace: int = 0
) -> Trial:
    return Trial(
        id=tid,
        template="t",
        params=json.dumps({"v": tid, "scratch": scratch, "inplace": inplace}),
        status="ok",
        cycles=cycles,
        instructions=cycles,
        code_bytes=flash // 2,
        rodata_bytes=flash - flash // 2,
        is_baseline=baseline,
    )


def _layer(index: int, trials: list[Trial]) -> LayerInput:
    ordered = sorted(trials, key=lambda t: (t.cycles, t.id))
    base = next(t for t in trials if t.is_baseline)
    return LayerInput(index, SimpleNamespace(), {"t": _Template()}, ordered, base)


TARGET = SimpleNamespace(name="fake")


def test_a_failing_pick_falls_back_to_the_next_best_and_says_why() -> None:
    a = [_trial(1, 1000, 100, True), _trial(2, 400, 300), _trial(3, 300, 350)]
    b = [_trial(11, 800, 100, True), _trial(12, 200, 150)]
    bad = {3: "2 of 64 outputs differ (max 1 LSB)"}
    asked: list[int] = []

    def verify(layer: LayerInput, trial: Trial) -> str | None:
        asked.append(trial.id)
        return bad.get(trial.id)

    got = choose_model([_layer(0, a), _layer(1, b)], TARGET, Budget(), verify)
    assert got.picks[0].id == 2 and got.picks[1].id == 12
    assert [(r.layer, json.loads(r.params)["v"], r.reason) for r in got.rejected] == [
        (0, 3, bad[3])
    ]
    assert got.cycles == 600
    assert sorted(set(asked)) == [2, 3, 12]


def test_every_fast_variant_failing_leaves_the_baseline() -> None:
    a = [_trial(1, 1000, 100, True), _trial(2, 400, 300), _trial(3, 300, 350)]
    got = choose_model(
        [_layer(0, a)], TARGET, Budget(), lambda _l, t: None if t.is_baseline else "mismatch"
    )
    assert got.picks[0].id == 1
    assert len(got.rejected) == 2
    assert got.forced == []  # nothing faster was bit-exact


def test_a_budget_that_forces_the_baseline_says_what_it_costs() -> None:
    a = [_trial(1, 1000, 100, True), _trial(2, 400, 300)]
    b = [_trial(11, 800, 100, True), _trial(12, 200, 150)]
    layout = Layout(fixed_flash=1000, fixed_ram=0, live={0: 10, 1: 10})
    got = choose_model(
        [_layer(0, a), _layer(1, b)],
        TARGET,
        Budget(flash=1000 + 100 + 150),
        lambda _l, _t: None,
        layout,
        lambda picks, _shared: Footprint(
            1000 + sum(t.code_bytes + t.rodata_bytes for t in picks.values()), 10
        ),
    )
    assert (got.picks[0].id, got.picks[1].id) == (1, 12)
    assert got.forced == [
        "layer 0 runs the baseline within the budget and flash limit: +600 cycles against its "
        "fastest variant"
    ]
    assert got.baseline_flash == 1200 and got.flash == 1250


def test_the_built_library_is_held_to_the_budget() -> None:
    """The estimate says it fits, the build says 60 B more: the choice is made again."""
    a = [_trial(1, 1000, 100, True), _trial(2, 400, 300), _trial(3, 500, 200)]
    layout = Layout(fixed_flash=1000, fixed_ram=0, live={0: 0})

    def measure(picks: dict[int, Trial], shared: set[int]) -> Footprint:
        t = picks[0]
        return Footprint(1000 + t.code_bytes + t.rodata_bytes + 60, 0)

    got = choose_model(
        [_layer(0, a)], TARGET, Budget(flash=1300), lambda _l, _t: None, layout, measure
    )
    assert got.picks[0].id == 3 and got.flash == 1260


def test_ram_budget_filters_scratch() -> None:
    a = [
        _trial(1, 1000, 100, True),
        _trial(2, 400, 300, scratch=600),
        _trial(3, 500, 300, scratch=40),
    ]
    layout = Layout(fixed_flash=0, fixed_ram=32, live={0: 400})

    def measure(picks: dict[int, Trial], shared: set[int]) -> Footprint:
        return Footprint(100, 32 + 400 + json.loads(picks[0].params)["scratch"])

    got = choose_model(
        [_layer(0, a)], TARGET, Budget(ram=500), lambda _l, _t: None, layout, measure
    )
    assert got.picks[0].id == 3
    with pytest.raises(InfeasibleBudget, match="432 B of RAM"):
        choose_model([_layer(0, a)], TARGET, Budget(ram=431), lambda _l, _t: None, layout, measure)


def test_in_place_variants_count_the_arena_they_free() -> None:
    """Layer 0's output written over its input frees 300 B where the plan allows it: under
    a budget the slower in-place variant is the one that fits; without the saving (the
    input is read later) it does not."""
    a = [
        _trial(1, 1000, 100, True),
        _trial(2, 400, 300, scratch=64),
        _trial(3, 450, 300, scratch=16, inplace=1),
    ]
    layout = Layout(fixed_flash=0, fixed_ram=0, live={0: 700}, inplace_saving={0: 300})

    def measure(picks: dict[int, Trial], shared: set[int]) -> Footprint:
        p = json.loads(picks[0].params)
        return Footprint(100, 700 + p["scratch"] - (300 if p["inplace"] else 0))

    def pick(budget: Budget, saving: dict[int, int]) -> int:
        lay = Layout(0, 0, {0: 700}, saving)
        return (
            choose_model([_layer(0, a)], TARGET, budget, lambda *_: None, lay, measure).picks[0].id
        )

    assert pick(Budget(), layout.inplace_saving) == 2  # no budget: the fastest
    assert pick(Budget(ram=500), layout.inplace_saving) == 3  # 700 + 16 - 300 = 416
    with pytest.raises(InfeasibleBudget):
        pick(Budget(ram=500), {})


def test_front_plot_is_written(tmp_path: Path) -> None:
    a = [_trial(1, 1000, 100, True), _trial(2, 400, 300), _trial(3, 500, 200)]
    layout = Layout(fixed_flash=1000, fixed_ram=0, live={0: 0})
    got = choose_model(
        [_layer(0, a)],
        TARGET,
        Budget(flash=1250),
        lambda _l, _t: None,
        layout,
        lambda p, _shared: Footprint(1000 + sum(t.code_bytes + t.rodata_bytes for t in p.values()), 0),
    )
    assert [(p[0], p[1]) for p in got.front] == [(1000.0, 1100), (500.0, 1200), (400.0, 1300)]
    path = write_front_plot(got, tmp_path / "front.png", "cycles (model x)", "test")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
