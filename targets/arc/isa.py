"""ARCv2 EM: startup code and feature macros. No free emulator or QEMU runs it, so the
ISA support offers neither, and the unicorn and qemu runners decline with that reason."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from autotune.platform.isa import IsaSupport

_FEATURE_MACROS = {
    "mul": "__ARC_MPY__",
    "div": "__ARC_DIVREM__",
    "code-density": "__ARC_CODE_DENSITY__",
    "barrel-shifter": "__ARC_BARREL_SHIFTER__",
    "fpu": "__ARC_FPU_SP__",
}


class ArcV2(IsaSupport):
    name = "arcv2"
    elf_machine = "EM_ARC_COMPACT2"
    startup = Path(__file__).with_name("start.S")
    description = "Synopsys ARCv2 (ARC EM)"

    def compiler_features(self, macros: Mapping[str, str]) -> tuple[set[str], set[str]] | None:
        if "__arc__" not in macros:
            return None
        implied = {f for f, m in _FEATURE_MACROS.items() if m in macros}
        if "__ARC_FPU_DP__" in macros:
            implied.add("fpu-dp")
        return implied, {*_FEATURE_MACROS, "fpu-dp"}


ISAS: tuple[IsaSupport, ...] = (ArcV2(),)
