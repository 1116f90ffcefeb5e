"""Built-in plugin: 32-bit RISC-V profiles, built with Debian's gcc-riscv64-unknown-elf.

rv32imc is the default RISC-V profile (alias ``riscv``). Profiles without atomics are
timed as an Ibex core (lowRISC, in-order two-stage); those with atomics as a SiFive
E31. Memory follows the SiFive/QEMU layout: code from 0x20000000 (the E31's XIP
flash, QEMU ``virt``'s flash), data from 0x80000000 (DTIM / DRAM).
"""

from __future__ import annotations

from collections.abc import Callable

from autotune.platform.hookspecs import hookimpl
from autotune.platform.target import MemoryRegion, Target, Toolchain
from autotune.targets.riscv.isa import ISAS
from autotune.targets.riscv.parts import PARTS
from autotune.targets.riscv.timing import MODELS

KIB = 1024
MIB = 1024 * KIB


def _toolchain(march: str, mabi: str) -> Toolchain:
    flags = (f"-march={march}", f"-mabi={mabi}")
    return Toolchain(
        debian_package="gcc-riscv64-unknown-elf",
        cc="riscv64-unknown-elf-gcc",
        cflags=flags,
        ldflags=flags,
        objcopy="riscv64-unknown-elf-objcopy",
        size="riscv64-unknown-elf-size",
    )


def _memory() -> tuple[MemoryRegion, ...]:
    return (
        MemoryRegion("flash", 0x2000_0000, 1 * MIB),
        MemoryRegion("ram", 0x8000_0000, 512 * KIB),
    )


_IM = frozenset({"mul", "mul64", "div"})  # M: MULH gives the high word

TARGETS: tuple[Target, ...] = (
    Target(
        name="rv32imc",
        aliases=("riscv", "riscv32"),
        family="riscv",
        arch="rv32imc",
        toolchain=_toolchain("rv32imc", "ilp32"),
        memory=_memory(),
        isa="riscv32",
        runner="unicorn",
        cycle_model="ibex v1",
        features=_IM | {"compressed"},
        default_clock_mhz=100,
        description="RV32IMC, the default RISC-V profile, timed as lowRISC Ibex",
    ),
    Target(
        name="rv32im",
        family="riscv",
        arch="rv32im",
        toolchain=_toolchain("rv32im", "ilp32"),
        memory=_memory(),
        isa="riscv32",
        runner="unicorn",
        cycle_model="ibex v1",
        features=_IM,
        default_clock_mhz=100,
        description="RV32IM without compressed instructions, timed as lowRISC Ibex",
    ),
    Target(
        name="rv32imac",
        family="riscv",
        arch="rv32imac",
        toolchain=_toolchain("rv32imac", "ilp32"),
        memory=_memory(),
        isa="riscv32",
        runner="unicorn",
        cycle_model="sifive-e31 v1",
        features=_IM | {"compressed", "atomic"},
        default_clock_mhz=320,
        description="RV32IMAC, timed as a SiFive E31 (e.g. FE310-G002)",
    ),
    Target(
        name="rv32gc",
        family="riscv",
        arch="rv32gc",
        toolchain=_toolchain("rv32gc", "ilp32d"),
        memory=_memory(),
        isa="riscv32",
        runner="unicorn",
        cycle_model="sifive-e31 v1",
        features=_IM | {"compressed", "atomic", "fpu", "fpu-dp"},
        default_clock_mhz=320,
        description="RV32GC (IMAFD + C, hard-float ABI), integer timing of a SiFive E31",
    ),
)


@hookimpl
def register_targets(register: Callable[[object], None]) -> None:
    for target in TARGETS:
        register(target)
    for part in PARTS:  # the chips these cores come in (platform/parts.py)
        register(part)


@hookimpl
def register_isas(register: Callable[[object], None]) -> None:
    for isa in ISAS:
        register(isa)


@hookimpl
def register_cycle_models(register: Callable[[object], None]) -> None:
    for model in MODELS:
        register(model)
