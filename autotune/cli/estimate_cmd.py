"""`autotune estimate MODEL --target T`: cycles, milliseconds, flash and RAM without tuning."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from autotune.db import default_db_url
from autotune.model.tflite_import import load_model
from autotune.tune.estimate import estimate
from autotune.tune.pipeline import TuneOptions, resolve_target

_SOURCES = {
    "db": "measured: the results DB's best variant for this workload, and its baseline",
    "expected": "not measured: per-op figures calibrated on the example models (baseline and a "
    "first-guess variant, bench/calibrate_estimates.py) x this layer's MACs or outputs",
    "none": "no figures for this op on this target",
}


def _n(v: Any) -> str:
    return "-" if v is None else f"{v:,}"


@click.command("estimate")
@click.argument("model", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--target", "-t", default="cortex-m4", show_default=True, help="Core to estimate for."
)
@click.option(
    "--part",
    metavar="PART",
    help="Time on this part's memory system (`autotune targets --parts`): the DB's figures "
    "measured for that part; calibrated figures stay core-only.",
)
@click.option(
    "--db", "db_url", metavar="URL", help=f"Results DB to read [default: {default_db_url()}]"
)
@click.option("--json", "as_json", is_flag=True, help="Print the documented JSON (docs/cli.md).")
def command(model: str, target: str, part: str | None, db_url: str | None, as_json: bool) -> None:
    """Estimate MODEL's cycles, milliseconds, flash and RAM on a target, in seconds."""
    graph = load_model(model)
    result = estimate(graph, resolve_target(TuneOptions(target, part=part)), db_url)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    console = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title=f"{model} on {result['target']}", title_justify="left")
    for col, right in (
        ("#", True),
        ("op", False),
        ("MACs", True),
        ("baseline cycles", True),
        ("cycles", True),
        ("ms", True),
        ("weights B", True),
        ("code B", True),
        ("from", False),
    ):
        table.add_column(col, justify="right" if right else "left", no_wrap=True)
    for e in result["layers"]:
        table.add_row(
            str(e["index"]),
            e["op"],
            _n(e["macs"] or None),
            _n(e["baseline_cycles"]),
            _n(e["cycles"]),
            "-" if e["ms"] is None else f"{e['ms']:.3f}",
            _n(e["weights_bytes"] or None),
            _n(e["code_bytes"]),
            e["source"],
        )
    t = result["totals"]
    table.add_section()
    table.add_row(
        "",
        "total",
        _n(t["macs"]),
        _n(t["baseline_cycles"]),
        _n(t["cycles"]),
        f"{t['ms']:.3f}",
        _n(result["flash"]["weights"]),
        _n(result["flash"]["code"]),
        "",
    )
    console.print(table)
    console.print(
        f"{result['metric']} at {result['clock_mhz']:g} MHz: about {t['ms']:.2f} ms "
        f"(baseline {t['baseline_ms']:.2f} ms); {t['layers_from_db']} layers measured (DB), "
        f"{t['layers_expected']} expected, {t['layers_without_estimate']} without an estimate"
    )
    for source in sorted({e["source"] for e in result["layers"]}):
        console.print(f"  {source}: {_SOURCES[source]}")
    cal = result["calibration"]
    if cal and t["layers_expected"]:
        stale = " (not the target's current model)" if cal["metric"] != result["metric"] else ""
        console.print(
            f"  calibration: {cal['metric']}{stale}, autotune {cal['tool_version']}, {cal['date']}"
        )
    ram, tflm = result["ram"], result["tflm_arena"]
    vs = f" (tflite-micro: {tflm['total']:,} B)" if tflm else " (tflite-micro cannot load it)"
    console.print(
        f"flash: weights {result['flash']['weights']:,} B + code about "
        f"{result['flash']['code']:,} B; RAM: arena {ram['arena']:,} B{vs}, state {ram['state']:,} B"
    )
    console.print(
        f"  in place where the data flow allows (least-RAM variants): arena "
        f"{ram['arena_in_place']:,} B"
    )
