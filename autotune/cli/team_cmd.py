"""`autotune submit` and `autotune worker`: several machines tune one model (or many)
through one shared results DB (docs/team.md)."""

from __future__ import annotations

import click
from rich.console import Console

from autotune.cli.paths import persistent_db
from autotune.tune.pipeline import TuneOptions


@click.command("submit")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option("--target", "-t", default="cortex-m4", show_default=True, help="Core to tune for.")
@click.option("--db", "db_url", metavar="URL", required=True, help="The team's results DB.")
@click.option("--trials", default=40, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True)
def submit_command(model: str, target: str, db_url: str, trials: int, seed: int) -> None:
    """Queue MODEL's workloads for `autotune worker` processes sharing --db."""
    from autotune.tune.distributed import submit

    persistent_db(db_url)
    done = submit(model, TuneOptions(target, trials=trials, seed=seed), db_url)
    click.echo(
        f"{model}: {done.studies} workloads for {target}, {done.new} new; "
        f"run `autotune worker --db URL` on any machine, then `autotune {model} --target "
        f"{target} --trials {trials} --db URL` to collect the library"
    )


@click.command("worker")
@click.option("--db", "db_url", metavar="URL", required=True, help="The team's results DB.")
@click.option("--runner", help="Measure with this runner (e.g. a board's) instead of the target's.")
@click.option("--exit-when-idle", is_flag=True, help="Stop when no job is pending.")
def worker_command(db_url: str, runner: str | None, exit_when_idle: bool) -> None:
    """Tune pending workloads submitted to --db, together with any other workers."""
    from autotune.tune.distributed import work

    persistent_db(db_url)
    console = Console(stderr=True)
    measured = work(db_url, runner, exit_when_idle, say=lambda m: console.print(m))
    console.print(f"worker: no pending work; {measured} variants measured here")
