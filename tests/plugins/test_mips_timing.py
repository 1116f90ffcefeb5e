"""The MIPS example's decoder and microAptiv timing model on hand-written sequences.

Sequences are assembled by Debian's MIPS cross assembler in ``noreorder`` mode (so
delay slots hold exactly what is written) and decoded as the emulator decodes a
block. Expected cycles are worked out in the comments from the pipeline and MDU
table the model cites (see autotune_mips/microaptiv.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from autotune_mips.decode import HILO, mips_decoder
from autotune_mips.microaptiv import MicroAptiv
from elftools.elf.elffile import ELFFile

from autotune.platform.cycles.base import Branch, Insn

AS = "mipsel-linux-gnu-as"
BASE = 0x9D00_0000


def asm(body: str, tmp_path: Path) -> list[Insn]:
    if shutil.which(AS) is None:
        pytest.skip(f"{AS} not installed (apt-get install gcc-mipsel-linux-gnu)")
    src, obj = tmp_path / "s.s", tmp_path / "s.o"
    src.write_text(f".set noreorder\n.text\nback:\n{body}\nfwd:\n")
    subprocess.run(
        [AS, "-march=mips32r2", "-EL", "-mno-shared", "-call_nonpic", str(src), "-o", str(obj)],
        check=True,
        capture_output=True,
    )
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        code = elf.get_section_by_name(".text").data()
        # GAS pads .text with nops: keep what was written, up to the label after it.
        end = next(
            s["st_value"]
            for s in elf.get_section_by_name(".symtab").iter_symbols()
            if s.name == "fwd"
        )
    return mips_decoder().decode(code[:end], BASE)


def cycles(body: str, tmp_path: Path) -> int:
    return MicroAptiv().block_cost(asm(body, tmp_path)).cycles


def test_decoder_register_directions(tmp_path: Path) -> None:
    lb, mul, madd, mflo, sw, bne, nop, jr, jal = asm(
        """
        lb $a2, 0($v0)
        mul $t6, $a2, $a1
        madd $v1, $v0
        mflo $t6
        sw $a0, -4($t1)
        bne $a3, $v0, back
        nop
        jr $ra
        jal fwd
        """,
        tmp_path,
    )
    assert lb.load and lb.writes == {"a2"} and lb.reads == {"v0"} and lb.addr_regs == {"v0"}
    assert mul.writes == {"t6"} and mul.reads == {"a2", "a1"}
    assert madd.writes == {HILO} and madd.reads == {"v1", "v0", HILO}
    assert madd.accumulator == {HILO}
    assert mflo.reads == {HILO} and mflo.writes == {"t6"}
    assert sw.store and sw.writes == frozenset() and sw.reads == {"a0", "t1"}
    assert bne.branch == Branch.COND and bne.target == BASE and bne.backward
    assert nop.reads == frozenset() and nop.writes == frozenset()
    assert jr.branch == Branch.INDIRECT and jr.reads == {"ra"} and not jr.call
    assert jal.branch == Branch.DIRECT and jal.call and jal.writes == {"ra"}


def test_load_use_costs_one_stall(tmp_path: Path) -> None:
    # Load data comes back to E from the A stage: a use right after waits one cycle.
    assert cycles("lw $t0, 0($a0)\naddu $t1, $t0, $t0", tmp_path) == 3
    # One independent instruction in between hides it.
    assert cycles("lw $t0, 0($a0)\naddiu $a1, $a1, 1\naddu $t1, $t0, $t0", tmp_path) == 3
    # ALU results are bypassed with no stall.
    assert cycles("addiu $t0, $a0, 1\naddu $t1, $t0, $t0", tmp_path) == 2


def test_branch_costs_its_delay_slot_only(tmp_path: Path) -> None:
    insns = asm("addiu $a0, $a0, -1\nbne $a0, $zero, back\naddiu $v0, $v0, 4", tmp_path)
    cost = MicroAptiv().block_cost(insns)
    assert cost.instructions == 3
    assert cost.cycles == 3 and cost.taken_delta == 0


def test_madd_chain_issues_every_cycle_with_narrow_operands(tmp_path: Path) -> None:
    # lb results are 8-bit: four MADDs at repeat rate 1, accumulator forwarded; the
    # last load is consumed two instructions later, so no load-use stall either.
    narrow = """
        lb $t0, 0($a0)
        lb $t1, 1($a0)
        lb $t2, 2($a0)
        lb $t3, 3($a0)
        madd $t0, $t1
        madd $t2, $t3
        madd $t0, $t3
        madd $t2, $t1
        """
    assert cycles(narrow, tmp_path) == 8
    # Operands live at block entry count as 32-bit: repeat rate 2 each.
    wide = "madd $t0, $t1\nmadd $t2, $t3\nmadd $t0, $t3\nmadd $t2, $t1"
    assert cycles(wide, tmp_path) == 7  # issues at 0, 2, 4, 6


def test_mflo_waits_for_the_multiply_and_its_result_for_the_a_stage(tmp_path: Path) -> None:
    # mult (32-bit rt): latency 2 to mflo; mflo's GPR result: latency 2 to its user.
    assert cycles("mult $a0, $a1\nmflo $v0\naddu $v1, $v0, $v0", tmp_path) == 5


def test_divide_latency_depends_on_the_dividend_width(tmp_path: Path) -> None:
    # 32-bit rs: 33 cycles to HI/LO, then mflo.
    assert cycles("div $zero, $a0, $a1\nmflo $v0", tmp_path) == 34
    # An 8-bit dividend (from lb, one cycle of load-use before div): 12.
    assert cycles("lb $a0, 0($a2)\nnop\ndiv $zero, $a0, $a1\nmflo $v0", tmp_path) == 2 + 12 + 1


def test_model_cites_its_sources() -> None:
    model = MicroAptiv()
    assert model.name == "microaptiv v1"
    assert any("microAptiv" in s for s in model.info.sources)
