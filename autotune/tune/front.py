"""Pareto fronts and the exact whole-model choice under flash, RAM and cycle budgets.

Each layer offers options (measured variants): cycles, flash (code + constants)
and RAM (the scratch it adds to the arena). A model's flash is a sum over its
layers, so choosing one option per layer under a flash budget is a multiple-choice
knapsack; its RAM is a peak (the arena holds one layer's scratch at a time, next
to the activations alive then), so a RAM budget is a per-layer filter.

The knapsack is solved exactly by merging the layers' fronts: the Pareto front of
sums of (cycles, flash) is the front of sums of fronts, so after each layer only
the non-dominated partial sums are kept (vectorized with numpy). Ties are broken
the same way every time: fewer cycles, then less flash, then the earlier option.

Shared code and data: layers of one group (same workload, the same options) that pick
the same option store its ``shared`` bytes once (one function for all of them, or
the weights they all read); each further layer adds only ``flash - shared``. A
group's own front is exact: a dynamic programme over its options and how many of the
group's layers take each (the layers are interchangeable), then the groups' fronts
are merged like single layers'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autotune.errors import AutotuneError

OBJECTIVES = ("cycles", "flash", "ram")


class InfeasibleBudget(AutotuneError):
    """No choice of variants meets the budgets."""


@dataclass(frozen=True)
class Option:
    """One variant of one layer."""

    cycles: float
    flash: int
    ram: int  # bytes this variant adds to the arena while its layer runs
    ref: Any = field(default=None, compare=False)  # what it stands for (a trial)
    baseline: bool = False
    shared: int = 0  # of flash, bytes stored once for all the group's layers picking it


def pareto(options: Sequence[Option]) -> list[Option]:
    """The options no other option beats or equals in cycles, flash and RAM at once
    (of equal ones the first is kept), ordered by flash."""
    order = sorted(
        range(len(options)), key=lambda i: (options[i].flash, options[i].cycles, options[i].ram, i)
    )
    front: list[Option] = []
    for i in order:
        o = options[i]
        if any(f.cycles <= o.cycles and f.flash <= o.flash and f.ram <= o.ram for f in front):
            continue
        front.append(o)
    return front


@dataclass
class LayerChoices:
    """The options of one layer, and the RAM alive around it when it runs."""

    name: str
    options: list[Option]
    live_bytes: int = 0  # activations (and state) alive while this layer runs
    group: Any = None  # layers of one group with the same options share Option.shared

    def within(self, ram_budget: int | None) -> list[Option]:
        if ram_budget is None:
            return list(self.options)
        return [o for o in self.options if self.live_bytes + o.ram <= ram_budget]


@dataclass
class Budget:
    flash: int | None = None  # bytes of the whole library
    ram: int | None = None  # bytes of arena (+ state)
    cycles: float | None = None  # for --objective flash|ram
    objective: str = "cycles"


@dataclass
class Selection:
    """One option per layer and what the model adds up to."""

    picks: list[Option]
    cycles: float
    flash: int  # fixed flash + the picks' flash
    ram: int  # peak of live bytes + scratch over the layers

    def refs(self) -> list[Any]:
        return [p.ref for p in self.picks]


@dataclass
class ModelFront:
    """The Pareto front of whole-model (cycles, flash) over the layers' options."""

    cycles: np.ndarray
    flash: np.ndarray
    _parents: list[np.ndarray]  # per layer: index into the previous front
    _choice: list[np.ndarray]  # per layer: index into that layer's option list
    _options: list[list[Option]]

    def picks(self, i: int) -> list[Option]:
        out: list[Option] = []
        for layer in range(len(self._options) - 1, -1, -1):
            out.append(self._options[layer][int(self._choice[layer][i])])
            i = int(self._parents[layer][i])
        return out[::-1]

    def __len__(self) -> int:
        return len(self.cycles)


