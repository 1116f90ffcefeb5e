"""RISC-V parts: the memory system around the core, from each vendor's manual."""

from __future__ import annotations

from autotune.platform.parts import Cache, Memory, Part

KIB = 1024

ESP32C3 = Part(
    name="esp32c3",
    core="rv32imc",
    clock_mhz=160,
    memories=(
        # ESP32-C3 TRM v1.0, 3.3 System and memory: code (IROM) and constants (DROM)
        # are read from external SPI flash through the cache; internal SRAM is zero wait.
        Memory("spi-flash", "external", 4096 * KIB, icache="cache", dcache="cache"),
        Memory("sram", "sram", 400 * KIB),
    ),
    caches=(
        # TRM 3.4 Cache: 16 KB, 8-way set associative, 32-byte blocks, shared by
        # instruction and read-only data accesses. A miss is a quad-I/O read at 80 MHz
        # SPI: 6 address + 2 mode + 4 dummy + 64 data SCK = 76 SCK = 152 CPU cycles.
        Cache("cache", 16 * KIB, 32, 8, miss_penalty=152),
    ),
    placement={"code": ("spi-flash",), "rodata": ("spi-flash",), "data": ("sram",)},
    reference="Espressif ESP32-C3 Technical Reference Manual v1.0, 3.3 and 3.4 (cache)",
    boards=("esp32-c3-devkitm-1",),
    description=(
        "ESP32-C3 (RV32IMC at 160 MHz) from external flash through its 16 KB cache; "
        "the core is timed with the rv32imc target's Ibex model"
    ),
)

PARTS = (ESP32C3,)
