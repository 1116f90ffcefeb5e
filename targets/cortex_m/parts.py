"""Cortex-M parts: the memory system around the core, from each vendor's manual.

Geometry (sizes, lines, ways), wait states and clocks are the manuals' figures.
Miss penalties are derived from them as written beside each one (line fill at the
flash's width and wait states, less what the core executes meanwhile) and are
the parameters `autotune calibrate` fits to a board's DWT counts.
"""

from __future__ import annotations

from autotune.platform.parts import Cache, Memory, Part

KIB = 1024

STM32L4R5 = Part(
    name="stm32l4r5",
    core="cortex-m4",
    clock_mhz=120,
    memories=(
        # RM0432 Rev 9, 3.3.3 Table 12: 5 wait states for 100 < HCLK <= 120 MHz (range 1 boost).
        Memory("flash", "flash", 2048 * KIB, wait_states=5, icache="art-i", dcache="art-d"),
        # RM0432 2.1: SRAM1/2/3 (640 KB) are accessed at CPU clock with zero wait states.
        Memory("sram", "sram", 640 * KIB),
    ),
    caches=(
        # RM0432 3.3.4 ART accelerator: instruction cache of 32 lines of 4 x 64 bits (1 KB),
        # data cache of 8 lines of 4 x 64 bits (256 B); the associativity is not given,
        # so fully associative with LRU is assumed. A line is four 64-bit flash reads of
        # WS + 1 = 6 cycles: the first word after 6, the other three arrive every 6 cycles
        # while the core executes about 3 cycles per 8 bytes: 6 + 3 x 3 = 15.
        Cache("art-i", 1 * KIB, 32, 32, miss_penalty=15),
        Cache("art-d", 256, 32, 8, miss_penalty=15),
    ),
    placement={"code": ("flash",), "rodata": ("flash",), "data": ("sram",)},
    reference="ST RM0432 Rev 9 (STM32L4+ reference manual), 3.3.3 and 3.3.4",
    boards=("nucleo-l4r5zi",),
    description="STM32L4R5 (Cortex-M4 at 120 MHz) running from flash behind the ART accelerator",
)

_F746_MEMORIES = (
    # RM0385 Rev 8, 3.3.2 Table 5: 7 wait states at 210 < HCLK <= 216 MHz (2.7-3.6 V).
    # On the AXIM interface flash goes through the Cortex-M7 L1 caches.
    Memory("flash", "flash", 1024 * KIB, wait_states=7, icache="l1-i", dcache="l1-d"),
    # RM0385 2.2: ITCM RAM 16 KB and DTCM RAM 64 KB at CPU clock, zero wait;
    # SRAM1 (240 KB) on the AXI bus behind the D-cache.
    Memory("itcm", "tcm", 16 * KIB),
    Memory("dtcm", "tcm", 64 * KIB),
    Memory("sram1", "sram", 240 * KIB, dcache="l1-d"),
)
_F746_CACHES = (
    # PM0253 (STM32F7 programming manual) 4.8 and Arm DDI 0489 (Cortex-M7 TRM) 5.1:
    # 4 KB I-cache, 2-way, and 4 KB D-cache, 4-way, 32-byte lines. A flash line is one
    # 256-bit read (RM0385 3.3.2): WS + 1 = 8 cycles plus ~2 on AXI = 10; an SRAM1 line
    # is four 64-bit AXI beats after ~2 cycles of latency = 6 (same cache, one penalty:
    # the larger is used; calibration can split them).
    Cache("l1-i", 4 * KIB, 32, 2, miss_penalty=10),
    Cache("l1-d", 4 * KIB, 32, 4, miss_penalty=10),
)

STM32F746 = Part(
    name="stm32f746",
    core="cortex-m7",
    clock_mhz=216,
    memories=_F746_MEMORIES,
    caches=_F746_CACHES,
    placement={"code": ("flash",), "rodata": ("flash",), "data": ("dtcm", "sram1")},
    reference="ST RM0385 Rev 8, 2.2 and 3.3.2; PM0253 4.8; Arm DDI 0489 5.1",
    boards=("nucleo-f746zg",),
    description="STM32F746 (Cortex-M7 at 216 MHz), code from flash through the L1 caches",
)

