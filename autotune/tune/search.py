"""The search for one workload on one target: one Optuna study over every applicable template.

The baseline (the plain reference-style loop) is enqueued first, so a result is
never worse than it; every template's suggested points follow, taken in turn; then TPE explores.
The study has two objectives, cycles and flash (code + constants): a variant that
is slower but smaller is worth measuring, because the whole-model choice under a
flash budget (tune/front.py) picks from each workload's Pareto front, not only its
fastest end. TPE's multi-objective mode ranks trials by non-domination, so it
proposes points near the whole front.
Every measured trial goes to the results DB at once. A study replays the points
already in the DB from their stored results instead of measuring them again, so an
interrupted search resumes and makes the same choice as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import platform
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from autotune.db import ResultsDB, Trial, TrialKey, canonical_params
from autotune.db.store import point_hash, study_hash
from autotune.db.trust import row_problem, warn_row
from autotune.platform.target import Target
from autotune.tune.space import Point, Space
from autotune.tune.spec import KernelSpec
from autotune.tune.template import KernelTemplate
from autotune.tune.variant import Evaluator, Measurement

# Failed and interrupted trials are reported by autotune itself, not by Optuna's logger.
optuna.logging.set_verbosity(optuna.logging.CRITICAL)

ProgressFn = Callable[[int, int, float | None], None]  # measured, budget, best value

# Processes sharing a DB claim a variant before measuring it; the others wait for its row.
# A claim whose owner has not been heard of for this long (killed) is taken over.
CLAIM_STALE_SECONDS = float(os.environ.get("AUTOTUNE_CLAIM_STALE", "60"))
OWNER = f"{platform.node()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class StudyContext:
    """What keys a study's trials in the DB, besides the template."""

    target: Target
    target_fingerprint: str
    toolchain: str
    runner: str
    cycle_model: str


@dataclass
class Outcome:
    """The best and the baseline variant of one workload."""

    best: Trial | None
    baseline: Trial | None
    measured: int  # variants compiled and run in this search
    cached: bool  # nothing was measured: the DB already held the whole budget


def objective_value(t: Trial | Measurement) -> float | None:
    """Cycles where a cycle model exists, else exact instructions, else code size."""
    for value in (t.cycles, t.instructions, t.code_bytes):
        if value is not None:
            return float(value)
    return None


def trial_key(spec: KernelSpec, template: KernelTemplate, ctx: StudyContext) -> TrialKey:
    return TrialKey(
        target_fingerprint=ctx.target_fingerprint,
        workload_key=spec.workload_key(),
        template=template.name,
        template_hash=template.content_hash(),
        runner=ctx.runner,
        cycle_model=ctx.cycle_model,
    )


def known_trials(
    db: ResultsDB, spec: KernelSpec, templates: list[KernelTemplate], ctx: StudyContext
) -> dict[tuple[str, str], Trial]:
    """Trials in the DB for this workload on this target, by (template, canonical params).

    A row whose parameters are not a point of the template's declared space for this
    layer (or whose fields are malformed) is ignored with a warning: it never renders."""
    out = {}
    for template in templates:
        space = template.space(spec, ctx.target)
        for t in db.trials(trial_key(spec, template, ctx)):
            problem = row_problem(t, space)
            if problem:
                warn_row(db.name, t, problem)
                continue
            out[(template.name, t.params)] = t
    return out


def flash_bytes(t: Trial | Measurement) -> int:
    """What a variant adds to flash: its code and its constants (weights, tables)."""
    return (t.code_bytes or 0) + (t.rodata_bytes or 0)


def flash_cap(trials: dict[tuple[str, str], Trial], limit: float | None) -> float | None:
    """limit x the baseline's flash bytes, once the baseline is measured."""
    if limit is None:
        return None
    base = [t for t in trials.values() if t.is_baseline and t.status == "ok"]
    return limit * flash_bytes(base[0]) if base else None


def eligible_value(t: Trial, cap: float | None) -> float | None:
    """The objective of a bit-exact trial within the flash cap (the baseline always is)."""
    value = objective_value(t) if t.status == "ok" else None
    if value is not None and cap is not None and not t.is_baseline and flash_bytes(t) > cap:
        return None
    return value


def ranked(trials: dict[tuple[str, str], Trial], flash_limit: float | None = None) -> list[Trial]:
    """Measured, bit-exact trials within the flash limit, best first."""
    cap = flash_cap(trials, flash_limit)
    ok = [t for t in trials.values() if eligible_value(t, cap) is not None]
    return sorted(ok, key=lambda t: (objective_value(t), t.id))


