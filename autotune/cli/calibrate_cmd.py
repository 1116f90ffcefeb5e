"""`autotune calibrate --part NAME --runner gdb --remote HOST:PORT`: fit a part preset to a board."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from autotune.platform import plugins
from autotune.platform.calibrate import calibrate
from autotune.platform.gdb_runner import REMOTE_ENV


@click.command("calibrate")
@click.option("--part", "part_name", required=True, help="The part preset to calibrate.")
@click.option(
    "--runner", default="gdb", show_default=True, help="The runner that reaches the board."
)
@click.option("--remote", metavar="HOST:PORT", help="The board's GDB server [AUTOTUNE_REMOTE].")
@click.option(
    "--target",
    "-t",
    "target_name",
    help="The core, when it is not the part's own (see `autotune targets`).",
)
@click.option(
    "--out",
    "-o",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the calibrated preset [default: PART-calibrated.json].",
)
def command(
    part_name: str, runner: str, remote: str | None, target_name: str | None, out_path: Path | None
) -> None:
    """Run fixed microbenchmarks on a board, fit the part's memory parameters to its DWT
    cycle counts, and write a calibrated preset that `--part FILE` loads (docs/boards.md)."""
    from autotune.platform.calibrate import parts_registry

    parts_registry()  # a clear error where this build has no part presets
    part = plugins.get_part(part_name)
    if remote:
        os.environ[REMOTE_ENV] = remote
    target = plugins.get_target(target_name or part.core)
    board = plugins.get_runner(runner)
    reason = board.available() or board.supports(target)
    if reason:
        raise click.UsageError(f"runner {runner}: {reason}")
    click.echo(f"calibrating {part.name} ({target.name}) on runner {runner}", err=True)

    def progress(name: str, cycles: int) -> None:
        click.echo(f"  {name}: {cycles:,} {board.metric_label(target)}", err=True)

    preset, fitted = calibrate(board, target, part.name, report=progress)
    out = out_path or Path(f"{part.name}-calibrated.json")
    out.write_text(json.dumps(preset, indent=2) + "\n")
    for name, row in preset["fit"]["benchmarks"].items():
        click.echo(
            f"  {name:24s} board {row['measured']:>10,}  model {row['predicted']:>10,}  "
            f"{100 * row['error']:+.2f}%"
        )
    shown = ", ".join(f"{k} = {v}" for k, v in fitted.values.items())
    click.echo(f"fitted: {shown}; {fitted.overhead:.0f} cycles per run outside the model")
    click.echo(f"wrote {out} (load it with --part {out})")
