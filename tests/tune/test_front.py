"""The whole-model choice under budgets: exact on constructed fronts (checked against
brute force), fast, and a clear error when nothing fits."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from autotune.tune.front import (
    Budget,
    InfeasibleBudget,
    LayerChoices,
    Option,
    choose,
    model_front,
    pareto,
    parse_bytes,
    selection_flash,
)


def _layers(rng: np.random.Generator, n: int, k: int) -> list[LayerChoices]:
    layers = []
    for li in range(n):
        opts = [
            Option(
                cycles=float(rng.integers(100, 5000)),
                flash=int(rng.integers(100, 3000)),
                ram=int(rng.choice([0, 0, 64, 256, 1024])),
                ref=(li, j),
            )
            for j in range(k)
        ]
        layers.append(LayerChoices(f"l{li}", opts, live_bytes=int(rng.integers(0, 2000))))
    return layers


def _brute(layers, budget, fixed_flash, fixed_ram):
    best = None
    for combo in itertools.product(*(layer.options for layer in layers)):
        flash = fixed_flash + sum(o.flash for o in combo)
        cycles = sum(o.cycles for o in combo)
        ram = fixed_ram + max(
            layer.live_bytes + o.ram for layer, o in zip(layers, combo, strict=True)
        )
        if budget.flash is not None and flash > budget.flash:
            continue
        if budget.ram is not None and ram > budget.ram:
            continue
        if budget.cycles is not None and cycles > budget.cycles:
            continue
        key = {"cycles": cycles, "flash": flash, "ram": ram}[budget.objective]
        if best is None or key < best:
            best = key
    return best


@pytest.mark.parametrize("seed", range(12))
def test_knapsack_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    layers = _layers(rng, n=5, k=4)
    fixed_flash, fixed_ram = 500, 32
    total_min = sum(min(o.flash for o in layer.options) for layer in layers) + fixed_flash
    total_max = sum(max(o.flash for o in layer.options) for layer in layers) + fixed_flash
    for frac in (0.1, 0.4, 0.7, 1.0):
        flash = int(total_min + frac * (total_max - total_min))
        for ram in (None, 2500, 3200):
            budget = Budget(flash=flash, ram=ram)
            want = _brute(layers, budget, fixed_flash, fixed_ram)
            if want is None:
                with pytest.raises(InfeasibleBudget):
                    choose(layers, budget, fixed_flash, fixed_ram)
                continue
            got = choose(layers, budget, fixed_flash, fixed_ram)
            assert got.cycles == want
            assert got.flash <= flash and (ram is None or got.ram <= ram)
            assert got.cycles == sum(p.cycles for p in got.picks)
            assert got.flash == fixed_flash + sum(p.flash for p in got.picks)


@pytest.mark.parametrize("objective", ["flash", "ram"])
@pytest.mark.parametrize("seed", range(6))
def test_other_objectives_match_brute_force(seed: int, objective: str) -> None:
    rng = np.random.default_rng(100 + seed)
    layers = _layers(rng, n=4, k=4)
    fastest = sum(min(o.cycles for o in layer.options) for layer in layers)
    for slack in (1.0, 1.3, 2.0):
        budget = Budget(cycles=fastest * slack, objective=objective)
        want = _brute(layers, budget, 100, 0)
        got = choose(layers, budget, 100, 0)
        assert getattr(got, objective) == want
        assert got.cycles <= fastest * slack


def test_model_front_is_the_front_of_all_combinations() -> None:
    layers = _layers(np.random.default_rng(7), n=4, k=3)
    points = {
        (sum(o.cycles for o in c), 10 + sum(o.flash for o in c))
        for c in itertools.product(*(layer.options for layer in layers))
    }
    want = sorted(
        (c, f)
        for c, f in points
        if not any(c2 <= c and f2 <= f and (c2, f2) != (c, f) for c2, f2 in points)
    )
    assert sorted(model_front(layers, 10)) == want


def test_ties_are_broken_deterministically_and_toward_less_ram() -> None:
    a = Option(100, 50, 64, "a")
    b = Option(100, 50, 0, "b")
    layer = LayerChoices("x", [a, b])
    assert choose([layer], Budget()).refs() == ["b"]
    assert pareto([a, b]) == [b]
    # Same cycles, more flash: the smaller one.
    c, d = Option(100, 60, 0, "c"), Option(100, 40, 0, "d")
    assert choose([LayerChoices("y", [c, d])], Budget()).refs() == ["d"]


def test_infeasible_budget_names_the_smallest_flash_and_ram() -> None:
    layers = [
        LayerChoices("a", [Option(10, 300, 0), Option(5, 900, 128)], live_bytes=1000),
        LayerChoices("b", [Option(10, 200, 64), Option(3, 700, 0)], live_bytes=500),
    ]
    with pytest.raises(InfeasibleBudget) as err:
        choose(layers, Budget(flash=1000), fixed_flash=1000, fixed_ram=16)
    message = str(err.value)
    assert "\n" not in message
    assert "1,500 B of flash" in message  # 1000 + 300 + 200
    assert "1,016 B of RAM" in message  # 16 + max(1000 + 0, 500 + 0)
    with pytest.raises(InfeasibleBudget):
        choose(layers, Budget(ram=1010), fixed_flash=1000, fixed_ram=16)
    # Just enough: exactly the smallest.
    got = choose(layers, Budget(flash=1500, ram=1016), fixed_flash=1000, fixed_ram=16)
    assert (got.flash, got.ram, got.cycles) == (1500, 1016, 20)


def test_large_model_is_solved_well_under_a_second() -> None:
    layers = _layers(np.random.default_rng(3), n=40, k=25)
    total = sum(max(o.flash for o in layer.options) for layer in layers)
    start = time.perf_counter()
    got = choose(layers, Budget(flash=total // 2))
    assert time.perf_counter() - start < 1.0
    assert got.flash <= total // 2


def test_parse_bytes() -> None:
    assert parse_bytes("43000") == 43000
    assert parse_bytes("42KiB") == 42 * 1024
    assert parse_bytes("64k") == 65536
    assert parse_bytes("1.5 MiB") == 3 << 19
    with pytest.raises(ValueError):
        parse_bytes("lots")


def _shared_layers(rng: np.random.Generator) -> list[LayerChoices]:
    """Two groups of identical layers (3 and 2) whose options share code, and a lone layer."""
    layers = []
    for group, members in (("a", 3), ("b", 2), (None, 1)):
        opts = []
        for j in range(4):
            flash = int(rng.integers(200, 3000))
            opts.append(
                Option(
                    cycles=float(rng.integers(100, 5000)),
                    flash=flash,
                    ram=0,
                    ref=(group, j),
                    shared=int(rng.integers(0, flash)) if group else 0,
                )
            )
        layers += [LayerChoices(f"{group}{m}", list(opts), group=group) for m in range(members)]
    return layers


def _brute_shared(layers, flash_budget, fixed):
    """Every combination, a group's shared bytes counted once per option picked."""
    best = None
    for combo in itertools.product(*(layer.options for layer in layers)):
        flash = fixed + sum(o.flash - o.shared for o in combo)
        flash += sum(
            {
                (layer.group, o.ref): o.shared for layer, o in zip(layers, combo, strict=True)
            }.values()
        )
        if flash > flash_budget:
            continue
        cycles = sum(o.cycles for o in combo)
        if best is None or (cycles, flash) < best:
            best = (cycles, flash)
    return best