class WorkloadSearch:
    def __init__(
        self,
        spec: KernelSpec,
        templates: list[KernelTemplate],
        ctx: StudyContext,
        db: ResultsDB,
        evaluator: Evaluator,
        seed: int = 0,
        flash_limit: float | None = None,
    ) -> None:
        self.spec = spec
        self.ctx = ctx
        self.db = db
        self.evaluator = evaluator
        self.seed = seed
        self.flash_limit = flash_limit
        self.templates = {t.name: t for t in templates if t.applies(spec, ctx.target)}
        if not self.templates:
            raise ValueError(f"no template applies to layer {spec.layer_index} ({spec.op})")
        self.spaces: dict[str, Space] = {
            name: t.space(spec, ctx.target) for name, t in self.templates.items()
        }
        self.workload_json = json.dumps(spec.workload(), sort_keys=True)

    def key(self, name: str) -> TrialKey:
        return trial_key(self.spec, self.templates[name], self.ctx)

    def known(self) -> dict[tuple[str, str], Trial]:
        return known_trials(self.db, self.spec, list(self.templates.values()), self.ctx)

    def baseline_point(self) -> tuple[str, Point]:
        """The reference-style loop: the first template's baseline."""
        name = next(iter(self.templates))
        return name, self.spaces[name].baseline()

    def suggested(self) -> list[tuple[str, Point]]:
        """Every template's expert points, taken in turn (each template's first, then
        each one's second...), so that a small budget still tries every template that
        applies, a plugin's as well as the built-in ones."""
        lists = [
            [
                (name, p)
                for p in getattr(t, "suggestions", lambda *_: [])(self.spec, self.ctx.target)
            ]
            for name, t in self.templates.items()
        ]
        return [pair for row in itertools.zip_longest(*lists) for pair in row if pair is not None]

    def forget(self) -> int:
        return sum(self.db.drop(self.key(name)) for name in self.templates)

    def claim_or_wait(self, name: str, point: Point) -> Trial | None:
        """None once this process holds the claim on the point (it measures it); or the
        point's row, when another process sharing the DB measured it meanwhile."""
        key, params = self.key(name), canonical_params(point)
        claim = point_hash(key, params)
        c = self.ctx
        study = study_hash(c.target_fingerprint, self.spec.workload_key(), c.runner, c.cycle_model)
        while True:
            row = self.db.trial(key, point)
            if row is None and self.db.claim(claim, study, OWNER, CLAIM_STALE_SECONDS):
                row = self.db.trial(key, point)  # finished just before the claim?
                if row is None:
                    return None
                self.db.release(claim, OWNER)
            if row is not None:
                problem = row_problem(row, self.spaces[name])
                if problem:
                    warn_row(self.db.name, row, problem)
                    raise optuna.TrialPruned(f"stored row unusable: {problem}")
                return row
            time.sleep(0.2)  # another process is measuring it

    def run(
        self, budget: int, timeout: float | None = None, progress: ProgressFn | None = None
    ) -> Outcome:
        known = self.known()
        measured_before = sum(1 for t in known.values() if t.status != "constraint")
        if measured_before >= budget and not self._unseen_openers(known, budget):
            return self._outcome(known, 0, cached=True)
        with _Heartbeat(self.db):
            return self._search(known, budget, timeout, progress)

    def _unseen_openers(self, known: dict[tuple[str, str], Trial], budget: int) -> bool:
        """Whether a template the study opens with (baseline, then suggestions, within
        the budget) has no trial at all for this workload: a template added since the DB
        was filled (a new version, a plugin) is tried even where the workload already
        has its trials. (A point lost with a killed worker is not a reason.)"""
        openers: list[tuple[str, str]] = []
        for name, point in [self.baseline_point(), *self.suggested()]:
            pair = (name, canonical_params(point))
            if pair not in openers and not self.spaces[name].check(point):
                openers.append(pair)
        tried = {name for name, _ in known}
        return any(name not in tried for name, _ in openers[:budget])

    def _search(
        self,
        known: dict[tuple[str, str], Trial],
        budget: int,
        timeout: float | None,
        progress: ProgressFn | None,
    ) -> Outcome:

        # The study always starts from the seed alone and replays the points already in the
        # DB from their stored results instead of measuring them, so the sequence of points
        # (and the choice) is a function of the seed, never of where earlier runs stopped.
        study = optuna.create_study(
            directions=["minimize", "minimize"],
            sampler=optuna.samplers.TPESampler(seed=self.seed),
        )
        base_name, base = self.baseline_point()
        study.enqueue_trial(self._flat(base_name, base), skip_if_exists=True)
        for name, point in self.suggested():
            study.enqueue_trial(self._flat(name, point), skip_if_exists=True)

        state = {"measured": 0, "best": _best_value(known)}
        evaluated: set[tuple[str, str]] = set()

        def count(name: str, params: str, trial: optuna.Trial) -> None:
            """This study's distinct points (replayed or measured) are its budget."""
            evaluated.add((name, params))
            if len(evaluated) >= budget:
                trial.study.stop()

        deadline = None if timeout is None else time.monotonic() + timeout

        def objective(trial: optuna.Trial) -> tuple[float, float]:
            name = trial.suggest_categorical("template", list(self.templates))
            space = self.spaces[name]
            point = {
                p.name: trial.suggest_categorical(f"{name}:{p.name}", list(p.choices))
                for p in space.params
            }
            reason = space.check(point)
            if reason:
                raise optuna.TrialPruned(reason)
            hit = known.get((name, canonical_params(point)))
            if hit is None:
                hit = self.claim_or_wait(name, point)
                if hit is not None:
                    known[(name, hit.params)] = hit
            if hit is not None:
                count(name, hit.params, trial)
                value = eligible_value(hit, flash_cap(known, self.flash_limit))
                if value is None:
                    raise optuna.TrialPruned(hit.reason or "over the flash limit")
                return value, float(flash_bytes(hit))
            try:
                trial_row = self._measure(name, point, base_name, base)
            finally:
                self.db.release(point_hash(self.key(name), canonical_params(point)), OWNER)
            known[(name, trial_row.params)] = trial_row
            state["measured"] += 1
            # Measured and kept either way; over --flash-limit it is not eligible.
            value = eligible_value(trial_row, flash_cap(known, self.flash_limit))
            if value is not None and (state["best"] is None or value < state["best"]):
                state["best"] = value
            count(name, trial_row.params, trial)
            if progress:
                progress(len(evaluated), budget, state["best"])
            if value is None:
                raise optuna.TrialPruned(trial_row.reason or "over the flash limit")
            return value, float(flash_bytes(trial_row))

        def stop_when_late(study: optuna.Study, _t: optuna.trial.FrozenTrial) -> None:
            if deadline is not None and time.monotonic() > deadline:
                study.stop()

        # Points the sampler proposes again, or that break a constraint, cost no
        # measurement; cap the attempts so a small space ends the search.
        attempts = 20 * budget + 100
        study.optimize(objective, n_trials=attempts, callbacks=[stop_when_late], catch=())
        return self._outcome(known, state["measured"], cached=False)

    def measure_point(self, name: str, point: Point) -> Trial:
        """Measure and record one point outside a study (one the whole-model choice needs)."""
        base_name, base = self.baseline_point()
        return self._measure(name, point, base_name, base)

    def _measure(self, name: str, point: Point, base_name: str, base: Point) -> Trial:
        m = self.evaluator.evaluate(self.templates[name], point)
        return self.db.record(
            self.key(name),
            point,
            m.status,
            target=self.ctx.target.name,
            toolchain=self.ctx.toolchain,
            workload=self.workload_json,
            reason=m.reason,
            cycles=m.cycles,
            instructions=m.instructions,
            code_bytes=m.code_bytes,
            rodata_bytes=m.rodata_bytes,
            stack_bytes=m.stack_bytes,
            is_baseline=(name, point) == (base_name, base),
            seconds=m.seconds,
            values_hash=self.spec.values_hash(),
        )

    def _outcome(self, known: dict[tuple[str, str], Trial], measured: int, cached: bool) -> Outcome:
        order = ranked(known, self.flash_limit)
        best = order[0] if order else None
        base_name, base = self.baseline_point()
        baseline = known.get((base_name, canonical_params(base)))
        return Outcome(best=best, baseline=baseline, measured=measured, cached=cached)

    def _flat(self, name: str, point: Point) -> dict[str, Any]:
        return {"template": name, **{f"{name}:{k}": v for k, v in point.items()}}


class _Heartbeat:
    """Keeps this process's claims alive while it measures (a thread, every few seconds)."""

    def __init__(self, db: ResultsDB) -> None:
        self.db = db
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(CLAIM_STALE_SECONDS / 6):
            # A missed beat only lets another process take a claim over.
            with contextlib.suppress(Exception):
                self.db.heartbeat(OWNER)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def _best_value(known: dict[tuple[str, str], Trial]) -> float | None:
    values = [objective_value(t) for t in known.values() if t.status == "ok"]
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return min(finite) if finite else None
