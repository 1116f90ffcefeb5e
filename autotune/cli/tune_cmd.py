"""`autotune MODEL --target T`: tune every layer, verify, cache, write sources and reports."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autotune.cli.paths import persistent_db, writable_dir
from autotune.db import ResultsDB, Trial, default_db_url
from autotune.db.store import SHIPPED, shipped_enabled
from autotune.emit.deploy import DeploymentMismatch, deploy, failed_deployment, with_baseline
from autotune.emit.latency import cached_latency
from autotune.emit.library import baseline_choices, c_name, default_name
from autotune.emit.linux import build_linux, linux_abis
from autotune.errors import AutotuneError, describe_unsupported
from autotune.platform import plugins
from autotune.platform.gdb_runner import REMOTE_ENV
from autotune.platform.toolchain import CompileError
from autotune.reference.executor import unsupported_layers
from autotune.tune.fit import library_too_large
from autotune.tune.front import OBJECTIVES, Budget, parse_bytes
from autotune.tune.model_choice import part_budget
from autotune.tune.pipeline import Events, TuneOptions, library_choices, tune_model
from autotune.tune.report import write_outputs
from autotune.tune.search import Outcome


class ProgressEvents(Events):
    """One progress bar per workload being searched, named by its layers, on stderr."""

    def __init__(self, bars: Progress) -> None:
        self.bars = bars
        self.tasks: dict[str, int] = {}
        self.overall: int | None = None
        self.labels: dict[str, str] = {}

    def workloads(self, count: int, budget: int) -> None:
        self.overall = self.bars.add_task("workloads", total=count)

    def names(self, names: dict[str, str]) -> None:
        self.labels = names

    def label(self, key: str) -> str:
        return self.labels.get(key, f"workload {key[:8]}")

    def _task(self, key: str, budget: int) -> int:
        if key not in self.tasks:
            self.tasks[key] = self.bars.add_task(self.label(key), total=budget)
        return self.tasks[key]

    def progress(self, key: str, measured: int, budget: int, best: float | None) -> None:
        best_text = f"best {best:,.0f}" if best is not None else "no bit-exact variant yet"
        self.bars.update(
            self._task(key, budget),
            completed=measured,
            description=f"{self.label(key)} ({best_text})",
        )

    def note(self, text: str) -> None:
        self.bars.console.print(text)

    def workload_done(self, key: str, outcome: Outcome) -> None:
        task = self.tasks.get(key)
        if task is not None:
            self.bars.remove_task(task)
        if self.overall is not None:
            self.bars.advance(self.overall)


def _budget(flash: str | None, ram: str | None, objective: str, cycles: float | None) -> Budget:
    try:
        budget = Budget(
            flash=None if flash is None else parse_bytes(flash),
            ram=None if ram is None else parse_bytes(ram),
            cycles=cycles,
            objective=objective,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if objective != "cycles" and cycles is None:
        raise click.BadParameter(f"--objective {objective} needs --cycle-budget")
    return budget


class LogEvents(ProgressEvents):
    """Without a terminal (CI, a pipe): one line per finished workload, as it finishes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.labels = {}
        self.count = 0
        self.done = 0
        self.started = time.monotonic()

    def workloads(self, count: int, budget: int) -> None:
        self.count = count
        self.console.print(f"tuning {count} workloads, {budget} variants each")

    def progress(self, key: str, measured: int, budget: int, best: float | None) -> None:
        pass

    def note(self, text: str) -> None:
        self.console.print(f"{text} ({time.monotonic() - self.started:.0f} s)")

    def workload_done(self, key: str, outcome: Outcome) -> None:
        self.done += 1
        best = outcome.best
        value = "no bit-exact variant" if best is None else _value(best)
        n = outcome.measured
        self.console.print(
            f"[{self.done}/{self.count}] {self.label(key)}: {value}; "
            f"{n} variant{'' if n == 1 else 's'} measured"
            f"{' (cached)' if outcome.cached else ''}; {time.monotonic() - self.started:.0f} s",
        )


