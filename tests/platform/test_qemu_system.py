"""QemuSystemRunner's failure paths: a program past its budget, a program that faults."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autotune.platform import plugins, toolchain
from autotune.platform.emulator import EmulatorFault, EmulatorTimeout
from autotune.platform.qemu_system import QemuSystemRunner

BOARD = QemuSystemRunner("qemu-mps2-an386", machine="mps2-an386", cpu="cortex-m4")


def build(tmp_path: Path, body: str) -> Path:
    for tool in ("qemu-system-arm", "arm-none-eabi-gcc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    src = tmp_path / "main.c"
    src.write_text(
        '#include <stdint.h>\n#include "autotune_harness.h"\n'
        "AUTOTUNE_BUFFER(int32_t, at_out, 1);\nvoid autotune_main(void)\n{\n" + body + "}\n"
    )
    return toolchain.build_elf(plugins.get_target("cortex-m4"), [src], tmp_path / "b").elf


def test_a_run_past_its_budget_is_a_timeout(tmp_path: Path) -> None:
    elf = build(tmp_path, "    for (volatile int32_t i = 0; i < 100000; i++) {\n    }\n")
    with pytest.raises(EmulatorTimeout, match="budget of 1000 instructions"):
        BOARD.run(elf, plugins.get_target("cortex-m4"), outputs={"at_out": 4}, budget=1000)


def test_a_fault_is_typed(tmp_path: Path) -> None:
    elf = build(tmp_path, '    at_out[0] = 1;\n    __asm__ volatile("udf #0");\n')
    with pytest.raises(EmulatorFault, match="UNDEFINSTR"):
        BOARD.run(elf, plugins.get_target("cortex-m4"), outputs={"at_out": 4})