STM32F746_ITCM = Part(
    name="stm32f746-itcm",
    core="cortex-m7",
    clock_mhz=216,
    memories=_F746_MEMORIES,
    caches=_F746_CACHES,
    # Hot code in ITCM: the program's code goes there when it fits its 16 KB.
    placement={"code": ("itcm", "flash"), "rodata": ("flash",), "data": ("dtcm", "sram1")},
    reference=STM32F746.reference,
    description="STM32F746 with the code placed in ITCM RAM (zero wait) where it fits",
)

NRF52840 = Part(
    name="nrf52840",
    core="cortex-m4",
    clock_mhz=64,
    memories=(
        # nRF52840 PS v1.7, 4.2/4.3: flash on the code bus behind the NVMC instruction
        # cache (ICACHECNF). The PS gives no wait-state or cache geometry figures: 2 wait
        # states and the cache below are estimates, to be fitted by calibration.
        Memory("flash", "flash", 1024 * KIB, wait_states=2, icache="icache", dcache="icache"),
        Memory("ram", "sram", 256 * KIB),
    ),
    caches=(Cache("icache", 2 * KIB, 16, 2, miss_penalty=4),),
    placement={"code": ("flash",), "rodata": ("flash",), "data": ("ram",)},
    reference="Nordic nRF52840 Product Specification v1.7, 4.2 Memory, 4.3 NVMC (cache)",
    boards=("nrf52840-dk", "pca10056"),
    description="nRF52840 (Cortex-M4F at 64 MHz) from flash with the instruction cache on",
)

STM32U585 = Part(
    name="stm32u585",
    core="cortex-m33",
    clock_mhz=160,
    memories=(
        # RM0456 Rev 4, 7.3.3 Table 54: 4 wait states at 128 < HCLK <= 160 MHz (range 1).
        # The code bus (instruction and data reads of the code region) goes through ICACHE.
        Memory("flash", "flash", 2048 * KIB, wait_states=4, icache="icache", dcache="icache"),
        Memory("sram", "sram", 768 * KIB),
    ),
    caches=(
        # RM0456 8.3: ICACHE 8 KB, 2-way set associative, 16-byte lines. A line is one
        # 128-bit flash read: WS + 1 = 5 cycles plus 1 through the cache = 6.
        Cache("icache", 8 * KIB, 16, 2, miss_penalty=6),
    ),
    placement={"code": ("flash",), "rodata": ("flash",), "data": ("sram",)},
    reference="ST RM0456 Rev 4 (STM32U5 reference manual), 7.3.3 and 8.3 (ICACHE)",
    boards=("b-u585i-iot02a", "nucleo-u575zi-q"),
    description="STM32U585 (Cortex-M33 at 160 MHz) from flash behind the 8 KB ICACHE",
)

RP2040 = Part(
    name="rp2040",
    core="cortex-m0plus",
    clock_mhz=133,
    memories=(
        # RP2040 datasheet 2.6.3: code and constants execute in place from external QSPI
        # flash through the XIP cache; SRAM (264 KB, striped banks) is zero wait.
        Memory("xip-flash", "external", 16384 * KIB, icache="xip", dcache="xip"),
        Memory("sram", "sram", 264 * KIB),
    ),
    caches=(
        # 2.6.3.1: 16 KB, 2-way set associative, 8-byte lines. A miss is a QSPI quad read
        # in continuous mode at SCK = clk_sys / 2 (boot2's default): 6 address + 2 mode +
        # 4 dummy + 16 data SCK = 28 SCK = 56 cycles, plus ~4 in the SSI = 60.
        Cache("xip", 16 * KIB, 8, 2, miss_penalty=60),
    ),
    placement={"code": ("xip-flash",), "rodata": ("xip-flash",), "data": ("sram",)},
    reference="Raspberry Pi RP2040 datasheet (2021), 2.6.3 XIP and 2.6.3.1 cache",
    boards=("pico", "raspberry-pi-pico"),
    description="RP2040 (Cortex-M0+ at 133 MHz) executing from QSPI flash via the XIP cache",
)

PARTS = (STM32L4R5, STM32F746, STM32F746_ITCM, NRF52840, STM32U585, RP2040)
