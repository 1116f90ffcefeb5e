"""`autotune MODEL --target T`: tune every tunable layer of a model, verify, cache, report.

Identical workloads are tuned once (in parallel with --jobs); every layer's
chosen variant is verified bit-exact with that layer's own weights before it is
reported, and its C source is written to the output folder.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.db import ResultsDB, Trial
from autotune.db.store import canonical_params
from autotune.emit import fuse
from autotune.errors import AutotuneError, describe_unsupported
from autotune.model.graph import Graph
from autotune.model.stats import layer_macs, layer_params
from autotune.model.tflite_import import load_model
from autotune.opdef import SPEC_BUILDERS
from autotune.platform import plugins, toolchain
from autotune.platform.parts import apply_part
from autotune.platform.target import Target
from autotune.reference.executor import unsupported_reason
from autotune.tune.fit import check_fits, flash_room
from autotune.tune.front import Budget, InfeasibleBudget
from autotune.tune.model_choice import (
    LayerInput,
    Layout,
    Measure,
    ModelChoice,
    choose_model,
    layer_input,
)
from autotune.tune.search import (
    Outcome,
    StudyContext,
    WorkloadSearch,
    flash_bytes,
    known_trials,
    objective_value,
)
from autotune.tune.sharing import LayerSharing
from autotune.tune.spec import KernelSpec, build_spec
from autotune.tune.template import KernelTemplate
from autotune.tune.variant import CheckSet, Evaluator, model_activations


@dataclass
class TuneOptions:
    target: str
    trials: int = 40
    jobs: int = 1
    timeout: float | None = None
    db_url: str | None = None
    retune: bool = False
    seed: int = 0
    flash_limit: float | None = None  # x the baseline's code + constants, per layer
    runner: str | None = None  # measure with this runner instead of the target's default
    part: str | None = None  # time on this part's memory system (name, board or .json preset)
    budget: Budget = field(default_factory=Budget)  # whole-model flash / RAM / cycle budget
    # Read-only result sources under db_url, searched in order (URLs, .jsonl, "shipped").
    readonly: tuple[str, ...] = ()

    def open_db(self) -> ResultsDB:
        """The read-write DB with its read-only sources (none with --retune: measure again)."""
        return ResultsDB(self.db_url, () if self.retune else self.readonly)


def resolve_target(options: TuneOptions) -> Target:
    """The target to tune, measured by ``options.runner`` where one is given, timed on
    ``options.part``'s memory system where one is given."""
    target = plugins.get_target(options.target)
    if options.part:
        target = apply_part(target, plugins.get_part(options.part))
    if options.runner and options.runner != target.runner:
        runner = plugins.get_runner(options.runner)
        reason = runner.supports(target)
        if reason:
            raise AutotuneError(f"runner '{runner.name}' cannot run {target.name}: {reason}")
        target = dataclasses.replace(target, runner=runner.name)
    return target


@dataclass
class LayerResult:
    index: int
    op: str
    macs: int
    status: str  # tuned, not-tuned, unsupported
    note: str = ""
    spec: KernelSpec | None = None
    best: Trial | None = None
    baseline: Trial | None = None
    cache_hit: bool = False
    bit_exact: bool = False
    verified_now: bool = False
    # Why variants of this workload failed: kind -> {count, first message}.
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ModelRun:
    graph: Graph
    target: Target
    context: StudyContext
    metric: str
    layers: list[LayerResult] = field(default_factory=list)
    measured: int = 0
    choice: ModelChoice | None = None


class Events:
    """Progress callbacks: the CLI shows them; tests may ignore them."""

    def workloads(self, count: int, budget: int) -> None: ...
    def names(self, names: dict[str, str]) -> None: ...
    def progress(self, key: str, measured: int, budget: int, best: float | None) -> None: ...
    def workload_done(self, key: str, outcome: Outcome) -> None: ...
    def note(self, text: str) -> None:
        """A step outside the searches that measures (one line: it may take minutes)."""


def templates_for(op: str) -> list[KernelTemplate]:
    return [t for t in plugins.get_kernels().values() if getattr(t, "op", None) == op]


