"""Built-in plugin: the ways autotune executes and measures an ELF.

- ``unicorn``: the embedded emulator (exact instruction counts, cycles from the
  target's cycle model); the default runner of every target Unicorn can execute.
- ``qemu``: QEMU user mode, a second independent executor (exact instruction
  counts, no cycle model), used to cross-check the emulator.
- ``size-only``: for targets nothing here can execute (ARC EM without nSIM):
  it declines to run, so the tuner falls back to code size and says so.
- ``nsim``: Synopsys nSIM for ARC EM, reported available only where ``nsimdrv``
  is installed.
- ``gdb``: a Cortex-M core behind any GDB server (a board through pyOCD or OpenOCD,
  or QEMU's gdbstub), cycles from the core's DWT counter (docs/boards.md).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from autotune.platform.emulator import (
    DEFAULT_BUDGET,
    RunnerUnavailableError,
    RunResult,
    UnicornRunner,
)
from autotune.platform.gdb_runner import GdbRunner
from autotune.platform.hookspecs import hookimpl
from autotune.platform.qemu import QemuRunner
from autotune.platform.target import Target

NSIM_COMMAND = "nsimdrv"


class SizeOnlyRunner:
    """A runner that measures nothing: the target is tuned for code size, labelled as such."""

    name = "size-only"
    description = "no executor: variants are ranked by code size from the ELF"
    metric = "code size only"

    def available(self) -> str | None:
        return None

    def supports(self, target: Target) -> str | None:
        return None

    def run(
        self,
        elf_path: Path | str,
        target: Target,
        inputs: Mapping[str, bytes] | None = None,
        outputs: Mapping[str, int] | None = None,
        budget: int = DEFAULT_BUDGET,
    ) -> RunResult:
        raise RunnerUnavailableError(
            f"{target.name} has no executor here, so it is tuned for code size only "
            "(read sizes from the ELF instead of running it)"
        )


class NsimRunner:
    """Synopsys nSIM for ARC EM: usable only where ``nsimdrv`` is installed."""

    name = "nsim"
    description = "Synopsys nSIM (nsimdrv) for ARC EM"
    metric = "cycles (nSIM)"

    def available(self) -> str | None:
        if shutil.which(NSIM_COMMAND) is None:
            return f"{NSIM_COMMAND} (Synopsys nSIM) not found on PATH; it is not in Debian"
        return None

    def supports(self, target: Target) -> str | None:
        if target.family != "arc":
            return f"nSIM simulates ARC cores only, not {target.name}"
        return self.available()

    def run(
        self,
        elf_path: Path | str,
        target: Target,
        inputs: Mapping[str, bytes] | None = None,
        outputs: Mapping[str, int] | None = None,
        budget: int = DEFAULT_BUDGET,
    ) -> RunResult:
        reason = self.supports(target)
        raise RunnerUnavailableError(
            f"runner nsim cannot run {target.name}: "
            + (reason or "driving nsimdrv (inputs, outputs, counting) is not implemented yet")
        )


RUNNERS: tuple[Any, ...] = (
    UnicornRunner(),
    QemuRunner(),
    SizeOnlyRunner(),
    NsimRunner(),
    GdbRunner(),
)


@hookimpl
def register_runners(register: Callable[[Any], None]) -> None:
    for runner in RUNNERS:
        register(runner)
