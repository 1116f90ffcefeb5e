"""MIPS32r2, little endian, bare metal: what autotune needs to build, run and time it.

- Startup: ``start_mips32.S`` in this package (stack, call, stop).
- Emulator: Unicorn's MIPS32 engine, little endian, with its M14K CPU model (the
  microAptiv's predecessor, same MIPS32r2 base ISA, no DSP extension). Unicorn
  translates kseg0/kseg1 addresses (0x80000000-0xBFFFFFFF), where PIC32 code and
  data live, to physical ones before its memory map, so memory is mapped, loaded
  and read at ``physical(address)``.
- Decoder: capstone's MIPS32 (see :mod:`autotune_mips.decode`).
- Compiler features: GCC's predefined macros say whether the code may use
  multiply and divide (always on MIPS32) and a hardware FPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from autotune.platform.cycles.decode import CapstoneDecoder
from autotune.platform.isa import EmulatorCpu, IsaSupport

from autotune_mips.decode import mips_decoder

if TYPE_CHECKING:
    from autotune.platform.target import Target

ISA_NAME = "mips32r2-el"

# QEMU's MIPS exception numbers (target/mips/cpu.h), as Unicorn reports them.
EXCEPTIONS: Mapping[int, str] = {
    12: "address error on load or fetch (AdEL: unaligned or kernel address)",
    13: "address error on store (AdES: unaligned address)",
    15: "bus error on instruction fetch",
    17: "syscall",
    18: "break",
    19: "coprocessor unusable",
    20: "reserved instruction",
    21: "integer overflow",
    22: "trap (teq/tne...)",
    23: "floating-point exception",
    28: "bus error on data access",
}


def physical(address: int) -> int:
    """kseg0/kseg1 (unmapped segments) to physical: strip the top three bits."""
    if 0x8000_0000 <= address < 0xC000_0000:
        return address & 0x1FFF_FFFF
    return address


class Mips32r2(IsaSupport):
    """Little-endian MIPS32 Release 2 (o32 ABI, no PIC), as in PIC32MZ microcontrollers."""

    name = ISA_NAME
    elf_machine = "EM_MIPS"
    startup = Path(str(resources.files("autotune_mips") / "start_mips32.S"))
    description = "MIPS32r2 little endian, bare metal (Unicorn M14K CPU, capstone decoder)"

    def emulator(self, target: Target) -> EmulatorCpu | None:
        import unicorn as uc
        from unicorn import mips_const as mips

        if target.endian != "little" or target.word_bits != 32:
            return None
        return EmulatorCpu(
            arch=uc.UC_ARCH_MIPS,
            mode=uc.UC_MODE_MIPS32 | uc.UC_MODE_LITTLE_ENDIAN,
            cpu=mips.UC_CPU_MIPS32_M14K,
            pc=mips.UC_MIPS_REG_PC,
            sp=mips.UC_MIPS_REG_SP,
            lr=mips.UC_MIPS_REG_RA,
            exceptions=EXCEPTIONS,
            physical=physical,
        )

    def decoder(self) -> CapstoneDecoder:
        return mips_decoder()

    def compiler_features(self, macros: Mapping[str, str]) -> tuple[set[str], set[str]] | None:
        if "__mips__" not in macros and "__mips" not in macros:
            return None
        implied = {"mul", "div"}
        if "__mips_hard_float" in macros:
            implied.add("fpu")
        return implied, {"mul", "div", "fpu"}
