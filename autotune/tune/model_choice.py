"""The whole model's variants: one per tuned layer, the fastest mix within the budgets.

Every bit-exact trial of a layer's workload is an option (cycles, flash = code +
constants, RAM = the scratch it adds to the arena). front.choose() picks the exact
optimum; each pick is then verified with the layer's own values (weights,
requantization). A pick that fails is rejected with its reason and the choice is
made again without it, so a layer falls back to its next-best variant, down to
the baseline. With a flash or RAM budget the chosen library is emitted and built
once more and its real flash and arena are checked against the budget: the
per-variant figures are measured on the variant alone, the budget is on what ships.

Layers of one workload (same shape and template space) that pick the same variant
run one function when the sharing is measured to cost at most 1% of cycles
(SHARE_TOLERANCE), and constants they all read are stored once: the choice counts
such bytes once per group (front.group_front), and a variant whose sharing costs
more is counted (and emitted) per layer again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from autotune.db import ResultsDB, Trial
from autotune.emit.planner import ALIGN
from autotune.platform.target import Target
from autotune.tune.front import (
    Budget,
    InfeasibleBudget,
    LayerChoices,
    Option,
    choose,
    model_front,
    selection_flash,
)
from autotune.tune.search import StudyContext, flash_bytes, flash_cap, known_trials, objective_value
from autotune.tune.spec import KernelSpec
from autotune.tune.template import KernelTemplate

MAX_ROUNDS = 4  # re-choices after the built library missed the budget
SHARE_TOLERANCE = 0.01  # one function for several layers only if at most 1% slower


@dataclass
class Rejection:
    """A variant that was chosen for a layer and did not ship, and why."""

    layer: int
    template: str
    params: str
    reason: str


@dataclass
class SharedPick:
    """A variant several layers of one workload picked: one function for all of them
    if ``ok`` (its measured cycles within SHARE_TOLERANCE of the per-layer code)."""

    layers: list[int]
    template: str
    params: str
    ok: bool
    reason: str = ""  # why not shared, or what sharing measured


@dataclass
class Pieces:
    """What the layers of a group store once when they all pick one variant."""

    code: bool  # the same code for all: one function fits (the variant's code bytes)
    data: int  # per further layer, the constant bytes stored once (share.shared_bytes)


class Sharing(Protocol):
    def pieces(self, members: list[LayerInput], trial: Trial) -> Pieces: ...

    def cost(self, members: list[LayerInput], trial: Trial) -> tuple[bool, str]:
        """Whether the shared function is bit-exact and at most SHARE_TOLERANCE slower
        than the per-layer code, and what was measured (one line)."""
        ...


@dataclass
class Footprint:
    """What a library needs, read from its build: flash of the ELF, arena + state."""

    flash: int
    ram: int


@dataclass
class FusedPick:
    """A residual block the choice runs row by row (emit/fuse.py): its three layers in one
    function, measured as such (tune/fused.py)."""

    layers: list[int]  # first convolution, second, ADD
    cycles: float
    flash: int
    scratch: int
    metric: str


@dataclass
class ModelChoice:
    """The outcome: the trial per layer, the model's front and what was rejected."""

    picks: dict[int, Trial]
    budget: Budget
    cycles: float  # sum over the tuned layers of their chosen variants
    estimated_flash: int  # fixed part + the picks' flash (the front's axis)
    flash: int | None  # the built library's flash (with a budget), else None
    ram: int | None
    baseline_cycles: float
    baseline_flash: int | None
    fastest_cycles: float  # every layer at its fastest verified variant, no budget
    front: list[tuple[float, int]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    forced: list[str] = field(default_factory=list)  # layers the budget held below their best
    shared: list[SharedPick] = field(default_factory=list)  # functions run by several layers
    defaults: list[str] = field(default_factory=list)  # budgets set for the user, and why
    fused: list[FusedPick] = field(default_factory=list)  # blocks run row by row

    @property
    def share_layers(self) -> set[int]:
        """The layers that run a function shared with others (Choice.share)."""
        return {i for s in self.shared if s.ok for i in s.layers}

    def as_json(self) -> dict[str, Any]:
        return {
            "objective": self.budget.objective,
            "flash_budget": self.budget.flash,
            "ram_budget": self.budget.ram,
            "cycle_budget": self.budget.cycles,
            "cycles": self.cycles,
            "estimated_flash": self.estimated_flash,
            "flash": self.flash,
            "ram": self.ram,
            "baseline_cycles": self.baseline_cycles,
            "baseline_flash": self.baseline_flash,
            "fastest_cycles": self.fastest_cycles,
            "front": [{"cycles": c, "flash": f} for c, f in self.front],
            "rejected": [dataclasses.asdict(r) for r in self.rejected],
            "forced": self.forced,
            "shared": [dataclasses.asdict(s) for s in self.shared],
            "defaults": self.defaults,
            "fused": [dataclasses.asdict(f) for f in self.fused],
        }


@dataclass
class LayerInput:
    """One tuned layer as the choice sees it."""

    index: int
    spec: KernelSpec
    templates: dict[str, KernelTemplate]
    trials: list[Trial]  # bit-exact on the workload, within --flash-limit
    baseline: Trial | None
    fastest: float | None = None  # the fastest bit-exact trial, --flash-limit or not
    group: str | None = None  # the workload: layers of one group may share code and data


def layer_input(
    index: int,
    spec: KernelSpec,
    templates: dict[str, KernelTemplate],
    db: ResultsDB,
    ctx: StudyContext,
    flash_limit: float | None,
) -> LayerInput:
    known = known_trials(db, spec, list(templates.values()), ctx)
    cap = flash_cap(known, flash_limit)
    ok = [
        t
        for t in known.values()
        if t.status == "ok"
        and objective_value(t) is not None
        and (cap is None or t.is_baseline or flash_bytes(t) <= cap)
    ]
    ok.sort(key=lambda t: (objective_value(t), flash_bytes(t), t.id))
    baseline = next((t for t in ok if t.is_baseline), None)
    every = [objective_value(t) for t in known.values() if t.status == "ok"]
    fastest = min((v for v in every if v is not None), default=None)
    return LayerInput(index, spec, templates, ok, baseline, fastest, spec.workload_key())


def _option(
    layer: LayerInput, trial: Trial, target: Target, saving: int = 0, shared: int = 0
) -> Option:
    """saving: the arena an in-place variant of this layer frees (its output over its
    input), where the plan allows it there; shared: its bytes stored once for the group."""
    template = layer.templates[trial.template]
    params = json.loads(trial.params)
    scratch = template.scratch_bytes(layer.spec, target, params)
    freed = saving if template.in_place(layer.spec, target, params) else 0
    return Option(
        cycles=float(objective_value(trial) or 0),
        flash=flash_bytes(trial),
        ram=-(-scratch // ALIGN) * ALIGN - freed,  # as the planner places it
        ref=trial,
        baseline=trial.is_baseline,
        shared=min(shared, flash_bytes(trial)),
    )


def part_budget(part: Any) -> Budget:
    """What a part leaves the model by default: half the memory its code and constants
    may be placed in, and half of what its data may (the other half is the application's)."""
    flash, ram = part.capacity()
    return Budget(flash=flash // 2 or None, ram=ram // 2 or None)


Verify = Callable[[LayerInput, Trial], str | None]  # None: bit-exact, else why not
# Builds the library of these picks, the given layers running shared functions.
Measure = Callable[[dict[int, Trial], set[int]], Footprint]


@dataclass
class Layout:
    """The library around the tuned layers: fixed flash and RAM, activations per layer."""

    fixed_flash: int
    fixed_ram: int
    live: dict[int, int]
    # Per layer, the bytes its input and output save where they overlap (in place): only
    # where its input is read for the last time there and neither is the caller's.
    inplace_saving: dict[int, int] = field(default_factory=dict)
    # The baseline library's own flash: with it, the fixed part is what it holds besides
    # the tuned layers' baselines as the choice counts them (constants stored once).
    baseline_flash: int | None = None


def choose_model(
    layers: list[LayerInput],
    target: Target,
    budget: Budget,
    verify: Verify,
    layout: Layout | None = None,
    measure: Measure | None = None,
    sharing: Sharing | None = None,
) -> ModelChoice:
    """The optimum under the budget whose every pick is bit-exact on its layer."""
    rejected: list[Rejection] = []
    excluded: set[tuple[int, int]] = set()
    fixed_flash = layout.fixed_flash if layout else 0
    fixed_ram = layout.fixed_ram if layout else 0
    live = layout.live if layout else {}
    saving = layout.inplace_saving if layout else {}
    effective = dataclasses.replace(budget)
    live_layers = [layer for layer in layers if layer.trials]
    verified: set[tuple[int, int]] = set()
    footprint: Footprint | None = None
    groups: dict[str, list[LayerInput]] = {}
    if sharing is not None:
        for layer in live_layers:
            if layer.group is not None:
                groups.setdefault(layer.group, []).append(layer)
    groups = {k: v for k, v in groups.items() if len(v) > 1}
    pieces: dict[tuple[str, int], Pieces] = {}
    measured: dict[tuple[str, int], tuple[bool, str]] = {}  # sharing's cost, per variant

    def shared(layer: LayerInput, trial: Trial, code: bool = True) -> int:
        members = groups.get(layer.group or "")
        if not members or sharing is None:
            return 0
        key = (layer.group or "", trial.id)
        if key not in pieces:
            pieces[key] = sharing.pieces(members, trial)
        p = pieces[key]
        code = code and p.code and measured.get(key, (True, ""))[0]
        return (trial.code_bytes or 0 if code else 0) + p.data

    def share_layers(picks: dict[int, Trial]) -> set[int]:
        return {i for i, key in takers(picks).items() if measured.get(key, (False, ""))[0]}

    def takers(picks: dict[int, Trial]) -> dict[int, tuple[str, int]]:
        """Layers whose pick another layer of their group picked too, and its key."""
        count: dict[tuple[str, int], int] = {}
        keys = {}
        for layer in live_layers:
            if layer.group in groups:
                keys[layer.index] = (layer.group or "", picks[layer.index].id)
                count[keys[layer.index]] = count.get(keys[layer.index], 0) + 1
        return {i: k for i, k in keys.items() if count[k] > 1}

    if layout is not None and layout.baseline_flash is not None:
        # The baseline library stores shared constants once too (not shared code).
        base = [layer for layer in live_layers if layer.baseline is not None]
        base_choices = [
            LayerChoices(
                f"layer {layer.index}",
                [
                    _option(
                        layer, layer.baseline, target, shared=shared(layer, layer.baseline, False)
                    )
                ],
                group=layer.group,
            )
            for layer in base
            if layer.baseline is not None
        ]
        fixed_flash = layout.baseline_flash - selection_flash(
            base_choices, [c.options[0] for c in base_choices]
        )

    for _round in range(MAX_ROUNDS + 1):
        while True:
            choices = [
                LayerChoices(
                    f"layer {layer.index}",
                    [
                        _option(layer, t, target, saving.get(layer.index, 0), shared(layer, t))
                        for t in layer.trials
                        if (layer.index, t.id) not in excluded
                    ],
                    live.get(layer.index, 0),
                    group=layer.group if layer.group in groups else None,
                )
                for layer in live_layers
            ]
            empty = [c for c, layer in zip(choices, live_layers, strict=True) if not c.options]
            if empty:
                # Not even the baseline is bit-exact here: the library keeps TFLM's loop.
                gone = {id(c) for c in empty}
                live_layers = [
                    layer
                    for c, layer in zip(choices, live_layers, strict=True)
                    if id(c) not in gone
                ]
                continue
            selection = choose(choices, effective, fixed_flash, fixed_ram)
            failed = False
            for layer, option in zip(live_layers, selection.picks, strict=True):
                trial: Trial = option.ref
                if (layer.index, trial.id) in verified:
                    continue
                reason = verify(layer, trial)
                if reason is None:
                    verified.add((layer.index, trial.id))
                    continue
                rejected.append(Rejection(layer.index, trial.template, trial.params, reason))
                excluded.add((layer.index, trial.id))
                failed = True
            if failed:
                continue
            # One function for the layers of a group that picked the same variant: only
            # where it measured within the tolerance; else they are counted apart again.
            picks = {
                layer.index: option.ref
                for layer, option in zip(live_layers, selection.picks, strict=True)
            }
            by_key: dict[tuple[str, int], list[LayerInput]] = {}
            for i, key in takers(picks).items():
                by_key.setdefault(key, []).append(next(x for x in live_layers if x.index == i))
            for key, members in by_key.items():
                if key in measured or not pieces[key].code or sharing is None:
                    continue
                measured[key] = sharing.cost(members, picks[members[0].index])
                failed = failed or not measured[key][0]
            if not failed:
                break
        picks = {
            layer.index: option.ref
            for layer, option in zip(live_layers, selection.picks, strict=True)
        }
        if measure is None or (budget.flash is None and budget.ram is None):
            break
        footprint = measure(picks, share_layers(picks))
        if footprint.flash <= (budget.flash or footprint.flash) and footprint.ram <= (
            budget.ram or footprint.ram
        ):
            break
        # The estimate was short of what the build needs: hold the estimate that much
        # under the budget (the shortfall, not the overshoot: a shortfall of 64 B and an
        # overshoot of 1 B would otherwise take 64 rounds).
        if budget.flash is not None and footprint.flash > budget.flash:
            short = max(1, footprint.flash - selection.flash)
            effective.flash = min((effective.flash or budget.flash) - 1, budget.flash - short)
        if budget.ram is not None and footprint.ram > budget.ram:
            short = max(1, footprint.ram - selection.ram)
            effective.ram = min((effective.ram or budget.ram) - 1, budget.ram - short)
    else:
        assert footprint is not None
        raise InfeasibleBudget(
            f"the budget cannot be met: the closest library built needs {footprint.flash:,} B "
            f"of flash and {footprint.ram:,} B of RAM"
        )

    baseline_cycles = sum(
        float(objective_value(layer.baseline) or 0) for layer in live_layers if layer.baseline
    )
    fastest = {
        layer.index: min(
            (
                float(objective_value(t) or 0)
                for t in layer.trials
                if (layer.index, t.id) not in excluded
            ),
            default=0.0,
        )
        for layer in live_layers
    }
    unverified_fastest = {
        layer.index: min(fastest[layer.index], layer.fastest or fastest[layer.index])
        for layer in live_layers
    }
    forced = []
    for layer in live_layers:
        t = picks[layer.index]
        cost = float(objective_value(t) or 0) - unverified_fastest[layer.index]
        if cost > 0:
            what = "the baseline" if t.is_baseline else f"{t.template} {t.params}"
            forced.append(
                f"layer {layer.index} runs {what} within the budget and flash limit: "
                f"+{cost:,.0f} cycles against its fastest variant"
            )
    baseline_flash = None
    if layout is not None and layout.baseline_flash is not None:
        baseline_flash = layout.baseline_flash
    elif layout is not None:
        baseline_flash = fixed_flash + sum(
            flash_bytes(layer.baseline) for layer in live_layers if layer.baseline
        )
    shared_picks = []
    by_key = {}
    for i, key in takers(picks).items():
        by_key.setdefault(key, []).append(i)
    for key, members in by_key.items():
        t = picks[members[0]]
        ok, note = measured.get(key, (False, "not the same code in every layer"))
        if not pieces[key].code:
            ok, note = False, "not the same code in every layer"
        shared_picks.append(SharedPick(sorted(members), t.template, t.params, ok, note))
    front = model_front(
        choices, fixed_flash, None if budget.ram is None else budget.ram - fixed_ram
    )
    return ModelChoice(
        picks=picks,
        budget=budget,
        cycles=selection.cycles,
        estimated_flash=selection.flash,
        flash=footprint.flash if footprint else None,
        ram=footprint.ram if footprint else None,
        baseline_cycles=baseline_cycles,
        baseline_flash=baseline_flash,
        fastest_cycles=sum(fastest.values()),
        front=front,
        rejected=rejected,
        forced=forced,
        shared=shared_picks,
    )


def write_front_plot(choice: ModelChoice, path: Path, metric: str, title: str) -> Path | None:
    """The model's front (cycles against flash) with the chosen point and the baseline."""
    if not choice.front:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    flash = [f for _, f in choice.front]
    cycles = [c for c, _ in choice.front]
    ax.step(flash, cycles, where="post", color="#888", linewidth=0.8)
    ax.scatter(flash, cycles, s=10, color="#1f77b4", label="front (tuned layers)")
    marks = [(choice.estimated_flash, choice.cycles, "*", "#d62728", "chosen", 80)]
    if choice.baseline_flash is not None:
        marks.append(
            (choice.baseline_flash, choice.baseline_cycles, "s", "#2ca02c", "baseline", 40)
        )
    for x, y, marker, color, label, size in marks:
        ax.scatter([x], [y], s=size, marker=marker, color=color, label=label, zorder=3)
    if choice.budget.flash is not None:
        ax.axvline(
            choice.budget.flash,
            color="#d62728",
            linestyle="--",
            linewidth=0.8,
            label="flash budget",
        )
    ax.set_xlabel("flash, bytes (library estimate: fixed part + variants)")
    ax.set_ylabel(f"tuned layers' {metric}".replace(" (", "\n("), fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
