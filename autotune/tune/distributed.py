"""Distributed tuning: `autotune submit` puts a model's workloads in the results DB as jobs;
`autotune worker` processes on any machine share each workload's Optuna study through
Optuna's RDB storage (the engine Optuna documents for distributed optimization).

Optuna's heartbeat marks the trial of a worker that died (SIGKILL, power loss) as failed
after a grace period, and RetryFailedTrialCallback queues the same point again, so a dead
worker loses at most its in-flight trial and the others finish the workload. Every
measured variant also goes to autotune's own trials table, so a later
`autotune MODEL --db URL` finds the whole budget there and measures nothing.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy import select, update

from autotune.db import ResultsDB, canonical_params
from autotune.db.schema import Job
from autotune.errors import AutotuneError
from autotune.model.tflite_import import parse_model
from autotune.platform import plugins
from autotune.tune.pipeline import (
    TuneOptions,
    _classify,
    resolve_target,
    study_context,
    templates_for,
)
from autotune.tune.search import (
    OWNER,
    StudyContext,
    WorkloadSearch,
    _Heartbeat,
    eligible_value,
    flash_cap,
)
from autotune.tune.spec import KernelSpec, build_spec
from autotune.tune.variant import CheckSet, Evaluator

HEARTBEAT_SECONDS = max(1, int(float(os.environ.get("AUTOTUNE_HEARTBEAT", "10"))))
# Heartbeat and retry are what this module is for; Optuna calls them experimental.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def optuna_storage(url: str) -> RDBStorage:
    """Optuna's tables beside autotune's: a schema of their own on PostgreSQL, a sibling
    file for SQLite (both have a table called `trials`)."""
    from autotune.db.store import engine_url

    parsed = engine_url(url)
    kwargs: dict = {}
    if parsed.get_backend_name() == "sqlite":
        database = str(parsed.database)
        parsed = parsed.set(database=str(Path(database).with_suffix("")) + "-optuna.sqlite")
        kwargs["connect_args"] = {"timeout": 60}
    else:
        ResultsDB(url)  # its schema, and a clear error if the server is unreachable
        import psycopg

        conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=15) as conn:
            conn.execute("CREATE SCHEMA IF NOT EXISTS optuna")
        kwargs["connect_args"] = {"options": "-c search_path=optuna", "connect_timeout": 15}
        kwargs["pool_pre_ping"] = True
    return RDBStorage(
        parsed.render_as_string(hide_password=False),
        engine_kwargs=kwargs,
        heartbeat_interval=HEARTBEAT_SECONDS,
        grace_period=3 * HEARTBEAT_SECONDS,
        **_retry_stale_trials(),
    )


def _retry_stale_trials() -> dict:
    """Queue a dead worker's trial again (the callback's name changed in Optuna 4.9)."""
    import optuna.storages as storages

    if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):
        callback = storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
        return {"heartbeat_stale_trial_callback": callback}
    return {"failed_trial_callback": storages.RetryFailedTrialCallback(max_retry=3)}


def _study_name(spec: KernelSpec, ctx: StudyContext) -> str:
    blob = f"{spec.workload_key()}:{ctx.target_fingerprint}:{ctx.runner}:{ctx.cycle_model}"
    return "autotune-" + hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass
class Submitted:
    studies: int  # workloads (jobs)
    new: int  # of them new to the DB


def submit(model_path: str | Path, options: TuneOptions, db_url: str) -> Submitted:
    """One job per distinct workload of the model; its study starts with the baseline and
    every template's suggested points, as a local search does."""
    data = Path(model_path).read_bytes()
    graph = parse_model(data, str(model_path))
    target = resolve_target(options)
    ctx = study_context(target)
    db = ResultsDB(db_url)
    storage = optuna_storage(db_url)
    seen: set[str] = set()
    new = 0
    for layer in graph.layers:
        if _classify(graph, layer.index)[0] != "tunable":
            continue
        spec = build_spec(graph, layer)
        if spec is None or not templates_for(layer.op) or spec.workload_key() in seen:
            continue
        seen.add(spec.workload_key())
        name = _study_name(spec, ctx)
        row = {
            "study": name,
            "model_sha256": hashlib.sha256(data).hexdigest(),
            "model": data,
            "layer_index": layer.index,
            "target": target.name,
            "target_fingerprint": ctx.target_fingerprint,
            "trials": options.trials,
            "seed": options.seed,
            "state": "pending",
            "created": time.time(),
        }
        with db.session() as s:
            if not db._insert_ignore(s, Job, [row]):
                continue
        new += 1
        search = _search(spec, ctx, db, None, options.seed)
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            direction="minimize",
            sampler=optuna.samplers.TPESampler(seed=options.seed),
            load_if_exists=True,
        )
        base_name, base = search.baseline_point()
        study.enqueue_trial(search._flat(base_name, base), skip_if_exists=True)
        for tname, point in search.suggested():
            study.enqueue_trial(search._flat(tname, point), skip_if_exists=True)
    return Submitted(len(seen), new)