def merge_fronts(
    layers: Sequence[Sequence[Option]],
    fixed_flash: int = 0,
    max_flash: float | None = None,
    max_cycles: float | None = None,
) -> ModelFront:
    """Exact (cycles, flash) front of one option per layer; partial sums over a bound
    are dropped as they appear (both only grow)."""
    cycles = np.zeros(1, np.float64)
    flash = np.full(1, fixed_flash, np.int64)
    parents: list[np.ndarray] = []
    choice: list[np.ndarray] = []
    for opts in layers:
        oc = np.array([o.cycles for o in opts], np.float64)
        of = np.array([o.flash for o in opts], np.int64)
        c = (cycles[:, None] + oc[None, :]).ravel()
        f = (flash[:, None] + of[None, :]).ravel()
        parent = np.repeat(np.arange(len(cycles)), len(opts))
        pick = np.tile(np.arange(len(opts)), len(cycles))
        keep = np.ones(len(c), bool)
        if max_flash is not None:
            keep &= f <= max_flash
        if max_cycles is not None:
            keep &= c <= max_cycles
        c, f, parent, pick = c[keep], f[keep], parent[keep], pick[keep]
        # By flash, then cycles, then the earlier choice: a point survives if it has
        # fewer cycles than everything with less or equal flash before it.
        order = np.lexsort((pick, parent, c, f))
        c, f, parent, pick = c[order], f[order], parent[order], pick[order]
        prev_best = np.minimum.accumulate(np.concatenate(([np.inf], c[:-1])))
        front = c < prev_best
        cycles, flash = c[front], f[front]
        parents.append(parent[front])
        choice.append(pick[front])
    return ModelFront(cycles, flash, parents, choice, [list(o) for o in layers])


