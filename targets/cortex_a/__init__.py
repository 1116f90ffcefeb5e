"""Built-in plugin: the Arm Cortex-A application cores autotune tunes for bare-metal code.

cortex-a53 is built as AArch64 with Debian's Linux cross compiler (the kernels are
freestanding, so the Linux ABI does not matter); cortex-a7 is built in A32 (ARM) state
with gcc-arm-none-eabi, NEON through the softfp ABI so the bare-metal multilib links.
Both use the DRAM base of QEMU's ``virt`` boards (0x40000000), so the same image
loads in the emulator and in QEMU.
"""

from __future__ import annotations

from collections.abc import Callable

from autotune.platform.hookspecs import hookimpl
from autotune.platform.target import MemoryRegion, Target, Toolchain
from autotune.targets.cortex_a.isa import ISAS
from autotune.targets.cortex_a.timing import MODELS

MIB = 1024 * 1024


def _memory() -> tuple[MemoryRegion, ...]:
    return (
        MemoryRegion("flash", 0x4000_0000, 16 * MIB),
        MemoryRegion("ram", 0x4100_0000, 16 * MIB),
    )


_A7_FLAGS = ("-mcpu=cortex-a7", "-marm", "-mfpu=neon-vfpv4", "-mfloat-abi=softfp")

TARGETS: tuple[Target, ...] = (
    Target(
        name="cortex-a53",
        aliases=("a53",),
        family="cortex-a",
        arch="armv8-a",
        isa="aarch64",
        toolchain=Toolchain(
            debian_package="gcc-aarch64-linux-gnu",
            cc="aarch64-linux-gnu-gcc",
            cflags=("-mcpu=cortex-a53",),
            ldflags=("-mcpu=cortex-a53",),
            objcopy="aarch64-linux-gnu-objcopy",
            size="aarch64-linux-gnu-size",
        ),
        memory=_memory(),
        runner="unicorn",
        cycle_model="cortex-a53 v2",
        features=frozenset({"mul", "mul64", "div", "unaligned", "fpu", "fpu-dp", "neon"}),
        simd_bits=128,
        word_bits=64,
        default_clock_mhz=1200,
        description="Arm Cortex-A53: AArch64, in-order dual-issue, 128-bit NEON "
        "(e.g. Raspberry Pi 3)",
    ),
    Target(
        name="cortex-a7",
        aliases=("a7",),
        family="cortex-a",
        arch="armv7-a",
        isa="arm",
        toolchain=Toolchain(
            debian_package="gcc-arm-none-eabi",
            cc="arm-none-eabi-gcc",
            cflags=_A7_FLAGS,
            ldflags=_A7_FLAGS,
            objcopy="arm-none-eabi-objcopy",
            size="arm-none-eabi-size",
        ),
        memory=_memory(),
        runner="unicorn",
        cycle_model="cortex-a7 v1",
        features=frozenset({"mul", "mul64", "div", "thumb2", "unaligned", "dsp", "fpu", "fpu-dp", "neon"}),
        simd_bits=128,
        default_clock_mhz=900,
        description="Arm Cortex-A7: ARMv7-A (A32 state), in-order, NEON with VFPv4 "
        "(e.g. Raspberry Pi 2)",
    ),
)


@hookimpl
def register_targets(register: Callable[[Target], None]) -> None:
    for target in TARGETS:
        register(target)


@hookimpl
def register_isas(register: Callable[[object], None]) -> None:
    for isa in ISAS:
        register(isa)


@hookimpl
def register_cycle_models(register: Callable[[object], None]) -> None:
    for model in MODELS:
        register(model)
