"""Built-in plugin: the ways autotune executes and measures an ELF.

- ``unicorn``: the embedded emulator (exact instruction counts, cycles from the
  target's cycle model); the default runner of every target Unicorn can execute.
- ``qemu``: QEMU user mode, a second independent executor (exact instruction
  counts, no cycle model), used to cross-check the emulator.
- ``size-only``: for targets nothing here can execute (ARC EM without nSIM):
  it declines to run, so the tuner falls back to code size and says so.
- ``gdb``: a Cortex-M core behind any GDB server (a board through pyOCD or OpenOCD,
  or QEMU's gdbstub), cycles from the core's DWT counter (docs/boards.md).

The ARC family plugin (``targets/arc/``) brings its own runner, ``nsim``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from autotune.platform.emulator import (
    DEFAULT_BUDGET,
    RunnerUnavailableError,
    RunResult,
    UnicornRunner,
)
from autotune.platform.gdb_runner import GdbRunner
from autotune.platform.hookspecs import hookimpl
from autotune.platform.qemu import QemuRunner
from autotune.platform.runner import Runner, RunnerCapabilities
from autotune.platform.target import Target


class SizeOnlyRunner(Runner):
    """A runner that measures nothing: the target is tuned for code size, labelled as such."""

    name = "size-only"
    description = "no executor: variants are ranked by code size from the ELF"
    capabilities = RunnerCapabilities(executes=False)

    def run(
        self,
        elf_path: Path | str,
        target: Target,
        inputs: Mapping[str, bytes] | None = None,
        outputs: Mapping[str, int] | None = None,
        budget: int = DEFAULT_BUDGET,
        profile: bool = False,
    ) -> RunResult:
        raise RunnerUnavailableError(
            f"{target.name} has no executor here, so it is tuned for code size only "
            "(read sizes from the ELF instead of running it)"
        )


RUNNERS: tuple[Runner, ...] = (UnicornRunner(), QemuRunner(), SizeOnlyRunner(), GdbRunner())


@hookimpl
def register_runners(register: Callable[[Runner], None]) -> None:
    for runner in RUNNERS:
        register(runner)
