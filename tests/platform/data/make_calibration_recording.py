"""Write calibration_stm32l4r5_synthetic.json: SYNTHETIC board measurements for the fit test.

No board was used. The recording is what a NUCLEO-L4R5ZI would report if the part
behaved exactly like a simple model with known parameters, plus noise:

- ``base``: each calibration benchmark's cycles from autotune's cortex-m4 core model
  (zero-wait memory), from a real run in the emulator;
- ``per_unit``: cache misses per benchmark, from a trace of the same run (every
  instruction fetch and every load from flash) through two LRU caches with the
  STM32L4R5's ART geometry (RM0432, "Adaptive real-time memory accelerator"):
  instructions 1 KiB in 32 lines of 32 bytes, data 256 bytes in 8 lines; SRAM is
  not cached and has no wait states;
- ``measured``: base + misses x TRUE penalties + OVERHEAD cycles per run, times
  (1 + noise) with noise ~ N(0, NOISE), rounded: the board's DWT count stand-in.

The fit test must find TRUE back from ``measured`` and ``per_unit``.
Run: python tests/platform/data/make_calibration_recording.py
"""

from __future__ import annotations

import json
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from autotune.platform import harness, plugins
from autotune.platform.calibrate import build_benchmarks
from autotune.platform.emulator import load_elf

TRUE = {"caches.art-i.miss_penalty": 7, "caches.art-d.miss_penalty": 6}
OVERHEAD = 11
NOISE = 0.002
SEED = 12
LINE = 32
FLASH_END = 0x2000_0000


class Lru:
    def __init__(self, lines: int) -> None:
        self.lines = lines
        self.held: OrderedDict[int, None] = OrderedDict()
        self.misses = 0

    def access(self, address: int) -> None:
        line = address // LINE
        if line in self.held:
            self.held.move_to_end(line)
            return
        self.misses += 1
        self.held[line] = None
        if len(self.held) > self.lines:
            self.held.popitem(last=False)


def trace(elf: Path, target) -> tuple[int, int]:
    """(instruction-cache misses, data-cache misses) of one run from autotune_main."""
    import unicorn as uc
    from unicorn import arm_const as arm

    image = load_elf(elf)
    emu = uc.Uc(uc.UC_ARCH_ARM, uc.UC_MODE_THUMB, arm.UC_CPU_ARM_CORTEX_M4)
    for region in target.memory:
        emu.mem_map(region.origin, region.length)
    for vaddr, blob, memsz in image.segments:
        emu.mem_write(vaddr, blob + bytes(memsz - len(blob)))
    icache, dcache = Lru(32), Lru(8)

    def fetch(_uc, address, size, _ud):
        for a in range(address // LINE * LINE, address + size, LINE):
            icache.access(a)

    def read(_uc, _access, address, _size, _value, _ud):
        if address < FLASH_END:
            dcache.access(address)

    emu.hook_add(uc.UC_HOOK_CODE, fetch)
    emu.hook_add(uc.UC_HOOK_MEM_READ, read)
    stop = image.symbol(harness.STOP_SYMBOL).value & ~1
    emu.reg_write(arm.UC_ARM_REG_SP, image.symbol(harness.STACK_TOP_SYMBOL).value)
    emu.reg_write(arm.UC_ARM_REG_LR, stop | 1)
    emu.emu_start(image.symbol(harness.ENTRY_SYMBOL).value | 1, stop)
    return icache.misses, dcache.misses


def main() -> None:
    target = plugins.get_target("cortex-m4")
    runner = plugins.get_runner(target.runner)
    rng = np.random.default_rng(SEED)
    rows = {}
    with tempfile.TemporaryDirectory() as work:
        for name, elf in build_benchmarks(target, Path(work)).items():
            base = runner.run(elf, target, budget=200_000_000).cycles
            imiss, dmiss = trace(elf, target)
            per_unit = {
                "caches.art-i.miss_penalty": imiss,
                "caches.art-d.miss_penalty": dmiss,
                "memories.flash.wait_states": 0,  # every flash access goes through a cache
            }
            ideal = base + OVERHEAD + sum(per_unit[p] * v for p, v in TRUE.items())
            rows[name] = {
                "base": base,
                "per_unit": per_unit,
                "measured": round(ideal * (1 + rng.normal(0, NOISE))),
            }
    doc = {
        "about": " ".join((__doc__ or "").split()),
        "synthetic": True,
        "part": "stm32l4r5",
        "target": target.name,
        "cycle_model": target.cycle_model,
        "true": TRUE,
        "overhead": OVERHEAD,
        "noise": NOISE,
        "benchmarks": rows,
    }
    out = Path(__file__).with_name("calibration_stm32l4r5_synthetic.json")
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
