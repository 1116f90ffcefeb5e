"""The PIC32MZ target: Microchip's MIPS32 microAptiv microcontrollers."""

from __future__ import annotations

from autotune.platform.target import MemoryRegion, Target, Toolchain

from autotune_mips.isa import ISA_NAME

KIB = 1024
MIB = 1024 * KIB

# Bare metal with Debian's Linux cross compiler: no abicalls/PIC (so no $gp or GOT),
# no small-data section (-G0), soft float and no DSP ASE (the emulator's CPU has none).
FLAGS = (
    "-march=mips32r2",
    "-mtune=m14kec",
    "-EL",
    "-mabi=32",
    "-mno-abicalls",
    "-fno-pic",
    "-G0",
    "-msoft-float",
    "-mno-mips16",
    "-mno-micromips",
    "-mno-dsp",
)

PIC32MZ = Target(
    name="pic32mz",
    aliases=("pic32mz-ef", "microaptiv"),
    family="mips",
    arch="mips32r2",
    isa=ISA_NAME,
    toolchain=Toolchain(
        debian_package="gcc-mipsel-linux-gnu",
        cc="mipsel-linux-gnu-gcc",
        cflags=FLAGS,
        ldflags=FLAGS,
        objcopy="mipsel-linux-gnu-objcopy",
        size="mipsel-linux-gnu-size",
    ),
    # kseg0 addresses, as PIC32MZ programs are linked: program flash and data RAM of a
    # PIC32MZ2048EFH (2 MB flash, 512 KB RAM).
    memory=(
        MemoryRegion("flash", 0x9D00_0000, 2 * MIB),
        MemoryRegion("ram", 0x8000_0000, 512 * KIB),
    ),
    runner="unicorn",
    cycle_model="microaptiv v1",
    features=frozenset({"mul", "mul64", "div"}),  # MULT: the 64-bit product in HI/LO
    default_clock_mhz=200,
    description="Microchip PIC32MZ EF (MIPS32 microAptiv @200 MHz), MIPS32r2 code without DSP",
)

TARGETS = (PIC32MZ,)
