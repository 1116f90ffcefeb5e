"""Built-in plugin: the Arm Cortex-M cores (ARMv6-M, ARMv7-M, ARMv7E-M, ARMv8-M Mainline).

The family in one folder: the targets (here), the Thumb M-profile ISA support
(``isa.py``, with the startup code ``start.S``) and the timing models (``timing.py``).

All build with Debian's gcc-arm-none-eabi. The memory map follows the Armv7-M/Armv8-M
default map (code region from 0x00000000, SRAM from 0x20000000), which is also the
layout of QEMU's MPS2/MPS3 boards, sized well above a real part so test programs and
whole networks fit. Clocks are those of a common part with that core, so cycle
estimates convert to plausible times.
"""

from __future__ import annotations

from collections.abc import Callable

from autotune.platform.hookspecs import hookimpl
from autotune.platform.target import MemoryRegion, Target, Toolchain
from autotune.targets.cortex_m.isa import ISAS
from autotune.targets.cortex_m.parts import PARTS
from autotune.targets.cortex_m.timing import MODELS

KIB = 1024
MIB = 1024 * KIB

_PACKAGE = "gcc-arm-none-eabi"
_SOFT = ("-mfloat-abi=soft",)


def _toolchain(cpu: str, float_flags: tuple[str, ...]) -> Toolchain:
    return Toolchain(
        debian_package=_PACKAGE,
        cc="arm-none-eabi-gcc",
        cflags=(f"-mcpu={cpu}", "-mthumb", *float_flags),
        ldflags=(f"-mcpu={cpu}", "-mthumb", *float_flags),
        objcopy="arm-none-eabi-objcopy",
        size="arm-none-eabi-size",
    )


def _memory(flash: int, ram: int) -> tuple[MemoryRegion, ...]:
    return (MemoryRegion("flash", 0x0000_0000, flash), MemoryRegion("ram", 0x2000_0000, ram))


_V6M = frozenset({"mul"})
_V7M = frozenset({"mul", "mul64", "div", "thumb2", "unaligned"})
_V7EM = _V7M | {"dsp"}

TARGETS: tuple[Target, ...] = (
    Target(
        name="cortex-m0",
        aliases=("m0",),
        family="cortex-m",
        arch="armv6-m",
        toolchain=_toolchain("cortex-m0", _SOFT),
        memory=_memory(1 * MIB, 512 * KIB),
        isa="thumb-m",
        runner="unicorn",
        cycle_model="cortex-m0 v2",
        features=_V6M,
        default_clock_mhz=48,
        description="Arm Cortex-M0: Thumb-1, no divide, no unaligned access (e.g. STM32F0)",
    ),
    Target(
        name="cortex-m0plus",
        aliases=("m0plus", "m0+"),
        family="cortex-m",
        arch="armv6-m",
        toolchain=_toolchain("cortex-m0plus", _SOFT),
        memory=_memory(1 * MIB, 512 * KIB),
        isa="thumb-m",
        runner="unicorn",
        cycle_model="cortex-m0plus v2",
        features=_V6M,
        default_clock_mhz=64,
        description="Arm Cortex-M0+: two-stage Thumb-1 pipeline (e.g. STM32G0, RP2040)",
    ),
    Target(
        name="cortex-m3",
        aliases=("m3",),
        family="cortex-m",
        arch="armv7-m",
        toolchain=_toolchain("cortex-m3", _SOFT),
        memory=_memory(1 * MIB, 512 * KIB),
        isa="thumb-m",
        runner="unicorn",
        cycle_model="cortex-m3 v3",
        features=_V7M,
        default_clock_mhz=72,
        description="Arm Cortex-M3: Thumb-2 with hardware divide, no DSP (e.g. STM32F1)",
    ),
    Target(
        name="cortex-m4",
        aliases=("m4",),
        family="cortex-m",
        arch="armv7e-m",
        toolchain=_toolchain("cortex-m4", ("-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")),
        memory=_memory(1 * MIB, 512 * KIB),
        isa="thumb-m",
        runner="unicorn",
        cycle_model="cortex-m4 v3",
        features=_V7EM | {"fpu"},
        simd_bits=32,
        default_clock_mhz=120,
        description="Arm Cortex-M4F: DSP extension (SMLAD, SXTB16), single-precision FPU "
        "(e.g. STM32L4R5 as in MLPerf Tiny)",
    ),
    Target(
        name="cortex-m7",
        aliases=("m7",),
        family="cortex-m",
        arch="armv7e-m",
        toolchain=_toolchain("cortex-m7", ("-mfloat-abi=hard", "-mfpu=fpv5-d16")),
        memory=_memory(2 * MIB, 1 * MIB),
        isa="thumb-m",
        runner="unicorn",
        cycle_model="cortex-m7 v2",
        features=_V7EM | {"fpu", "fpu-dp"},
        simd_bits=32,
        default_clock_mhz=480,
        description="Arm Cortex-M7: dual-issue, DSP extension, double-precision FPU (e.g. STM32H7)",
    ),
    Target(
        name="cortex-m33",
        aliases=("m33",),
        family="cortex-m",
        arch="armv8-m.main",
        toolchain=_toolchain("cortex-m33", ("-mfloat-abi=hard", "-mfpu=fpv5-sp-d16")),
        memory=_memory(1 * MIB, 512 * KIB),
        isa="thumb-m",
        runner="unicorn",
        cycle_model="cortex-m33 v3",
        features=_V7EM | {"fpu"},
        simd_bits=32,
        default_clock_mhz=160,
        description="Arm Cortex-M33: ARMv8-M Mainline with DSP extension and FPU (e.g. STM32U5)",
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