def _reduce(
    c: np.ndarray, f: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (cycles, flash) front of the points, smallest flash first."""
    order = np.lexsort((c, f))
    c, f, counts = c[order], f[order], counts[order]
    prev_best = np.minimum.accumulate(np.concatenate(([np.inf], c[:-1])))
    keep = c < prev_best
    return c[keep], f[keep], counts[keep]


def group_front(options: Sequence[Option], members: int) -> list[list[int]]:
    """The exact (cycles, flash) front of ``members`` interchangeable layers choosing
    among ``options``, where the layers that pick the same option store its shared
    bytes once. Each point is returned as the members' picks (indices into options)."""
    k = len(options)
    fronts: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = [None] * (members + 1)
    fronts[0] = (np.zeros(1), np.zeros(1, np.int64), np.zeros((1, k), np.int64))
    for j, o in enumerate(options):
        step: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [
            [] for _ in range(members + 1)
        ]
        for n, state in enumerate(fronts):
            if state is None:
                continue
            c, f, counts = state
            for take in range(members - n + 1):
                add = counts.copy()
                add[:, j] += take
                extra = take * (o.flash - o.shared) + (o.shared if take else 0)
                step[n + take].append((c + take * o.cycles, f + extra, add))
        fronts = [
            _reduce(*(np.concatenate(parts) for parts in zip(*s, strict=True))) if s else None
            for s in step
        ]
    last = fronts[members]
    assert last is not None
    return [[j for j in range(k) for _ in range(int(row[j]))] for row in last[2]]


@dataclass
class _Unit:
    """A layer, or a group of interchangeable layers sharing code: merged as one."""

    members: list[int]  # positions in the model's layer list
    options: list[Option]  # for a group: ref = each member's pick (an index into its list)
    lists: list[Sequence[Option]] = field(default_factory=list)  # a group's members' options


def _same(o: Option) -> tuple[float, int, int]:
    """What must agree for layers to be interchangeable (RAM is a per-layer filter)."""
    return (o.cycles, o.flash, o.shared)


def _units(layers: Sequence[LayerChoices], allowed: Sequence[Sequence[Option]]) -> list[_Unit]:
    groups: dict[Any, list[int]] = {}
    for i, (layer, opts) in enumerate(zip(layers, allowed, strict=True)):
        if layer.group is not None and any(o.shared for o in opts):
            groups.setdefault((layer.group, tuple(map(_same, opts))), []).append(i)
    units: list[_Unit] = []
    grouped = {i for members in groups.values() if len(members) > 1 for i in members}
    for i, opts in enumerate(allowed):
        if i not in grouped:
            units.append(_Unit([i], pareto(opts)))
    for members in groups.values():
        if len(members) < 2:
            continue
        first = allowed[members[0]]
        keep = _group_candidates(first)
        points = group_front([first[j] for j in keep], len(members))
        options = []
        for point in points:
            picks = [keep[j] for j in point]
            chosen = [[allowed[m][j] for m, j in zip(members, picks, strict=True)]]
            options.append(
                Option(
                    sum(first[j].cycles for j in picks),
                    _flash(first, picks),
                    max(o.ram for o in chosen[0]),
                    ref=picks,
                )
            )
        units.append(_Unit(members, options, [allowed[m] for m in members]))
    return units


def _flash(options: Sequence[Option], picks: Sequence[int]) -> int:
    """Flash of a group's picks: shared bytes once per distinct option."""
    own = sum(options[j].flash - options[j].shared for j in picks)
    return own + sum(options[j].shared for j in set(picks))


def _group_candidates(options: Sequence[Option]) -> list[int]:
    """The options no other beats in cycles, own flash and shared flash at once."""
    out: list[int] = []
    order = sorted(range(len(options)), key=lambda j: (_same(options[j])[1:], options[j].cycles, j))
    for j in order:
        o = options[j]
        if any(
            p.cycles <= o.cycles
            and p.flash - p.shared <= o.flash - o.shared
            and p.shared <= o.shared
            for p in (options[i] for i in out)
        ):
            continue
        out.append(j)
    return out


def _solve(
    layers: Sequence[LayerChoices],
    allowed: Sequence[Sequence[Option]],
    fixed_flash: int,
    max_flash: float | None = None,
    max_cycles: float | None = None,
) -> tuple[ModelFront, list[_Unit]]:
    units = _units(layers, allowed)
    front = merge_fronts([u.options for u in units], fixed_flash, max_flash, max_cycles)
    return front, units


def _picks(front: ModelFront, units: list[_Unit], i: int, n: int) -> list[Option]:
    """The model's point i as one option per layer, in layer order."""
    out: list[Option | None] = [None] * n
    for unit, pick in zip(units, front.picks(i), strict=True):
        if not unit.lists:
            out[unit.members[0]] = pick
        else:
            for member, opts, j in zip(unit.members, unit.lists, pick.ref, strict=True):
                out[member] = opts[j]
    assert all(p is not None for p in out)
    return out  # type: ignore[return-value]


def selection_flash(layers: Sequence[LayerChoices], picks: Sequence[Option]) -> int:
    """The flash of the picks (fixed part apart) with shared bytes counted once per
    group and option, as the solver counts them."""
    units = _units(layers, [layer.options for layer in layers])
    total = 0
    for unit in units:
        if not unit.lists:
            total += picks[unit.members[0]].flash
            continue
        chosen = [
            next(j for j, o in enumerate(opts) if o is picks[m])
            for m, opts in zip(unit.members, unit.lists, strict=True)
        ]
        total += _flash(unit.lists[0], chosen)
    return total


def _ram(layers: Sequence[LayerChoices], picks: Sequence[Option], fixed_ram: int) -> int:
    return fixed_ram + max(
        (layer.live_bytes + p.ram for layer, p in zip(layers, picks, strict=True)), default=0
    )


def smallest(layers: Sequence[LayerChoices], fixed_flash: int, fixed_ram: int) -> tuple[int, int]:
    """The least flash any choice needs, and the least RAM any choice needs."""
    units = _units(layers, [layer.options for layer in layers])
    flash = fixed_flash + sum(min(o.flash for o in unit.options) for unit in units)
    ram = fixed_ram + max(
        (layer.live_bytes + min(o.ram for o in layer.options) for layer in layers), default=0
    )
    return flash, ram


def _infeasible(
    what: str, layers: Sequence[LayerChoices], fixed_flash: int, fixed_ram: int
) -> InfeasibleBudget:
    flash, ram = smallest(layers, fixed_flash, fixed_ram)
    return InfeasibleBudget(
        f"{what} cannot be met: the smallest library needs {flash:,} B of flash "
        f"and {ram:,} B of RAM"
    )


def _describe(budget: Budget) -> str:
    parts = []
    if budget.flash is not None:
        parts.append(f"flash budget {budget.flash:,} B")
    if budget.ram is not None:
        parts.append(f"RAM budget {budget.ram:,} B")
    if budget.cycles is not None:
        parts.append(f"cycle budget {budget.cycles:,.0f}")
    return " and ".join(parts) or "the budget"


def choose(
    layers: Sequence[LayerChoices],
    budget: Budget,
    fixed_flash: int = 0,
    fixed_ram: int = 0,
) -> Selection:
    """The exact optimum of budget.objective under the other budgets.

    fixed_flash is what the library holds besides the layers' options (other ops,
    startup code); fixed_ram is RAM outside the arena (state).
    """
    if budget.objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {budget.objective}")
    if any(not layer.options for layer in layers):
        raise ValueError("every layer needs at least one option")
    ram_left = None if budget.ram is None else budget.ram - fixed_ram
    if budget.objective == "ram":
        return _min_ram(layers, budget, fixed_flash, fixed_ram)
    allowed = [layer.within(ram_left) for layer in layers]
    if any(not opts for opts in allowed):
        raise _infeasible(_describe(budget), layers, fixed_flash, fixed_ram)
    front, units = _solve(
        layers,
        allowed,
        fixed_flash,
        max_flash=budget.flash,
        max_cycles=budget.cycles if budget.objective != "cycles" else None,
    )
    if not len(front):
        raise _infeasible(_describe(budget), layers, fixed_flash, fixed_ram)
    # The front is ordered by flash with cycles falling: the last point is the fastest,
    # the first the smallest.
    i = len(front) - 1 if budget.objective == "cycles" else 0
    picks = _picks(front, units, i, len(layers))
    return Selection(
        picks, float(front.cycles[i]), int(front.flash[i]), _ram(layers, picks, fixed_ram)
    )


def _min_ram(
    layers: Sequence[LayerChoices], budget: Budget, fixed_flash: int, fixed_ram: int
) -> Selection:
    """Least peak RAM: the smallest peak whose per-layer filter still leaves a choice
    within the flash and cycle budgets (then the fewest cycles at that peak)."""
    peaks = sorted(
        {fixed_ram + layer.live_bytes + o.ram for layer in layers for o in layer.options}
    )
    if budget.ram is not None:
        peaks = [p for p in peaks if p <= budget.ram]
    for peak in peaks:
        allowed = [layer.within(peak - fixed_ram) for layer in layers]
        if any(not opts for opts in allowed):
            continue
        front, units = _solve(layers, allowed, fixed_flash, budget.flash, budget.cycles)
        if len(front):
            i = len(front) - 1
            picks = _picks(front, units, i, len(layers))
            return Selection(
                picks, float(front.cycles[i]), int(front.flash[i]), _ram(layers, picks, fixed_ram)
            )
    raise _infeasible(_describe(budget), layers, fixed_flash, fixed_ram)


def model_front(
    layers: Sequence[LayerChoices], fixed_flash: int = 0, ram_budget: int | None = None
) -> list[tuple[float, int]]:
    """The whole model's (cycles, flash) front within a RAM budget, smallest flash first."""
    allowed = [layer.within(ram_budget) for layer in layers]
    if any(not opts for opts in allowed):
        return []
    front, _ = _solve(layers, allowed, fixed_flash)
    return [(float(c), int(f)) for c, f in zip(front.cycles, front.flash, strict=True)]


def parse_bytes(text: str) -> int:
    """'43000', '42KiB', '1.5 MiB', '64K' -> bytes (K/KiB = 1024, M/MiB = 1024^2)."""
    s = text.strip().replace(" ", "").replace("_", "").replace(",", "")
    units = {"mib": 1 << 20, "m": 1 << 20, "kib": 1024, "k": 1024, "b": 1, "": 1}
    lower = s.lower()
    for unit in sorted(units, key=len, reverse=True):
        if unit and lower.endswith(unit):
            number, scale = lower[: -len(unit)], units[unit]
            break
    else:
        number, scale = lower, 1
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"'{text}' is not a size (use bytes, KiB or MiB, e.g. 42KiB)") from None
    if value < 0:
        raise ValueError(f"'{text}' is negative")
    return round(value * scale)