def study_context(target: Target) -> StudyContext:
    runner = plugins.get_runner(target.runner)
    reason = runner.available()
    if reason:
        raise AutotuneError(f"target {target.name}: runner '{runner.name}' unavailable: {reason}")
    toolchain.require_compiler(target)
    ident = toolchain.compiler_identity(target)
    return StudyContext(
        target=target,
        target_fingerprint=toolchain.fingerprint(target).key(),
        toolchain=f"{ident.command} {ident.version}",
        runner=runner.name,
        cycle_model=target.cycle_model or "",
    )


def _classify(graph: Graph, index: int) -> tuple[str, str]:
    layer = graph.layers[index]
    reason = unsupported_reason(graph, layer, {})
    if reason is not None:
        return "unsupported", describe_unsupported([(layer.op, index, reason)])
    if layer.op not in SPEC_BUILDERS:
        return "not-tuned", "runs TFLM's reference semantics; no tuned template"
    return "tunable", ""


def _search_worker(
    spec: KernelSpec,
    target_name: str,
    checks: CheckSet,
    options: TuneOptions,
    queue: Any,
) -> Outcome:
    """One workload's study; runs in a worker process when --jobs > 1."""
    target = resolve_target(dataclasses.replace(options, target=target_name))
    ctx = study_context(target)
    db = options.open_db()
    runner = plugins.get_runner(target.runner)
    key = spec.workload_key()
    with tempfile.TemporaryDirectory(prefix="autotune-") as work:
        evaluator = Evaluator(spec, target, checks, Path(work), runner)
        search = WorkloadSearch(
            spec, templates_for(spec.op), ctx, db, evaluator, options.seed, options.flash_limit
        )
        if options.retune:
            search.forget()

        def report(measured: int, budget: int, best: float | None) -> None:
            if queue is not None:
                queue.put((key, measured, budget, best))

        return search.run(options.trials, options.timeout, report)


def prepare_layers(
    graph: Graph,
    seed: int,
    model_checks: Callable[[bytes, int], CheckSet] | None = None,
) -> tuple[list[LayerResult], dict[str, KernelSpec], dict[str, CheckSet]]:
    """Everything before the search: each layer classified, each distinct workload's spec
    and check inputs (`CheckSet.for_layer`, measured on the layer's input in the model, run
    through the reference; `model_checks` stands for `CheckSet.for_model`). Nothing is
    compiled."""
    activations = functools.cache(lambda: model_activations(graph, seed))

    def checks_for(g: Graph, index: int, s: int) -> CheckSet:
        return CheckSet.for_layer(g, index, s, activations(), model_checks)

    layers: list[LayerResult] = []
    specs: dict[str, KernelSpec] = {}
    checks: dict[str, CheckSet] = {}
    for layer in graph.layers:
        status, note = _classify(graph, layer.index)
        result = LayerResult(layer.index, layer.op, layer_macs(graph, layer), status, note)
        if status == "tunable":
            spec = build_spec(graph, layer)
            if spec is None or not templates_for(layer.op):
                result.status, result.note = "not-tuned", "no template applies to this layer"
            else:
                result.spec = spec
                key = spec.workload_key()
                if key not in specs:
                    specs[key] = spec
                    checks[key] = checks_for(graph, layer.index, seed)
        layers.append(result)
    return layers, specs, checks


def tune_model(
    model_path: str | Path, options: TuneOptions, events: Events | None = None
) -> ModelRun:
    events = events or Events()
    graph = load_model(model_path)
    target = resolve_target(options)
    check_fits(graph, target, str(model_path))  # before any work
    ctx = study_context(target)
    run = ModelRun(graph, target, ctx, plugins.metric_label(target))
    run.layers, specs, checks = prepare_layers(graph, options.seed)

    events.workloads(len(specs), options.trials)
    events.names(workload_names(run.layers))
    outcomes = _run_searches(specs, checks, target, options, events)
    run.measured = sum(o.measured for o in outcomes.values())

    db = options.open_db()
    with tempfile.TemporaryDirectory(prefix="autotune-verify-") as work:
        try:
            run.choice = _choose_all(run, outcomes, db, Path(work), options, events)
        except InfeasibleBudget as exc:
            raise InfeasibleBudget(f"{model_path}: {exc}") from None
        for result in run.layers:
            if result.spec is not None:
                result.failures = failure_summary(result.spec, ctx, db)
    return run


