"""Built-in plugin: Synopsys ARC EM (em4_dmips), built with Debian's gcc-arc-linux-gnu.

No free emulator executes ARCv2EM code, so how arc-em is measured depends on the
machine: with Synopsys nSIM (``nsimdrv`` on PATH) the "nsim" runner executes it; without
it the "size-only" runner reports code size only, and the target says so. The choice is
made when the registry is built, i.e. once per process.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

from autotune.platform.hookspecs import hookimpl
from autotune.platform.target import MemoryRegion, Target, Toolchain
from autotune.targets.arc.isa import ISAS
from autotune.targets.arc.runner import NSIM_COMMAND, NsimRunner

KIB = 1024
MIB = 1024 * KIB

_FLAGS = ("-mcpu=em4_dmips",)


def arc_em_target(nsim_present: bool) -> Target:
    """The arc-em target, measured by nSIM when present and by code size otherwise."""
    return Target(
        name="arc-em",
        aliases=("em4_dmips", "arc", "em4"),
        family="arc",
        arch="arcv2em",
        isa="arcv2",
        toolchain=Toolchain(
            debian_package="gcc-arc-linux-gnu",
            cc="arc-linux-gnu-gcc",
            cflags=_FLAGS,
            ldflags=_FLAGS,
            objcopy="arc-linux-gnu-objcopy",
            size="arc-linux-gnu-size",
        ),
        # ICCM from 0 and DCCM at 0x80000000, the usual ARC EM closely-coupled memories.
        memory=(
            MemoryRegion("flash", 0x0000_0000, 1 * MIB),
            MemoryRegion("ram", 0x8000_0000, 512 * KIB),
        ),
        runner="nsim" if nsim_present else "size-only",
        cycle_model="",
        features=frozenset({"mul", "div", "code-density", "barrel-shifter"}),
        default_clock_mhz=100,
        description="Synopsys ARC EM4 (em4_dmips): code density, 32x32 multiply, divide"
        + ("" if nsim_present else "; nSIM not found, so code size only"),
    )


@hookimpl
def register_targets(register: Callable[[Target], None]) -> None:
    register(arc_em_target(shutil.which(NSIM_COMMAND) is not None))


@hookimpl
def register_isas(register: Callable[[object], None]) -> None:
    for isa in ISAS:
        register(isa)


@hookimpl
def register_runners(register: Callable[[object], None]) -> None:
    register(NsimRunner())
