"""`autotune db ...`: export, import, merge, stats and prune the results DB."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import click
from sqlalchemy import delete, select

from autotune.db import ResultsDB, Trial, default_db_url
from autotune.db.exchange import line_problem, read_file, row_from_line, trial_line, write_lines
from autotune.db.schema import KEY_COLUMNS, Artifact, Claim
from autotune.errors import AutotuneError

DB_OPTION = click.option(
    "--db",
    "db_url",
    metavar="URL",
    help=f"Results DB (SQLAlchemy URL) [default: {default_db_url()}]",
)


@click.group("db")
def command() -> None:
    """Export, import, merge, count and prune results (format: docs/db.md)."""


def _model_workloads(model: str) -> set[str]:
    from autotune.model.tflite_import import load_model
    from autotune.tune.spec import build_spec

    graph = load_model(model)
    keys = set()
    for layer in graph.layers:
        try:
            spec = build_spec(graph, layer)
        except Exception:  # an op this version cannot tune has no workload to export
            spec = None
        if spec is not None:
            keys.add(spec.workload_key())
    return keys


@command.command("export")
@DB_OPTION
@click.option("--target", "-t", "targets", multiple=True, help="Only this target (repeatable).")
@click.option("--model", "-m", "models", multiple=True, help="Only this model's workloads.")
@click.option("--all", "everything", is_flag=True, help="Failed trials too (default: ok only).")
def export_cmd(
    db_url: str | None, targets: tuple[str, ...], models: tuple[str, ...], everything: bool
) -> None:
    """Write trials as JSON lines to stdout: autotune db export > FILE.jsonl"""
    db = ResultsDB(db_url)
    workloads = set().union(*(_model_workloads(m) for m in models)) if models else None
    with db.session() as s:
        q = select(Trial).order_by(*(getattr(Trial, k) for k in KEY_COLUMNS), Trial.params)
        if targets:
            q = q.where(Trial.target.in_(targets))
        if workloads is not None:
            q = q.where(Trial.workload_key.in_(sorted(workloads)))
        if not everything:
            q = q.where(Trial.status == "ok")
        rows = list(s.scalars(q))
    n = write_lines(rows, sys.stdout)
    click.echo(f"autotune: exported {n} trials from {db.name}", err=True)


def _store(db: ResultsDB, rows: list[dict], rejected: int, source: str, as_json: bool) -> None:
    added = db.insert_trials(rows)
    result = {
        "source": source,
        "read": len(rows) + rejected,
        "added": added,
        "already_present": len(rows) - added,
        "rejected": rejected,
    }
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(
            f"{source}: {result['read']} trials read, {added} added, "
            f"{result['already_present']} already present, {rejected} rejected"
        )


@command.command("import")
@DB_OPTION
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def import_cmd(db_url: str | None, files: tuple[Path, ...], as_json: bool) -> None:
    """Add the trials of JSON-lines files; every line is checked, bad ones are skipped."""
    db = ResultsDB(db_url)
    for path in files:
        read = read_file(path)
        _store(db, read.rows, len(read.rejected), str(path), as_json)


@command.command("merge")
@DB_OPTION
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def merge_cmd(db_url: str | None, source: str, as_json: bool) -> None:
    """Add every trial of another results DB (URL), checked as an import is."""
    db = ResultsDB(db_url)
    other = ResultsDB(source)
    if other.url == db.url:
        raise AutotuneError(f"db merge: {other.name} is the DB being merged into")
    rows, rejected = [], 0
    for t in other.all_trials():
        try:
            line = trial_line(t)
        except (TypeError, ValueError):
            line = None
        problem = line_problem(line) if line is not None else "parameters are not JSON"
        if problem:
            rejected += 1
            click.echo(f"autotune: warning: {other.name} trial {t.id} ignored: {problem}", err=True)
            continue
        rows.append(row_from_line(line))
    _store(db, rows, rejected, other.name, as_json)


@command.command("stats")
@DB_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON (shape in docs/db.md).")
def stats_cmd(db_url: str | None, as_json: bool) -> None:
    """Count trials by target and status, workloads and templates."""
    db = ResultsDB(db_url)
    trials = db.all_trials()
    with db.session() as s:
        claims = len(list(s.scalars(select(Claim))))
        artifacts = len(list(s.scalars(select(Artifact))))
    by_target: dict[str, Counter[str]] = {}
    for t in trials:
        by_target.setdefault(t.target, Counter())[t.status] += 1
    stats = {
        "db": db.name,
        "trials": len(trials),
        "workloads": len({(t.target_fingerprint, t.workload_key) for t in trials}),
        "templates": sorted({t.template for t in trials}),
        "targets": {k: dict(sorted(v.items())) for k, v in sorted(by_target.items())},
        "toolchains": sorted({t.toolchain for t in trials}),
        "artifacts": artifacts,
        "claims": claims,
    }
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return
    click.echo(f"{stats['db']}: {stats['trials']} trials, {stats['workloads']} workloads")
    for target, counts in stats["targets"].items():
        text = ", ".join(f"{n} {status}" for status, n in counts.items())
        click.echo(f"  {target}: {text}")
    click.echo(f"  toolchains: {'; '.join(stats['toolchains']) or '-'}")
    click.echo(f"  whole-library records: {artifacts}; claims in progress: {claims}")


@command.command("prune")
@DB_OPTION
@click.option(
    "--older-than", type=click.FloatRange(0), metavar="DAYS", help="Also trials older than this."
)
@click.option("--dry-run", is_flag=True, help="Say what would go; change nothing.")
def prune_cmd(db_url: str | None, older_than: float | None, dry_run: bool) -> None:
    """Remove what can never be used again: trials of templates whose sources changed
    (their hash no longer matches an installed template), stale claims, and records of
    other tool versions."""
    from autotune.platform import plugins

    db = ResultsDB(db_url)
    current = {name: t.content_hash() for name, t in plugins.get_kernels().items()}
    cutoff = time.time() - older_than * 86400 if older_than is not None else None
    stale = [
        t.id
        for t in db.all_trials()
        if (t.template in current and current[t.template] != t.template_hash)
        or (cutoff is not None and t.created < cutoff)
    ]
    from autotune import __version__
    from autotune.tune.search import CLAIM_STALE_SECONDS

    with db.session() as s:
        old_claims = select(Claim).where(Claim.heartbeat < time.time() - CLAIM_STALE_SECONDS)
        claims = [c.point for c in s.scalars(old_claims)]
        records = [a.key for a in s.scalars(select(Artifact)) if a.tool_version != __version__]
        if not dry_run:
            for chunk in range(0, len(stale), 500):
                s.execute(delete(Trial).where(Trial.id.in_(stale[chunk : chunk + 500])))
            s.execute(delete(Claim).where(Claim.point.in_(claims)))
            s.execute(delete(Artifact).where(Artifact.key.in_(records)))
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{db.name}: {verb} {len(stale)} trials of changed templates"
        + (f" or older than {older_than:g} days" if older_than is not None else "")
        + f", {len(claims)} stale claims, {len(records)} records of other versions"
    )