def workload_names(layers: list[LayerResult]) -> dict[str, str]:
    """Per workload key, the layers it stands for: "layer 3 CONV_2D", "layers 4, 6 CONV_2D"."""
    by_key: dict[str, list[LayerResult]] = {}
    for r in layers:
        if r.spec is not None:
            by_key.setdefault(r.spec.workload_key(), []).append(r)
    names = {}
    for key, rs in by_key.items():
        which = ", ".join(str(r.index) for r in rs)
        names[key] = f"layer{'s' if len(rs) > 1 else ''} {which} {rs[0].op}"
    return names


def failure_summary(spec: KernelSpec, ctx: StudyContext, db: ResultsDB) -> dict[str, Any]:
    """The workload's failed variants in the DB by kind (compile, fault, timeout, mismatch):
    how many, and the first message of each kind."""
    templates = [t for t in templates_for(spec.op) if t.applies(spec, ctx.target)]
    out: dict[str, dict[str, Any]] = {}
    trials = sorted(known_trials(db, spec, templates, ctx).values(), key=lambda t: t.id)
    for t in trials:
        if t.status in ("ok", "constraint"):
            continue
        info = out.setdefault(t.status, {"count": 0, "first": t.reason})
        info["count"] += 1
    return out


def _run_searches(
    specs: dict[str, KernelSpec],
    checks: dict[str, CheckSet],
    target: Target,
    options: TuneOptions,
    events: Events,
) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    # A runner driving one device (a board) measures one variant at a time.
    exclusive = plugins.get_runner(target.runner).capabilities.exclusive
    if options.jobs <= 1 or len(specs) <= 1 or exclusive:
        for key, spec in specs.items():

            def report(measured: int, budget: int, best: float | None, key: str = key) -> None:
                events.progress(key, measured, budget, best)

            outcomes[key] = _search_in_process(spec, target.name, checks[key], options, report)
            events.workload_done(key, outcomes[key])
        return outcomes

    import multiprocessing

    mp = multiprocessing.get_context("spawn")
    with mp.Manager() as manager:
        queue = manager.Queue()
        workers = min(options.jobs, os.cpu_count() or 1, len(specs))
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=mp, initializer=_detach_from_terminal
        )
        try:
            futures = {
                pool.submit(_search_worker, spec, target.name, checks[key], options, queue): key
                for key, spec in specs.items()
            }
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(queue, events)
                for future in done:
                    key = futures[future]
                    outcomes[key] = future.result()
                    events.workload_done(key, outcomes[key])
            _drain(queue, events)
        except BaseException:
            # Ctrl-C or a failed worker: what was measured is in the DB already. The workers
            # never see the terminal's Ctrl-C (so they print no tracebacks and their
            # compilers are not killed mid-variant, which would record a false failure);
            # stop them here.
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    return outcomes


def _detach_from_terminal() -> None:
    """Worker start-up: a session of its own, so Ctrl-C reaches only the main process."""
    os.setsid()


def _drain(queue: Any, events: Events) -> None:
    while not queue.empty():
        key, measured, budget, best = queue.get()
        events.progress(key, measured, budget, best)


def _search_in_process(
    spec: KernelSpec,
    target_name: str,
    checks: CheckSet,
    options: TuneOptions,
    report: Callable[[int, int, float | None], None],
) -> Outcome:
    class _Q:
        def put(self, item: tuple[str, int, int, float | None]) -> None:
            report(item[1], item[2], item[3])

    return _search_worker(spec, target_name, checks, options, _Q())


