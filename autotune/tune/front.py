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


def _ram(layers: Sequence[LayerChoices], picks: Sequence[Option], fixed_ram: int) -> int:
    return fixed_ram + max(
        (layer.live_bytes + p.ram for layer, p in zip(layers, picks, strict=True)), default=0
    )


def smallest(layers: Sequence[LayerChoices], fixed_flash: int, fixed_ram: int) -> tuple[int, int]:
    """The least flash any choice needs, and the least RAM any choice needs."""
    flash = fixed_flash + sum(min(o.flash for o in layer.options) for layer in layers)
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
    front = merge_fronts(
        [pareto(o) for o in allowed],
        fixed_flash,
        max_flash=budget.flash,
        max_cycles=budget.cycles if budget.objective != "cycles" else None,
    )
    if not len(front):
        raise _infeasible(_describe(budget), layers, fixed_flash, fixed_ram)
    # The front is ordered by flash with cycles falling: the last point is the fastest,
    # the first the smallest.
    i = len(front) - 1 if budget.objective == "cycles" else 0
    picks = front.picks(i)
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
        front = merge_fronts([pareto(o) for o in allowed], fixed_flash, budget.flash, budget.cycles)
        if len(front):
            i = len(front) - 1
            picks = front.picks(i)
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
    front = merge_fronts([pareto(o) for o in allowed], fixed_flash)
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