def _search(
    spec: KernelSpec, ctx: StudyContext, db: ResultsDB, evaluator: Evaluator | None, seed: int
) -> WorkloadSearch:
    return WorkloadSearch(spec, templates_for(spec.op), ctx, db, evaluator, seed)  # type: ignore[arg-type]


def _counted(study: optuna.Study) -> int:
    """Distinct points evaluated (a point proposed again costs nothing and counts once)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return len({tuple(sorted(t.params.items())) for t in done})


def _running(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


Say = Callable[[str], None]


def work(
    db_url: str,
    runner: str | None = None,
    exit_when_idle: bool = False,
    poll: float = 5.0,
    say: Say = lambda _m: None,
) -> int:
    """Take pending jobs until there are none (with exit_when_idle) or forever; the number
    of variants this worker measured."""
    db = ResultsDB(db_url)
    storage = optuna_storage(db_url)
    measured = 0
    skipped: set[str] = set()
    while True:
        with db.session() as s:
            jobs = list(s.scalars(select(Job).where(Job.state == "pending").order_by(Job.id)))
        jobs = [j for j in jobs if j.study not in skipped]
        if not jobs:
            if exit_when_idle:
                return measured
            time.sleep(poll)
            continue
        job = jobs[0]
        try:
            measured += _work_on(job, db, storage, runner, say)
        except _Skip as exc:
            say(f"skipping {job.study}: {exc}")
            skipped.add(job.study)


class _Skip(AutotuneError):
    pass


def _work_on(job: Job, db: ResultsDB, storage: RDBStorage, runner: str | None, say: Say) -> int:
    graph = parse_model(job.model, f"job {job.id}")
    layer = graph.layers[job.layer_index]
    spec = build_spec(graph, layer)
    assert spec is not None
    target = resolve_target(TuneOptions(job.target, runner=runner))
    ctx = study_context(target)
    if ctx.target_fingerprint != job.target_fingerprint:
        raise _Skip(f"this machine's toolchain for {job.target} differs from the submitter's")
    if _study_name(spec, ctx) != job.study:
        raise _Skip("this worker measures with another runner or cycle model")
    study = optuna.load_study(study_name=job.study, storage=storage)
    checks = CheckSet.for_layer(graph, layer.index, job.seed)
    measured = 0
    with tempfile.TemporaryDirectory(prefix="autotune-worker-") as work_dir:
        evaluator = Evaluator(
            spec, target, checks, Path(work_dir), plugins.get_runner(target.runner)
        )
        search = _search(spec, ctx, db, evaluator, job.seed)
        known = search.known()

        def objective(trial: optuna.Trial) -> float:
            nonlocal measured
            name = trial.suggest_categorical("template", list(search.templates))
            space = search.spaces[name]
            point = {
                p.name: trial.suggest_categorical(f"{name}:{p.name}", list(p.choices))
                for p in space.params
            }
            reason = space.check(point)
            if reason:
                raise optuna.TrialPruned(reason)
            params = canonical_params(point)
            row = known.get((name, params)) or search.claim_or_wait(name, point)
            if row is None:
                base_name, base = search.baseline_point()
                try:
                    row = search._measure(name, point, base_name, base)
                finally:
                    db.release(_claim(search, name, params), OWNER)
                measured += 1
                say(f"{job.study[9:17]} measured {name} {params}: {row.status}")
            known[(name, params)] = row
            trial.set_user_attr("status", row.status)
            value = eligible_value(row, flash_cap(known, None))
            return math.inf if value is None else value

        def enough(study: optuna.Study, _t: optuna.trial.FrozenTrial) -> None:
            if _counted(study) >= job.trials:
                study.stop()

        attempts = 20 * job.trials + 100
        with _Heartbeat(db):
            while _counted(study) < job.trials and len(study.trials) < attempts:
                study.optimize(objective, n_trials=1, callbacks=[enough], catch=())
            # Done when the budget is met and no trial is running anywhere (a dead
            # worker's trial is failed by the heartbeat check after its grace period).
            while _running(study):
                optuna.storages.fail_stale_trials(study)
                time.sleep(1)
    with db.session() as s:
        s.execute(update(Job).where(Job.id == job.id).values(state="done"))
    say(f"{job.study[9:17]} done: {_counted(study)} trials")
    return measured


def _claim(search: WorkloadSearch, name: str, params: str) -> str:
    from autotune.db.store import point_hash

    return point_hash(search.key(name), params)