def _choose_all(
    run: ModelRun,
    outcomes: dict[str, Outcome],
    db: ResultsDB,
    work: Path,
    options: TuneOptions,
    events: Events | None = None,
) -> ModelChoice | None:
    """One variant per tuned layer: the fastest mix within the budget whose every pick is
    bit-exact with its layer's own values (verified once, cached)."""
    graph, target, ctx = run.graph, run.target, run.context
    inputs: list[LayerInput] = []
    by_index: dict[int, LayerResult] = {}
    for result in run.layers:
        if result.spec is None:
            continue
        spec = result.spec
        by_index[result.index] = result
        result.baseline = outcomes[spec.workload_key()].baseline
        templates = {t.name: t for t in templates_for(spec.op) if t.applies(spec, target)}
        inputs.append(layer_input(result.index, spec, templates, db, ctx, options.flash_limit))
    if not inputs:
        return None
    executes = plugins.get_runner(target.runner).capabilities.executes
    evaluators: dict[int, Evaluator] = {}
    checked: set[int] = set()
    # The whole model through the reference once, only if some pick needs verifying.
    activations = functools.cache(lambda: model_activations(graph, options.seed))

    def evaluator(layer: LayerInput) -> Evaluator:
        if layer.index not in evaluators:
            checks = CheckSet.for_layer(graph, layer.index, options.seed, activations())
            evaluators[layer.index] = Evaluator(
                layer.spec,
                target,
                checks,
                work / f"layer{layer.index}",
                plugins.get_runner(target.runner),
            )
        return evaluators[layer.index]

    def verify(layer: LayerInput, trial: Trial) -> str | None:
        if not executes or trial.template == fuse.FUSED:  # a fused block: checked as measured
            return None
        values = layer.spec.values_hash()
        if db.is_verified(trial, values):
            return None
        checked.add(layer.index)
        m = evaluator(layer).evaluate(layer.templates[trial.template], json.loads(trial.params))
        if m.ok:
            db.mark_verified(trial, values)
            return None
        return m.reason or m.status

    layout: Layout | None = None
    measure: Measure | None = None
    budget = options.budget
    choice: ModelChoice | None = None
    # Sharing is measured: only where the layers run on the simulator.
    sharing = LayerSharing(graph, target, evaluator) if executes else None
    defaults: list[str] = []
    ram_capped = ""  # the default RAM budget's sentence, where one was set
    if budget.flash is None and budget.ram is None and budget.objective == "cycles":
        # No budget: still a library that links. When the fastest mix comes near the
        # target's flash, choose again under the flash the memory map leaves the library.
        choice = choose_model(inputs, target, budget, verify, sharing=sharing)
        room = flash_room(target)
        if choice.estimated_flash + _untuned_parameters(graph, choice) > room // 2:
            choice, budget = None, dataclasses.replace(budget, flash=room)
            defaults.append(f"flash budget {room:,} B: the room {target.name}'s flash leaves")
        # Nor more RAM than tflite-micro needs for the model, where a mix can do with that.
        tflm = _tflm_ram_cap(graph, target, choice) if choice is not None else None
        if tflm is not None:
            choice, budget = None, dataclasses.replace(budget, ram=tflm)
            ram_capped = f"RAM budget {tflm:,} B: tflite-micro's arena for this model"
            defaults.append(ram_capped)
    if choice is None and (budget.flash is not None or budget.ram is not None):
        from autotune.emit.footprint import baseline_layout, build_footprint
        from autotune.emit.library import Choice, baseline_choices

        base = baseline_choices(graph, target)
        base_flash = {
            layer.index: flash_bytes(layer.baseline) for layer in inputs if layer.baseline
        }
        layout = baseline_layout(graph, target, base, base_flash)

        def measure_picks(picks: dict[int, Trial], shared: set[int]) -> Any:
            return build_footprint(graph, target, Choice.from_trials(picks, shared))

        measure = measure_picks

    def least_ram_points() -> bool:
        """Each tuned layer's least-RAM point (library.small_choices': in place where its
        data flow allows, else the least scratch), measured where the search did not
        measure it; True if any was (the layers' options are then read again)."""
        from autotune.emit.library import small_choices

        small = small_choices(graph, target)
        new = 0
        for layer in inputs:
            pick = small.get(layer.index)
            if pick is None or pick.template not in layer.templates:
                continue  # a fused block's ADD: tried as such
            search = WorkloadSearch(
                layer.spec,
                list(layer.templates.values()),
                ctx,
                db,
                evaluator(layer),
                options.seed,
                options.flash_limit,
            )
            if (pick.template, canonical_params(pick.params)) not in search.known():
                if events is not None:
                    events.note(
                        f"the RAM budget is not met: measuring layer {layer.index}'s "
                        f"least-RAM variant ({pick.template})"
                    )
                search.measure_point(pick.template, pick.params)
                new += 1
        if new:
            run.measured += new
            inputs[:] = [
                layer_input(x.index, x.spec, x.templates, db, ctx, options.flash_limit)
                for x in inputs
            ]
        return bool(new)

    def choose(budget: Budget) -> ModelChoice:
        try:
            return choose_model(inputs, target, budget, verify, layout, measure, sharing)
        except InfeasibleBudget as exc:
            if layout is None or budget.ram is None or not executes:
                raise
            infeasible = exc
        # A RAM budget no measured mix meets: the layers' least-RAM points, then residual
        # blocks row by row (they save RAM, not cycles).
        if least_ram_points():
            try:
                return choose_model(inputs, target, budget, verify, layout, measure, sharing)
            except InfeasibleBudget as exc:
                infeasible = exc
        fused = _choose_fused(
            run,
            inputs,
            budget,
            verify,
            layout,
            measure,
            sharing,
            db,
            activations(),
            options.seed,
            events,
        )
        if fused is None:
            raise infeasible
        return fused

    if choice is None:
        try:
            choice = choose(budget)
        except InfeasibleBudget:
            if not ram_capped:
                raise
            # No mix reaches tflite-micro's RAM: the default falls back to speed.
            budget = dataclasses.replace(budget, ram=None)
            defaults.remove(ram_capped)
            defaults.append("no mix needs as little RAM as tflite-micro's arena")
            choice = choose(budget)
    choice.defaults = defaults
    fused_at = {i: f for f in choice.fused for i in f.layers}
    for layer in inputs:
        result = by_index[layer.index]
        if layer.index in fused_at:
            f = fused_at[layer.index]
            result.status, result.best = "fused", None
            result.note = (
                f"runs row by row in layer {f.layers[2]}'s function with layers "
                f"{f.layers[0]} and {f.layers[1]}: {f.cycles:,.0f} {f.metric} for the three "
                "(selection.fused)"
            )
            continue
        result.verified_now = layer.index in checked
        why = "; ".join(
            f"variant {r.template} {r.params} failed on this layer's values: {r.reason}"
            for r in choice.rejected
            if r.layer == layer.index
        )
        best = choice.picks.get(layer.index)
        if best is None:
            result.status = "not-tuned"
            result.note = "; ".join(
                ["no variant verified bit-exact for this layer", why][: 1 + bool(why)]
            )
            continue
        result.best, result.bit_exact = best, executes
        outcome = outcomes[layer.spec.workload_key()]
        result.cache_hit = outcome.measured == 0 and not result.verified_now
        result.note = why
        if not executes:
            result.note = (
                f"{target.name} cannot be executed here: ranked by code size, not verified"
            )
    return choice