@contextmanager
def stage(console: Console, text: str) -> Iterator[None]:
    """A long step after the search: a spinner on a terminal; in a log, a line when it
    starts and one when it ends, so a pipe never goes quiet for minutes."""
    if console.is_terminal:
        with console.status(text):
            yield
        return
    started = time.monotonic()
    console.print(f"{text} ...")
    yield
    console.print(f"  done in {time.monotonic() - started:.0f} s")


def _value(trial: Trial) -> str:
    for value, unit in ((trial.cycles, "cycles"), (trial.instructions, "instructions")):
        if value is not None:
            return f"best {value:,} {unit}"
    return f"best {trial.code_bytes or 0:,} code bytes"


@click.command("tune")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--target",
    "-t",
    default=None,
    help="Core to tune for (see `autotune targets`) [default: the part's core, else cortex-m4].",
)
@click.option(
    "--part",
    metavar="NAME",
    help="Time on this part's memory system: flash wait states, caches, TCM, placement "
    "(`autotune targets --parts`; a calibrated preset FILE.json). Default: the core alone, "
    "zero-wait memory.",
)
@click.option(
    "--board",
    metavar="NAME",
    help="The part on this board, e.g. nucleo-l4r5zi (same as --part with the board's part).",
)
@click.option(
    "--trials",
    default=40,
    show_default=True,
    type=click.IntRange(1),
    help="Variants measured per workload.",
)
@click.option(
    "--jobs",
    "-j",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Workloads tuned in parallel.",
)
@click.option(
    "--timeout", type=click.FloatRange(0, min_open=True), help="Seconds of search per workload."
)
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    help=f"Results DB (SQLAlchemy URL) [default: {default_db_url()}]",
)
@click.option(
    "--db-readonly",
    "db_readonly",
    metavar="URL",
    multiple=True,
    help="A read-only results source searched after --db (a team's DB URL or a .jsonl "
    "export); repeat for several. The shipped results_db/ comes last (AUTOTUNE_SHIPPED=0: not).",
)
@click.option(
    "--out",
    "-o",
    "out_dir",
    default="autotune_out",
    show_default=True,
    type=click.Path(path_type=Path),  # checked (and created) before any work, one line
    help="Output folder.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print report.json on stdout (shape in docs/cli.md); progress stays on stderr.",
)
@click.option("--retune", is_flag=True, help="Ignore (and replace) cached results.")
@click.option(
    "--seed", default=0, show_default=True, help="Seed of the search and the check inputs."
)
@click.option(
    "--clock-mhz",
    type=click.FloatRange(0, min_open=True),
    help="Core clock for the milliseconds in the report [default: the target's typical clock].",
)
@click.option(
    "--runner",
    metavar="NAME",
    help="Measure with this runner instead of the target's default (`gdb`: a board or "
    "QEMU behind a GDB server, see docs/boards.md).",
)
@click.option(
    "--remote",
    metavar="HOST:PORT",
    help="Address of the runner's server (for --runner gdb: the GDB server, e.g. "
    "localhost:3333 for OpenOCD). Also read from AUTOTUNE_REMOTE.",
)
@click.option("--no-library", is_flag=True, help="Do not emit and verify the whole-model library.")
@click.option(
    "--name",
    metavar="NAME",
    help="C prefix of the library's symbols, files, macros and CMake/Make/Zephyr target "
    "[default: the model file's name, e.g. kws_ref_model].",
)
@click.option(
    "--flash-limit",
    type=click.FloatRange(0, min_open=True),
    metavar="RATIO",
    help="Per layer, keep variants whose code + constants are at most RATIO x the baseline's "
    "(1.0: no more flash than the reference loop).",
)
@click.option(
    "--flash-budget",
    metavar="BYTES",
    help="Flash the whole library may use (bytes, KiB or MiB: 43000, 42KiB); the fastest mix "
    "of variants within it is chosen exactly. With --part and no budget given: half the "
    "part's flash and RAM (the rest is the application's).",
)
@click.option(
    "--ram-budget",
    metavar="BYTES",
    help="RAM the library may use: arena (activations + scratch) + state.",
)
@click.option(
    "--objective",
    type=click.Choice(OBJECTIVES),
    default="cycles",
    show_default=True,
    help="What to minimize: cycles within the flash/RAM budgets, or flash or RAM within "
    "--cycle-budget.",
)
@click.option(
    "--cycle-budget",
    type=click.FloatRange(0, min_open=True),
    metavar="CYCLES",
    help="With --objective flash|ram: the tuned layers' cycles may not exceed this.",
)
def command(
    model: str,
    target: str | None,
    part: str | None,
    board: str | None,
    trials: int,
    jobs: int,
    timeout: float | None,
    db_url: str | None,
    db_readonly: tuple[str, ...],
    out_dir: Path,
    as_json: bool,
    retune: bool,
    seed: int,
    clock_mhz: float | None,
    no_library: bool,
    flash_limit: float | None,
    runner: str | None,
    remote: str | None,
    flash_budget: str | None,
    ram_budget: str | None,
    objective: str,
    cycle_budget: float | None,
    name: str | None,
) -> None:
    """Tune MODEL's layers for a target; write the library (model/), report.md and
    report.json to --out."""
    name = c_name(name) if name is not None else default_name(model)
    if remote:
        os.environ[REMOTE_ENV] = remote  # read by the runner, also in worker processes
    writable_dir(out_dir, "--out")  # before any work: a run must not fail at its end
    db_url = persistent_db(db_url)
    if part and board:
        raise click.UsageError("give --part or --board, not both")
    part = part or board
    if target is None:
        target = plugins.get_part(part).core if part else "cortex-m4"
        target = "cortex-m4" if target == "*" else target
    budget = _budget(flash_budget, ram_budget, objective, cycle_budget)
    if part and flash_budget is None and ram_budget is None and objective == "cycles":
        budget = part_budget(plugins.get_part(part))
    options = TuneOptions(
        target,
        trials,
        jobs,
        timeout,
        db_url,
        retune,
        seed,
        flash_limit,
        runner,
        part,
        budget,
        readonly=(*db_readonly, *([SHIPPED] if shipped_enabled() else [])),
    )
    console = Console(stderr=True, soft_wrap=not sys.stderr.isatty())  # logs: whole lines
    if not console.is_terminal:
        run = tune_model(model, options, LogEvents(console))
    else:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            run = tune_model(model, options, ProgressEvents(progress))
    unsupported = [layer for layer in run.layers if layer.status == "unsupported"]
    deployment = None
    library_name = None if unsupported or no_library else name
    # The tuning results stand on their own, whatever happens to the library.
    report = write_outputs(run, out_dir, library_name=library_name)
    if library_name is not None:
        choices = library_choices(run)
        isolated = {
            layer.index: layer.best.cycles
            for layer in run.layers
            if layer.best is not None and layer.best.cycles
        }
        for block in run.choice.fused if run.choice is not None else []:
            isolated[block.layers[2]] = round(block.cycles)  # the ADD's, inclusive: the block
        db = ResultsDB(db_url)
        with stage(
            console, f"emitting the library and running the whole model ({run.context.runner})"
        ):
            try:
                deployed = deploy(
                    run.graph,
                    run.target,
                    out_dir,
                    choices,
                    clock_mhz,
                    seed,
                    db=db,
                    isolated=isolated,
                    name=library_name,
                )
            except AutotuneError as exc:
                # Never leave a library that failed its build or its whole-model check
                # where it looks shipped.
                shutil.rmtree(out_dir / "model", ignore_errors=True)
                failure = "not bit-exact" if isinstance(exc, DeploymentMismatch) else "not built"
                write_outputs(run, out_dir, None, failed_deployment(out_dir, str(exc), failure))
                if isinstance(exc, CompileError) and exc.overflows():
                    raise library_too_large(model, run.target, exc.overflows()) from None
                raise
        # The headline speedup is library against library, both run whole; the
        # baseline library is a means, not an output: it is built outside --out.
        with (
            stage(console, "running the baseline library (the headline's reference)"),
            tempfile.TemporaryDirectory(prefix="autotune-baseline-") as work,
        ):
            base = deploy(
                run.graph,
                run.target,
                Path(work),
                baseline_choices(run.graph, run.target),
                clock_mhz,
                seed,
                db=db,
                name=library_name,
            )
        deployment = with_baseline(deployed.as_json(), base.as_json())
        if deployment["verified_calls"] and deployment["cycles"] is not None:
            with stage(console, "running the library on several inputs (latency per layer)"):
                latency = cached_latency(
                    run.graph, run.target, deployed.library, choices, out_dir, seed, db_url
                )
            if latency is not None:
                deployment["latency"] = latency
        if linux_abis(run.target):
            with stage(console, "building the embedded-Linux libraries"):
                deployment["linux"] = [
                    {
                        "triplet": b.abi.triplet,
                        "static": str(b.static),
                        "shared": str(b.shared),
                        "pkgconfig": str(b.pkgconfig),
                    }
                    for b in build_linux(deployed.library, run.target, out_dir)
                ]
        report = write_outputs(run, out_dir, None, deployment, library_name)
    t = report["totals"]
    console.print(
        f"{Path(model).name} on {run.target.name}: {t['tuned_layers']} layers tuned, "
        f"{run.measured} variants measured"
    )
    if report["metric"] == "code size only":
        console.print(
            f"  note: {run.target.name} cannot be executed here, so variants are ranked by code "
            "size only and are not verified on the target"
        )
    if deployment and deployment["cycles"] is not None and deployment["baseline"]:
        b = deployment["baseline"]
        console.print(
            f"  library, one inference, {deployment['metric']}: baseline library "
            f"{b['cycles']:,} -> tuned library {deployment['cycles']:,} "
            f"({deployment['speedup']}x)"
        )
        for e in deployment["layers_differing"]:
            console.print(
                f"  note: layer {e['index']} ({e['op']}) runs {e['cycles']:,} cycles in the "
                f"library vs {e['isolated_cycles']:,} when tuned alone ({e['difference']:+.1%})"
            )
    elif t["tuned_cycles"] is not None:
        per_mac = (
            f", {t['cycles_per_mac']} cycles/MAC, {t['instructions_per_mac']} instructions/MAC"
            if t["cycles_per_mac"] is not None
            else ""
        )
        console.print(
            f"  {report['metric']} (layers measured alone): baseline {t['baseline_cycles']:,} "
            f"-> tuned {t['tuned_cycles']:,} ({t['speedup']}x){per_mac}"
        )
    if deployment:
        d = deployment
        if d["verified_calls"]:
            when = f", {d['milliseconds']:.3f} ms at {d['clock_mhz']:g} MHz" if d["cycles"] else ""
            counted = (
                f", {d['instructions']:,} instructions per inference"
                if d["instructions"] is not None
                else ""
            )
            ran = f"bit-exact on {run.context.runner}{counted}{when}"
        else:
            ran = "compiled, not run (no executor for this target here)"
        console.print(
            f"  library {d['directory']}: {ran}; flash {d['flash']['total']:,} B; "
            f"arena {d['arena_bytes']:,} B, stack {d['ram']['stack_needed']:,} B"
        )
        if d.get("latency"):
            lat = d["latency"]
            dependent = lat["input_dependent_layers"]
            named = (
                "not known (no per-layer profile)"
                if dependent is None
                else ", ".join(f"{x['index']} ({x['op']})" for x in dependent) or "none"
            )
            console.print(
                f"  over {len(lat['inputs'])} inputs: {lat['model']['min']:,} to "
                f"{lat['model']['max']:,} {lat['metric']}; input-dependent layers: {named}"
            )
    for b in (deployment or {}).get("linux", []):
        console.print(f"  {b['triplet']}: {b['static']}, {b['shared']}, {b['pkgconfig']}")
    sources = out_dir / ("kernels" if library_name is None else "model")
    console.print(
        f"  wrote {out_dir / 'report.html'}, {out_dir / 'report.md'}, "
        f"{out_dir / 'report.json'} and {sources}/"
    )
    if as_json:
        click.echo(json.dumps(report, indent=2))
    if unsupported:
        names = describe_unsupported(unsupported_layers(run.graph))
        click.echo(f"autotune: error: {model}: {names}", err=True)
        sys.exit(3)
