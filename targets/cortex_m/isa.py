"""Thumb on M-profile cores (ARMv6-M to ARMv8-M Mainline): startup, emulator, decoder, QEMU.

Cortex-M code runs under ``qemu-arm -cpu max``: QEMU 7.2's user mode aborts at
start-up with M-profile CPUs (assertion in page_set_flags), and the A-profile
``max`` CPU executes every Thumb-2 and DSP instruction an M-profile kernel uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from autotune.platform.cycles.decode import CapstoneDecoder, thumb_insn
from autotune.platform.isa import DebugSupport, Decoder, EmulatorCpu, IsaSupport, QemuCommand
from autotune.platform.target import Target
from autotune.targets.cortex_m.debug import MProfileDebug

#: Unicorn's exception numbers for Arm CPUs, as Unicorn's M-profile CPUs raise them.
M_EXCEPTIONS = {
    1: "undefined instruction (UsageFault)",
    2: "SVC",
    3: "prefetch abort",
    4: "data abort (bus fault)",
    7: "BKPT",
    8: "exception exit",
    9: "kernel trap",
    18: "no coprocessor (FPU disabled)",
    19: "invalid exception state",
    20: "unaligned access (UsageFault)",
}

#: Compiler predefined macros that state each feature of an Arm core (A and M profile).
ARM_FEATURE_MACROS = {
    "dsp": "__ARM_FEATURE_DSP",
    "neon": "__ARM_NEON",
    "div": "__ARM_FEATURE_IDIV",
    "unaligned": "__ARM_FEATURE_UNALIGNED",
    "fpu": "__ARM_FP",
}


def arm_compiler_features(macros: Mapping[str, str]) -> tuple[set[str], set[str]] | None:
    """(implied, checked) features from an Arm compiler's macros; None for other compilers."""
    if "__aarch64__" not in macros and "__arm__" not in macros:
        return None
    implied = {f for f, m in ARM_FEATURE_MACROS.items() if m in macros}
    if int(macros.get("__ARM_FP", "0"), 0) & 0x8:
        implied.add("fpu-dp")
    if macros.get("__ARM_ARCH_ISA_THUMB") == "2":
        implied.add("thumb2")
    if "thumb2" in implied or "__ARM_ARCH_ISA_ARM" in macros or "__aarch64__" in macros:
        implied.add("mul64")  # SMULL/UMULL: all but ARMv6-M's 16-bit Thumb
    return implied, {*ARM_FEATURE_MACROS, "fpu-dp", "thumb2", "mul64"}


#: M-profile architectures with instructions the A profile lacks (see ThumbM.qemu).
QEMU_USER_CANNOT_RUN = frozenset({"armv8.1-m.main"})


class ThumbM(IsaSupport):
    """Thumb/Thumb-2 as M-profile cores execute it."""

    name = "thumb-m"
    elf_machine = "EM_ARM"
    startup = Path(__file__).with_name("start.S")
    description = "Arm Thumb, M profile (ARMv6-M, ARMv7-M, ARMv7E-M, ARMv8-M)"
    qemu_user = "qemu-arm"
    function_address_mask = ~1  # bit 0 of a function symbol is the Thumb state

    def debug(self, target: Target) -> DebugSupport:
        return MProfileDebug(target)

    def emulator(self, target: Target) -> EmulatorCpu | None:
        """Each core runs on its own Unicorn CPU model, so an instruction the core lacks
        (SMLAD on a Cortex-M0) is an invalid-instruction fault. Unicorn has no M0+
        model; the M0 model has the same ISA (ARMv6-M)."""
        import unicorn as uc
        from unicorn import arm_const as arm

        cpus = {
            "cortex-m0": arm.UC_CPU_ARM_CORTEX_M0,
            "cortex-m0plus": arm.UC_CPU_ARM_CORTEX_M0,
            "cortex-m3": arm.UC_CPU_ARM_CORTEX_M3,
            "cortex-m4": arm.UC_CPU_ARM_CORTEX_M4,
            "cortex-m7": arm.UC_CPU_ARM_CORTEX_M7,
            "cortex-m33": arm.UC_CPU_ARM_CORTEX_M33,
        }
        by_arch = {
            "armv6-m": arm.UC_CPU_ARM_CORTEX_M0,
            "armv7-m": arm.UC_CPU_ARM_CORTEX_M3,
            "armv7e-m": arm.UC_CPU_ARM_CORTEX_M4,
            "armv8-m.main": arm.UC_CPU_ARM_CORTEX_M33,
        }
        cpu = cpus.get(target.name) or by_arch.get(target.arch)
        if cpu is None:
            return None  # e.g. Armv8.1-M (Helium): no Unicorn CPU executes it
        # UC_MODE_MCLASS would force Unicorn's default M33 model; plain Thumb
        # mode keeps the requested CPU (which is M-profile by itself).
        return EmulatorCpu(
            arch=uc.UC_ARCH_ARM,
            mode=uc.UC_MODE_THUMB,
            cpu=cpu,
            pc=arm.UC_ARM_REG_PC,
            sp=arm.UC_ARM_REG_SP,
            lr=arm.UC_ARM_REG_LR,
            address_mask=~1,
            exceptions=M_EXCEPTIONS,
        )

    def decoder(self) -> Decoder:
        import capstone

        mode = capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS
        return CapstoneDecoder({1: (capstone.CS_ARCH_ARM, mode, thumb_insn)})

    def qemu_cpu(self, target: Target) -> str | None:
        return "max"

    def qemu(self, target: Target) -> QemuCommand | None:
        """qemu-arm's A-profile ``max`` CPU runs M-profile Thumb code up to Armv8-M, but
        not Armv8.1-M's own instructions (low-overhead loops WLS/DLS/LE, CSEL, MVE), which
        GCC emits for a Cortex-M55: such targets have no qemu-user command."""
        if target.arch in QEMU_USER_CANNOT_RUN:
            return None
        return super().qemu(target)

    def linker_code_sections(self, region: str) -> Sequence[str]:
        return (f"  .ARM.exidx : {{ *(.ARM.exidx*) }} > {region}",)

    def compiler_features(self, macros: Mapping[str, str]) -> tuple[set[str], set[str]] | None:
        return arm_compiler_features(macros)


ISAS: tuple[IsaSupport, ...] = (ThumbM(),)
