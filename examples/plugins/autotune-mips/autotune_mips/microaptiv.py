"""Timing model of the MIPS32 microAptiv core (PIC32MZ), integer pipeline only.

Sources:
- MIPS32 microAptiv UP Processor Core Family Software User's Manual (MD00942),
  "Pipeline of the microAptiv UP Core" and "MDU Pipeline"; PIC32 Family Reference
  Manual, Section 50 "CPU for Devices with microAptiv Core" (DS61192), which
  repeats the pipeline and the MDU table for the PIC32MZ:
  five in-order stages, I (fetch), E (operands, ALU, branch target, MDU start),
  M (ALU completes, data SRAM/cache access), A (align load data; load and MDU
  results bypassed to E), W (write back). Single issue.
- From that: an ALU result feeds the next instruction without a stall (latency 1);
  a load's data reaches E from the A stage, so an instruction that uses it right
  away stalls one cycle (latency 2); branches and jumps resolve in E and have one
  architectural delay slot, so a taken branch costs nothing beyond its delay slot.
- High-performance multiply/divide unit ("Latencies and Repeat Rates" table; the
  size is that of the rt operand for multiplies, of rs for divides):
  MULT/MULTU/MADD/MADDU/MSUB/MSUBU to HI/LO, 16-bit: latency 1, repeat 1;
  32-bit: latency 2, repeat 2. MUL to a GPR, 16-bit: latency 2, repeat 1;
  32-bit: latency 3, repeat 2. DIV/DIVU, 8/16/24/32-bit: latency 12/19/26/33,
  repeat 11/18/25/32. MFHI/MFLO results come through the A-stage bypass like
  load data (latency 2). An accumulating MADD/MSUB does not wait for the previous
  one's HI/LO (the accumulator is forwarded inside the MDU).

Operand sizes are not known statically, so the model infers them within a block:
a register last written by LB/LBU/LH/SEB/SEH/ANDI/LI (or an add of such) is
known to be narrow; anything live at block entry counts as 32-bit. Memory is
zero-wait-state (cache hits, or SRAM); the PIC32MZ's flash wait states and
prefetch are a memory-system effect this core model leaves out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from autotune.platform.cycles.base import BlockCost, CycleModel, Insn, ModelInfo, Op, schedule

from autotune_mips.decode import HILO, MDU_ACCUMULATE, MDU_TO_HILO

_MUL_HILO = frozenset({"mult", "multu"}) | MDU_ACCUMULATE
_DIV = frozenset({"div", "divu"})
# Signed width (bits) of a result, from the instruction alone.
_WIDTH_BY_NAME = {"lb": 8, "lbu": 9, "lh": 16, "lhu": 17, "seb": 8, "seh": 16}
_REG = re.compile(r"\$(\w+)")
_DIV_TABLE = ((8, 12, 11), (16, 19, 18), (24, 26, 25), (32, 33, 32))


def _operands(insn: Insn) -> list[str]:
    """Register operands in assembly order, as capstone prints them."""
    _, _, ops = insn.text.partition(" ")
    return _REG.findall(ops)


def _imm_width(value: int) -> int:
    """Bits a signed integer needs."""
    return max(value.bit_length() + 1, 1) if value >= 0 else (~value).bit_length() + 1


def _last_imm(insn: Insn) -> int | None:
    tail = insn.text.rsplit(",", 1)[-1].strip()
    try:
        return int(tail, 0)
    except ValueError:
        return None


class _Widths:
    """Known signed widths of registers written earlier in the block."""

    def __init__(self) -> None:
        self.bits: dict[str, int] = {"zero": 1}

    def of(self, reg: str) -> int:
        return self.bits.get(reg, 32)

    def update(self, insn: Insn) -> None:
        ops = _operands(insn)
        for reg in insn.writes:
            self.bits.pop(reg, None)
        if not ops or insn.name in MDU_TO_HILO or insn.store or insn.branch:
            return
        dest, srcs = ops[0], ops[1:]
        width = _WIDTH_BY_NAME.get(insn.name)
        if width is None:
            imm = _last_imm(insn)
            if insn.name in ("addiu", "addu", "subu") and imm is not None and len(srcs) == 1:
                width = max(self.of(srcs[0]), _imm_width(imm)) + 1
            elif imm is not None and (
                insn.name in ("li", "andi") or (insn.name == "ori" and srcs == ["zero"])
            ):
                width = _imm_width(imm)  # andi zero-extends: the result is within [0, imm]
            elif insn.name in ("addu", "subu") and len(srcs) == 2:
                width = max(self.of(srcs[0]), self.of(srcs[1])) + 1
            elif insn.name == "move" and len(srcs) == 1:
                width = self.of(srcs[0])
            elif insn.name == "mul" and len(srcs) == 2:
                width = self.of(srcs[0]) + self.of(srcs[1])
        if width is not None and width < 32:
            self.bits[dest] = width


class MicroAptiv(CycleModel):
    """The microAptiv's in-order five-stage pipeline with its high-performance MDU."""

    info = ModelInfo(
        "microaptiv",
        1,
        (
            "MIPS32 microAptiv UP Processor Core Family Software User's Manual (MD00942): "
            "pipeline, MDU latencies and repeat rates",
            "PIC32 Family Reference Manual, Section 50: CPU for Devices with microAptiv Core",
        ),
    )

    def op(self, insn: Insn, widths: _Widths) -> Op:
        name = insn.name
        if insn.load:
            return Op(latency=2, unit="lsu")
        if name in _MUL_HILO or name == "mul":
            ops = _operands(insn)
            narrow = bool(ops) and widths.of(ops[-1]) <= 16
            if name == "mul":
                return Op(latency=2 if narrow else 3, unit="mdu", busy=1 if narrow else 2)
            latency = 1 if narrow else 2
            late = frozenset({HILO}) if name in MDU_ACCUMULATE else frozenset()
            return Op(latency=latency, unit="mdu", busy=latency, late=late, late_by=2)
        if name in _DIV:
            ops = _operands(insn)
            if len(ops) == 3 and ops[0] == "zero":  # capstone prints "div $zero, rs, rt"
                ops = ops[1:]
            size = widths.of(ops[0]) if ops else 32
            latency, repeat = next((lat, rep) for bits, lat, rep in _DIV_TABLE if size <= bits)
            return Op(latency=latency, unit="mdu", busy=repeat)
        if name in ("mfhi", "mflo"):
            return Op(latency=2)
        if name in ("mthi", "mtlo"):
            return Op(latency=1, unit="mdu")
        return Op(latency=1)

    def block_cost(self, insns: Sequence[Insn]) -> BlockCost:
        widths = _Widths()
        ops = []
        for insn in insns:
            ops.append((insn, self.op(insn, widths)))
            widths.update(insn)
        cycles = schedule(ops, width=1, units={"alu": 1, "lsu": 1, "mdu": 1})
        return BlockCost(len(insns), cycles, 0, 0)