@pytest.mark.parametrize("seed", range(10))
def test_shared_code_is_counted_once_and_the_choice_stays_exact(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    layers = _shared_layers(rng)
    fixed = 300
    lo = fixed + sum(min(o.flash for o in layer.options) for layer in layers) // 2
    hi = fixed + sum(max(o.flash for o in layer.options) for layer in layers)
    for frac in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        budget = int(lo + frac * (hi - lo))
        want = _brute_shared(layers, budget, fixed)
        if want is None:
            with pytest.raises(InfeasibleBudget):
                choose(layers, Budget(flash=budget), fixed)
            continue
        got = choose(layers, Budget(flash=budget), fixed)
        assert got.cycles == want[0]
        assert got.flash <= budget
        assert got.flash == fixed + selection_flash(layers, got.picks)
    # The whole front: every point is a combination's (cycles, flash), none dominated.
    front = model_front(layers, fixed)
    for cycles, flash in front:
        assert _brute_shared(layers, flash, fixed)[0] == cycles


def test_sharing_lets_identical_layers_take_the_fast_variant() -> None:
    """Four identical layers: a fast variant with 2,000 B of shared code fits the budget
    once, four copies would not."""
    fast = Option(cycles=100.0, flash=2_300, ram=0, ref="fast", shared=2_000)
    slow = Option(cycles=500.0, flash=400, ram=0, ref="slow", baseline=True)
    layers = [LayerChoices(f"l{i}", [slow, fast], group="dw") for i in range(4)]
    got = choose(layers, Budget(flash=3_300))
    assert [p.ref for p in got.picks] == ["fast"] * 4
    assert got.flash == 2_000 + 4 * 300
    alone = [LayerChoices(f"l{i}", [slow, fast]) for i in range(4)]
    assert choose(alone, Budget(flash=3_300)).cycles == 4 * 500  # 3 x 400 + 2,300 > 3,300


def test_a_group_of_forty_is_solved_well_under_a_second() -> None:
    rng = np.random.default_rng(7)
    opts = [
        Option(float(rng.integers(100, 5000)), int(f), 0, ref=j, shared=int(f) // 2)
        for j, f in enumerate(rng.integers(500, 4000, 20))
    ]
    layers = [LayerChoices(f"l{i}", list(opts), group="fc") for i in range(40)]
    start = time.perf_counter()
    choose(layers, Budget(flash=60_000))
    assert time.perf_counter() - start < 1.0
