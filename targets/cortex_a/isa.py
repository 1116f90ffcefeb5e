"""A32/Thumb (ARMv7-A) and AArch64 (ARMv8-A) as the application cores run them bare-metal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from autotune.platform.cycles.decode import CapstoneDecoder, a64_insn, arm_insn, thumb_insn
from autotune.platform.isa import Decoder, EmulatorCpu, IsaSupport, LinuxAbi
from autotune.platform.target import Target
from autotune.targets.cortex_m.isa import arm_compiler_features

_A_EXCEPTIONS = {
    1: "undefined instruction",
    2: "SVC",
    3: "prefetch abort",
    4: "data abort",
    7: "BKPT",
}


def _a32_setup(uc) -> None:
    """Enable VFP/NEON: CPACR grants cp10/cp11, FPEXC.EN set."""
    from unicorn import arm_const as arm

    uc.reg_write(arm.UC_ARM_REG_C1_C0_2, uc.reg_read(arm.UC_ARM_REG_C1_C0_2) | (0xF << 20))
    uc.reg_write(arm.UC_ARM_REG_FPEXC, 0x40000000)


def _a32_state(uc) -> int:
    """1 in Thumb state (CPSR.T), 0 in A32 state: interworking code switches per block."""
    from unicorn import arm_const as arm

    return 1 if uc.reg_read(arm.UC_ARM_REG_CPSR) & 0x20 else 0


def _a64_setup(uc) -> None:
    """Enable FP/ASIMD at EL1 (CPACR_EL1.FPEN)."""
    from unicorn import arm64_const as a64

    uc.reg_write(a64.UC_ARM64_REG_CPACR_EL1, 0x3 << 20)


class A32(IsaSupport):
    """ARMv7-A in A32 state (with Thumb interworking), built with gcc-arm-none-eabi."""

    name = "arm"
    elf_machine = "EM_ARM"
    startup = Path(__file__).with_name("start_a32.S")
    description = "Arm A32/T32, A profile (ARMv7-A)"
    qemu_user = "qemu-arm"
    function_address_mask = ~1  # bit 0 of a function symbol is the Thumb state

    def emulator(self, target: Target) -> EmulatorCpu | None:
        import unicorn as uc
        from unicorn import arm_const as arm

        cpus = {
            "cortex-a7": arm.UC_CPU_ARM_CORTEX_A7,
            "cortex-a8": arm.UC_CPU_ARM_CORTEX_A8,
            "cortex-a9": arm.UC_CPU_ARM_CORTEX_A9,
            "cortex-a15": arm.UC_CPU_ARM_CORTEX_A15,
        }
        return EmulatorCpu(
            arch=uc.UC_ARCH_ARM,
            mode=uc.UC_MODE_ARM,
            cpu=cpus.get(target.name, arm.UC_CPU_ARM_CORTEX_A7),
            pc=arm.UC_ARM_REG_PC,
            sp=arm.UC_ARM_REG_SP,
            lr=arm.UC_ARM_REG_LR,
            address_mask=~1,
            exceptions=_A_EXCEPTIONS,
            setup=_a32_setup,
            decode_state=_a32_state,
        )

    def decoder(self) -> Decoder:
        import capstone

        return CapstoneDecoder(
            {
                0: (capstone.CS_ARCH_ARM, capstone.CS_MODE_ARM, arm_insn),
                1: (capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB, thumb_insn),
            }
        )

    def qemu_cpu(self, target: Target) -> str | None:
        return target.name if target.name.startswith("cortex-a") else "max"

    def linker_code_sections(self, region: str) -> Sequence[str]:
        return (f"  .ARM.exidx : {{ *(.ARM.exidx*) }} > {region}",)

    def linux_abis(self, target: Target) -> Sequence[LinuxAbi]:
        # The same core flags with the hard-float calling convention of Debian's armhf.
        core = tuple(f for f in target.toolchain.cflags if not f.startswith("-mfloat-abi="))
        return (
            LinuxAbi(
                "arm-linux-gnueabihf",
                "arm-linux-gnueabihf-gcc",
                "gcc-arm-linux-gnueabihf",
                (*core, "-mfloat-abi=hard"),
                "qemu-arm",
                "/usr/arm-linux-gnueabihf",
            ),
        )

    def compiler_features(self, macros: Mapping[str, str]) -> tuple[set[str], set[str]] | None:
        return arm_compiler_features(macros)


class AArch64(IsaSupport):
    """ARMv8-A in AArch64 state, built with Debian's Linux cross compiler (freestanding)."""

    name = "aarch64"
    elf_machine = "EM_AARCH64"
    startup = Path(__file__).with_name("start_aarch64.S")
    description = "Arm A64 (ARMv8-A)"
    qemu_user = "qemu-aarch64"

    def emulator(self, target: Target) -> EmulatorCpu | None:
        import unicorn as uc
        from unicorn import arm64_const as a64

        cpus = {
            "cortex-a53": a64.UC_CPU_ARM64_A53,
            "cortex-a57": a64.UC_CPU_ARM64_A57,
            "cortex-a72": a64.UC_CPU_ARM64_A72,
        }
        return EmulatorCpu(
            arch=uc.UC_ARCH_ARM64,
            mode=uc.UC_MODE_ARM,
            cpu=cpus.get(target.name, a64.UC_CPU_ARM64_A53),
            pc=a64.UC_ARM64_REG_PC,
            sp=a64.UC_ARM64_REG_SP,
            lr=a64.UC_ARM64_REG_X30,
            exceptions={**_A_EXCEPTIONS, 7: "BRK"},
            setup=_a64_setup,
        )

    def decoder(self) -> Decoder:
        import capstone

        return CapstoneDecoder({0: (capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM, a64_insn)})

    def linux_abis(self, target: Target) -> Sequence[LinuxAbi]:
        return (
            LinuxAbi(
                "aarch64-linux-gnu",
                "aarch64-linux-gnu-gcc",
                "gcc-aarch64-linux-gnu",
                tuple(target.toolchain.cflags),
                "qemu-aarch64",
                "/usr/aarch64-linux-gnu",
            ),
        )

    def qemu_cpu(self, target: Target) -> str | None:
        return target.name if target.name.startswith("cortex-a") else None

    def compiler_features(self, macros: Mapping[str, str]) -> tuple[set[str], set[str]] | None:
        return arm_compiler_features(macros)


ISAS: tuple[IsaSupport, ...] = (A32(), AArch64())
