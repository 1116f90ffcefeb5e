"""`autotune targets`: every target the loaded plugins offer, and how each is measured.

The table is for people; ``--json`` is for scripts and has a stable shape documented in
docs/cli.md (``schema_version`` is bumped on any incompatible change, as in every JSON
autotune writes).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from autotune.platform import plugins
from autotune.platform.parts import Part
from autotune.platform.target import Target

SCHEMA_VERSION = 1

def describe_target(target: Target) -> dict[str, Any]:
    """One target as the JSON object documented in docs/cli.md."""
    tc = target.toolchain
    compiler = shutil.which(tc.cc)
    return {
        "name": target.name,
        "aliases": list(target.aliases),
        "family": target.family,
        "arch": target.arch,
        "description": target.description,
        "features": sorted(target.features),
        "simd_bits": target.simd_bits,
        "word_bits": target.word_bits,
        "endian": target.endian,
        "default_clock_mhz": target.default_clock_mhz,
        "toolchain": {
            "debian_package": tc.debian_package,
            "cc": tc.cc,
            "cflags": list(tc.cflags),
            "installed": compiler is not None,
            "path": compiler,
        },
        "memory": [{"name": r.name, "origin": r.origin, "length": r.length} for r in target.memory],
        "runner": target.runner,
        "runner_registered": target.runner in plugins.get_runners(),
        "cycle_model": target.cycle_model or None,
        "metric": plugins.metric_label(target),
        "plugin": plugins.target_plugin(target.name),
    }


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="autotune targets", title_justify="left", show_lines=True)
    # Aliases and the install status go on a second line of their cell, so a row
    # stays readable down to an 80-column terminal.
    table.add_column("target", overflow="fold")
    table.add_column("family", overflow="fold")
    table.add_column("features", overflow="fold")
    table.add_column("toolchain", overflow="fold")
    table.add_column("runner", overflow="fold")
    table.add_column("metric", overflow="fold")
    for row in rows:
        name = row["name"]
        if row["aliases"]:
            name += f"\n[dim]{', '.join(row['aliases'])}[/]"
        tc = row["toolchain"]
        status = "[green]installed[/]" if tc["installed"] else "[red]not installed[/]"
        runner = row["runner"] if row["runner_registered"] else f"{row['runner']}\n[red]missing[/]"
        table.add_row(
            name,
            row["family"],
            " ".join(row["features"]) or "-",
            f"{tc['debian_package']}\n{status}",
            runner,
            row["metric"],
        )
    return table


@click.command("targets")
@click.option(
    "-t",
    "--target",
    "names",
    multiple=True,
    metavar="NAME",
    help="Only this target (name or alias); repeat for several.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (shape in docs/cli.md).")
@click.option("--parts", "parts", is_flag=True, help="List the parts (--part) instead.")
def command(names: tuple[str, ...], as_json: bool, parts: bool) -> None:
    """List every target: family, ISA features, toolchain, runner and what is measured."""
    if parts:
        _list_parts(as_json)
        return
    if names:
        chosen = list(dict.fromkeys(plugins.get_target(n) for n in names))
    else:
        chosen = list(plugins.get_targets().values())  # plugin load order, as registered
    rows = [describe_target(t) for t in chosen]
    if as_json:
        click.echo(json.dumps({"schema_version": SCHEMA_VERSION, "targets": rows}, indent=2))
        return
    console = Console(soft_wrap=False)
    console.print(_table(rows))
    missing = sorted(
        {r["toolchain"]["debian_package"] for r in rows if not r["toolchain"]["installed"]}
    )
    if missing:
        console.print(f"Install the missing compilers with: apt-get install {' '.join(missing)}")


def describe_part(part: Part) -> dict[str, object]:
    return {
        "name": part.name,
        "core": part.core,
        "clock_mhz": part.clock_mhz,
        "version": part.version,
        "boards": list(part.boards),
        "memories": [dataclasses.asdict(m) for m in part.memories],
        "caches": [dataclasses.asdict(c) for c in part.caches],
        "placement": {k: list(v) for k, v in part.placement.items()},
        "reference": part.reference,
        "description": part.description,
    }


def _list_parts(as_json: bool) -> None:
    rows = [describe_part(p) for p in plugins.get_parts().values()]
    if as_json:
        click.echo(json.dumps({"schema_version": SCHEMA_VERSION, "parts": rows}, indent=2))
        return
    table = Table("part", "core", "clock", "boards", "memory system", "source")
    for p in plugins.get_parts().values():
        caches = ", ".join(f"{c.name} {c.size} B {c.ways}-way +{c.miss_penalty}" for c in p.caches)
        waits = ", ".join(f"{m.name} {m.wait_states} WS" for m in p.memories if m.wait_states)
        table.add_row(
            p.name,
            p.core,
            f"{p.clock_mhz:g} MHz" if p.core != "*" else "-",
            ", ".join(p.boards) or "-",
            "; ".join(x for x in (waits, caches) if x) or "zero-wait",
            p.reference,
        )
    Console(soft_wrap=False).print(table)
