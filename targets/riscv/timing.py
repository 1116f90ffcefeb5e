"""Cycle models for the RV32 profiles: lowRISC Ibex (rv32imc, rv32im) and SiFive E31 (rv32imac, rv32gc).

Sources:
- Ibex User Manual, "Pipeline Details", table "Multi- and Single-Cycle
  Instructions" (doc/03_reference/pipeline_details.rst), default two-stage
  configuration with the fast multi-cycle multiplier (RV32M=Fast) and no
  branch target ALU: integer and CSR 0 stall cycles; loads and stores at least
  1 (zero-wait-state memory assumed); MUL 2, MULH* 3; DIV/REM 37 (1 when
  dividing by zero, not modelled); jumps 1; branches 0 not taken, 2 taken.
  Stalls are on top of the one cycle every instruction spends in ID/EX.
- SiFive E31 Core Complex Manual (FE310-G000 edition), section 3.2 Instruction
  Fetch Unit and 3.3 Execution Pipeline: single issue, fully bypassed, one
  cycle result latency except LW 2, LH/LHU/LB/LBU 3, CSR reads 3, MUL/MULH*
  5 (an 8-bit-per-cycle multiplier that blocks until the previous operation
  completes), DIV/DIVU/REM/REMU 2-33 (1-bit-per-cycle divider; the upper bound
  is used); correctly predicted control flow costs nothing, a mispredict 3.
  The core interlocks only on read-after-write and write-after-write hazards.
  Floating point (rv32gc) uses the same numbers as the integer pipe: the E31
  has no FPU, so the rv32gc profile is an approximation the label makes explicit.
"""

from __future__ import annotations

from collections.abc import Sequence

from autotune.platform.cycles.base import (
    BlockCost,
    Branch,
    CycleModel,
    Insn,
    ModelInfo,
    Op,
    schedule,
    taken_penalty_btfn,
)

_MUL = {"mul"}
_MULH = {"mulh", "mulhu", "mulhsu"}
_DIV = {"div", "divu", "rem", "remu"}


class Ibex(CycleModel):
    info = ModelInfo(
        "ibex", 1, ("Ibex User Manual, Pipeline Details: Multi- and Single-Cycle Instructions",)
    )

    def insn_cost(self, insn: Insn) -> tuple[int, int]:
        """(cycles, extra when the branch is taken) = 1 + stall cycles of the table."""
        name = insn.name
        if insn.branch == Branch.COND:
            return 1, 2
        if insn.branch != Branch.NONE:  # jal, jalr: a jump always flushes the prefetch buffer
            return 2, 0
        if insn.load or insn.store:
            return 2, 0
        if name in _MUL:
            return 3, 0
        if name in _MULH:
            return 4, 0
        if name in _DIV:
            return 38, 0
        return 1, 0

    def block_cost(self, insns: Sequence[Insn]) -> BlockCost:
        total = 0
        taken = 0
        for insn in insns:
            c, taken = self.insn_cost(insn)
            total += c
        return BlockCost(len(insns), total, taken, 0)


class SiFiveE31(CycleModel):
    info = ModelInfo(
        "sifive-e31", 1, ("SiFive E31 Core Complex Manual, 3.2 and 3.3 Execution Pipeline",)
    )
    mispredict = 3

    def op(self, insn: Insn) -> Op:
        name = insn.name
        if insn.load:
            return Op(latency=2 if name in ("lw", "flw", "ld", "fld") else 3, unit="lsu")
        if insn.store:
            return Op(latency=1, unit="lsu")
        if name in _MUL or name in _MULH:
            return Op(latency=5, unit="mul", busy=5)
        if name in _DIV:
            return Op(latency=33, unit="mul", busy=33)
        if name.startswith("csr"):
            return Op(latency=3)
        return Op(latency=1)

    def block_cost(self, insns: Sequence[Insn]) -> BlockCost:
        cycles = schedule([(i, self.op(i)) for i in insns], width=1, units={"alu": 1})
        last = insns[-1]
        if last.branch == Branch.INDIRECT and not last.call and last.reads == frozenset({"ra"}):
            not_taken, taken = 0, 0  # a return, predicted by the return-address stack
        else:
            not_taken, taken = taken_penalty_btfn(last, self.mispredict)
        return BlockCost(len(insns), cycles + not_taken, taken - not_taken, 0)


MODELS: tuple[CycleModel, ...] = (Ibex(), SiFiveE31())