def library_choices(run: ModelRun) -> dict[int, Any]:
    """The library's Choice per layer: each tuned layer's pick (shared where measured to
    be), and fuse.FUSED on the ADD of each block the choice runs row by row."""
    from autotune.emit.library import Choice

    shared = run.choice.share_layers if run.choice is not None else set()
    choices = Choice.from_trials(
        {layer.index: layer.best for layer in run.layers if layer.best is not None}, shared
    )
    for block in run.choice.fused if run.choice is not None else []:
        choices[block.layers[2]] = Choice(fuse.FUSED, {})
    return choices


MAX_FUSED_BLOCKS = 4  # 2**4 subsets of blocks tried at most


def _choose_fused(
    run: ModelRun,
    inputs: list[LayerInput],
    budget: Budget,
    verify: Callable[[LayerInput, Trial], str | None],
    layout: Layout,
    measure: Measure | None,
    sharing: LayerSharing | None,
    db: ResultsDB,
    activations: dict[int, Any] | None,
    seed: int,
    events: Events | None = None,
) -> ModelChoice | None:
    """The fastest choice within the budget where some residual blocks run row by row
    (their two intermediate tensors out of the arena), or None. Each block fusable here
    (at most MAX_FUSED_BLOCKS, the largest savings first) is measured fused
    (tune/fused.py); every non-empty subset of them is tried: the blocks' three layers
    replaced by one option with the fused cycles, flash and scratch, the activations
    planned with them fused."""
    from autotune.emit.footprint import fused_layout
    from autotune.emit.library import baseline_choices
    from autotune.tune import fused
    from autotune.tune.model_choice import FusedPick, Rejection

    graph, target = run.graph, run.target
    by_index = {layer.index: layer for layer in inputs if layer.trials}
    blocks = [
        b for b in fused.candidates(graph, target) if {b.first, b.second, b.add} <= by_index.keys()
    ]
    blocks.sort(key=lambda b: -(graph.tensors[b.t1].nbytes + graph.tensors[b.t2].nbytes))
    costs = []
    failed = []
    for block in blocks[:MAX_FUSED_BLOCKS]:
        if events is not None:
            events.note(
                f"measuring layers {block.first}, {block.second} and {block.add} "
                "run row by row (a residual block: saves RAM)"
            )
        try:
            costs.append(fused.measure_block(graph, block, target, activations, seed, db))
        except AutotuneError as exc:  # not bit-exact, or not built: the block stays apart
            failed.append(Rejection(block.add, fuse.FUSED, "{}", str(exc)))
    base = baseline_choices(graph, target)
    best: tuple[ModelChoice, tuple[fused.FusedCost, ...]] | None = None
    for size in range(1, len(costs) + 1):
        for subset in itertools.combinations(costs, size):
            gone = {i for c in subset for i in c.layers}
            dropped = sum(flash_bytes(by_index[i].baseline) for i in gone if by_index[i].baseline)
            blocks_layout = fused_layout(
                graph, target, base, layout, [c.block for c in subset], dropped
            )
            layers = [layer for layer in inputs if layer.index not in gone]
            layers += [fused.as_layer(c, by_index[c.block.add]) for c in subset]
            layers.sort(key=lambda layer: layer.index)
            try:
                choice = choose_model(
                    layers, target, budget, verify, blocks_layout, measure, sharing
                )
            except InfeasibleBudget:
                continue
            if best is None or choice.cycles < best[0].cycles:
                best = (choice, subset)
    if best is None:
        return None
    choice, subset = best
    choice.rejected += failed
    choice.fused = [
        FusedPick(list(c.layers), float(c.cycles), c.flash, c.scratch, c.metric) for c in subset
    ]
    # Against the layers apart: the baseline and every layer at its fastest variant.
    choice.baseline_cycles = sum(
        float(objective_value(layer.baseline) or 0) for layer in by_index.values() if layer.baseline
    )
    apart = sum(
        min(float(objective_value(t) or 0) for t in layer.trials) for layer in by_index.values()
    )
    choice.fastest_cycles = min(choice.fastest_cycles, apart)
    choice.baseline_flash = layout.baseline_flash
    return choice


def planned_ram(graph: Graph, target: Target, choice: ModelChoice) -> int:
    """Arena + state the memory planner lays out for the library of these picks."""
    from autotune.emit.library import Choice, planned_bytes

    return sum(planned_bytes(graph, target, Choice.from_trials(choice.picks, choice.share_layers)))


def _tflm_ram_cap(graph: Graph, target: Target, choice: ModelChoice) -> int | None:
    """tflite-micro's whole arena for the model where the chosen mix's library would need
    more RAM than that; else None (the fastest mix is no worse than tflite-micro)."""
    from autotune.reference import oracle

    try:
        ours = planned_ram(graph, target, choice)
    except AutotuneError:  # a layer without C: no library is built, nothing to hold
        return None
    tflm = oracle.tflm_arena(graph.path) if graph.path else None
    if tflm is None or ours <= tflm["total"]:
        return None
    return tflm["total"]


def _untuned_parameters(graph: Graph, choice: ModelChoice) -> int:
    """Parameter bytes of the layers without a pick: they ship too, outside the estimate."""
    return sum(
        layer_params(graph, layer) for layer in graph.layers if layer.index not in choice.picks
    )
