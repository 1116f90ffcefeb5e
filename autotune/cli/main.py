"""Entry point: `autotune <command>`; errors become one line on stderr, never a traceback."""

from __future__ import annotations

import difflib
import os
import sys
import traceback

import click

from autotune import __version__
from autotune.errors import AutotuneError


class DefaultToTune(click.Group):
    """`autotune MODEL ...` means `autotune tune MODEL ...`: the main job needs no verb."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            self._no_such_command(args[0])
            args = ["tune", *args]
        return super().parse_args(ctx, args)

    def _no_such_command(self, word: str) -> None:
        """`autotune inspct M` names the unknown command instead of tuning a file 'inspct'."""
        if os.path.exists(word) or "." in os.path.basename(word) or os.sep in word:
            return  # a model path (present or not: tune says "no such file")
        close = difflib.get_close_matches(word, list(self.commands), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise AutotuneError(
            f"unknown command '{word}'{hint} (commands: {', '.join(sorted(self.commands))}; "
            "to tune a model, give its .tflite path)"
        )


@click.group(cls=DefaultToTune, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="autotune")
def cli() -> None:
    """Tune int8 neural-network kernels for microcontrollers, bit-exact with TFLM.

    The main job: autotune MODEL.tflite --target cortex-m4 (same as `autotune tune ...`).
    """


def _register_commands() -> None:
    # Each command lives in its own module under autotune/cli/.
    from autotune.cli import (
        calibrate_cmd,
        db_cmd,
        estimate_cmd,
        example_cmd,
        inspect_cmd,
        reference_cmd,
        team_cmd,
        tune_cmd,
    )

    cli.add_command(tune_cmd.command)
    cli.add_command(db_cmd.command)
    cli.add_command(team_cmd.submit_command)
    cli.add_command(team_cmd.worker_command)
    cli.add_command(example_cmd.command)
    cli.add_command(estimate_cmd.command)
    cli.add_command(inspect_cmd.command)
    cli.add_command(reference_cmd.command)
    cli.add_command(calibrate_cmd.command)
    try:
        from autotune.cli import targets_cmd
    except ImportError:  # pragma: no cover - present once the targets issue lands
        return
    cli.add_command(targets_cmd.command)


def main(argv: list[str] | None = None) -> None:
    _register_commands()
    try:
        cli.main(args=argv, prog_name="autotune", standalone_mode=False)
    except AutotuneError as exc:
        click.echo(f"autotune: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("autotune: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("autotune: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a bug in autotune, not in the user's input
        if os.environ.get("AUTOTUNE_DEBUG"):
            traceback.print_exc()
        click.echo(
            f"autotune: internal error: {type(exc).__name__}: {exc} "
            "(set AUTOTUNE_DEBUG=1 for the traceback, and please report it)",
            err=True,
        )
        sys.exit(70)
