"""What a target is: a core, its toolchain, its memory, how it runs and how it is timed.

Target plugins (targets/) create these; everything else only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Toolchain:
    """A cross compiler from Debian and the flags that select the core."""

    debian_package: str  # e.g. gcc-arm-none-eabi
    cc: str  # e.g. arm-none-eabi-gcc
    cflags: tuple[str, ...] = ()  # core selection: -mcpu=cortex-m4 -mthumb ...
    ldflags: tuple[str, ...] = ()
    objcopy: str = ""
    size: str = ""  # the binutils size tool, for cross-checks


@dataclass(frozen=True)
class MemoryRegion:
    name: str  # flash, ram
    origin: int
    length: int


@dataclass(frozen=True)
class Target:
    name: str  # canonical: cortex-m4, rv32imc, ...
    family: str  # cortex-m, cortex-a, riscv, arc
    arch: str  # armv7e-m, rv32imc, armv8-a, ...
    toolchain: Toolchain
    memory: tuple[MemoryRegion, ...]
    runner: str  # name of the default runner (see register_runners)
    cycle_model: str  # registered timing model, e.g. "cortex-m4 v3"; "" when none
    aliases: tuple[str, ...] = ()
    isa: str = ""  # name of the registered IsaSupport (see register_isas): "thumb-m", ...
    features: frozenset[str] = field(
        default_factory=frozenset
    )  # dsp, neon, mul, div, compressed, fpu...
    simd_bits: int = 0  # width of the integer SIMD the kernels may use (32 for DSP, 128 for NEON)
    word_bits: int = 32
    endian: str = "little"
    default_clock_mhz: float = 100
    description: str = ""
    # The chip whose memory system the timing includes (platform/parts.py); None: the
    # core alone with zero-wait memory. Set by parts.apply_part, never by plugins.
    part: Any = field(default=None, compare=False)  # an autotune.platform.parts.Part

    def has(self, feature: str) -> bool:
        return feature in self.features

    def code_and_data(self) -> tuple[MemoryRegion, MemoryRegion]:
        """(code region, data region): by conventional names, else first and last region
        (the map must not be empty)."""
        by_name = {r.name.lower(): r for r in self.memory}
        code = next((by_name[n] for n in _CODE_REGION_NAMES if n in by_name), self.memory[0])
        data = next((by_name[n] for n in _DATA_REGION_NAMES if n in by_name), self.memory[-1])
        return code, data


_CODE_REGION_NAMES = ("flash", "rom", "itcm", "code", "iram")
_DATA_REGION_NAMES = ("ram", "sram", "dtcm", "data", "dram")
