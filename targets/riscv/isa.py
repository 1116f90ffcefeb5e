"""RV32 (I, M, A, F, D, C) as the 32-bit RISC-V profiles run it bare-metal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from autotune.platform.cycles.decode import CapstoneDecoder, riscv_insn
from autotune.platform.isa import Decoder, EmulatorCpu, IsaSupport
from autotune.platform.target import Target

_EXCEPTIONS = {
    0: "instruction address misaligned",
    1: "instruction access fault",
    2: "illegal instruction",
    3: "breakpoint (ebreak)",
    4: "load address misaligned",
    5: "load access fault",
    6: "store address misaligned",
    7: "store access fault",
    8: "ecall (U)",
    11: "ecall (M)",
}

_FEATURE_MACROS = {
    "mul": "__riscv_mul",
    "div": "__riscv_div",
    "compressed": "__riscv_compressed",
    "atomic": "__riscv_atomic",
    "fpu": "__riscv_flen",
}

#: The psABI's global pointer: the linker script defines it, the emulator sets gp.
GP_SYMBOL = "__global_pointer$"


def _setup(uc) -> None:
    """mstatus.FS = Initial, so F/D instructions of rv32gc are enabled."""
    from unicorn import riscv_const as rv

    uc.reg_write(rv.UC_RISCV_REG_MSTATUS, uc.reg_read(rv.UC_RISCV_REG_MSTATUS) | (1 << 13))


class Rv32(IsaSupport):
    name = "riscv32"
    elf_machine = "EM_RISCV"
    startup = Path(__file__).with_name("start.S")
    description = "RISC-V RV32 (I, M, A, F, D, C)"
    qemu_user = "qemu-riscv32"

    def emulator(self, target: Target) -> EmulatorCpu | None:
        import unicorn as uc
        from unicorn import riscv_const as rv

        return EmulatorCpu(
            arch=uc.UC_ARCH_RISCV,
            mode=uc.UC_MODE_RISCV32,
            cpu=rv.UC_CPU_RISCV32_ANY,
            pc=rv.UC_RISCV_REG_PC,
            sp=rv.UC_RISCV_REG_SP,
            lr=rv.UC_RISCV_REG_RA,
            gp=rv.UC_RISCV_REG_GP,
            gp_symbol=GP_SYMBOL,
            exceptions=_EXCEPTIONS,
            setup=_setup,
        )

    def decoder(self) -> Decoder:
        import capstone

        mode = capstone.CS_MODE_RISCV32 | capstone.CS_MODE_RISCVC
        return CapstoneDecoder({0: (capstone.CS_ARCH_RISCV, mode, riscv_insn)})

    def linker_data_symbols(self) -> Sequence[str]:
        return (f"    {GP_SYMBOL} = . + 0x800;",)

    def compiler_features(self, macros: Mapping[str, str]) -> tuple[set[str], set[str]] | None:
        if "__riscv" not in macros:
            return None
        implied = {f for f, m in _FEATURE_MACROS.items() if m in macros}
        if int(macros.get("__riscv_flen", "0")) >= 64:
            implied.add("fpu-dp")
        if "mul" in implied:
            implied.add("mul64")  # the M extension's MULH/MULHU give the high word
        return implied, {*_FEATURE_MACROS, "fpu-dp", "mul64"}


ISAS: tuple[IsaSupport, ...] = (Rv32(),)
