"""Cycle models for the application cores: Cortex-A7 (ARMv7-A) and Cortex-A53 (AArch64).

Arm publishes no instruction timing tables for either core (the A53's software
optimisation spreadsheet is cited by LLVM but not public), so both models take
their latencies, units and dual-issue rules from the compilers' pipeline
descriptions, which Arm contributed:

- Cortex-A7: GCC gcc/config/arm/cortex-a7.md (contributed by ARM Ltd.): two
  issue slots where the younger instruction of a pair must be an ALU operation
  with an immediate operand or a branch; ALU results forward after 1 cycle;
  loads 2 cycles; multiplies 2 (not dual-issued, accumulator forwarded in 1);
  integer divide 5 cycles on both pipes; NEON never dual-issued, 2 issue cycles
  and 4-cycle results (multiply-accumulate 8, accumulator forwarded in 4).
- Cortex-A53: LLVM llvm/lib/Target/AArch64/AArch64SchedA53.td: issue width 2;
  units: 2 integer ALUs, 1 MAC, 1 divider, 1 load/store, 1 branch, 1 FP/ASIMD;
  ALU results usable after 1 cycle (2 for a shifted or extended operand);
  multiply 4 with operands read 1 late and the accumulator 2 late; load-to-use 3
  (LoadLatency); integer divide 4; MispredictPenalty 9.

  Advanced SIMD (v2). Arm's "Cortex-A53 Software Optimisation Specification"
  (the instruction-timing spreadsheet LLVM's model cites) was never made public, and
  LLVM models integer ASIMD only coarsely (WriteVd/WriteVq, one FPALU). So the ASIMD
  rules come from published A53 measurements, ncnn's
  docs/developer-guide/arm-a53-a55-dual-issue.md (Tencent/ncnn): a 128-bit FMLA
  issues every cycle (v1 charged a Q-form operation 2 cycles of the unit, which
  doubled the cost of every 128-bit NEON kernel), a 128-bit vector load blocks issue
  for 2 cycles and a 64-bit one for 1 (the load path is 64 bits wide) and neither
  dual-issues with ASIMD work, while integer loads and pointer updates pair with it.
  Latencies as in v1 (integer vector ALU 2-3, multiply and multiply-long 4), with
  the accumulate operand late-forwarded as the public Arm Cortex-A55 Software
  Optimization Guide (ARM-EPM-128372, the A53's in-order successor) describes for
  its multiply-accumulate pipelines: a dependent MAC follows 1 cycle later (v1
  let it issue in the same cycle); SADALP, an accumulate of the same kind, is
  treated alike.

Branch prediction cannot be replayed statically: both models charge the
mispredict penalty where backward-taken/forward-not-taken would be wrong. The
A7 penalty is not published either; 8 (its pipeline depth) is an estimate.
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

_A32_MUL = {"mul", "mla", "mls", "smull", "umull", "smlal", "umlal", "umaal", "smmul", "smmla"}


class CortexA7(CycleModel):
    info = ModelInfo(
        "cortex-a7", 1, ("gcc/config/arm/cortex-a7.md (GCC pipeline description by ARM Ltd.)",)
    )
    mispredict = 8

    def op(self, insn: Insn) -> Op:
        name = insn.name
        if insn.vector:
            if insn.load or insn.store:
                # cortex_a7_f_loads/f_loadd: latency 4, ex1 (D) or both (Q/pairs)
                regs = max(insn.nregs, 1)
                return Op(
                    latency=4 if insn.load else 1,
                    unit="ls",
                    stall=max(1, (regs + 1) // 2),
                    single=regs > 1 or insn.quad,
                )
            if name.startswith(("vmla", "vmls", "vfma", "vfms")) or insn.accumulator:
                # cortex_a7_neon_mla: latency 8, both pipes; accumulator bypass 4
                return Op(latency=8, unit="fp", single=True, late=insn.accumulator, late_by=4)
            if name.startswith(("vmul", "vmull", "vqdmul")):
                # cortex_a7_neon_mul: latency 4, (both+fpmul)*2
                return Op(latency=4, unit="fp", busy=2, stall=2, single=True)
            # cortex_a7_neon (all other NEON): latency 4, both*2; VFP scalar ops
            # (cortex_a7_fpalu) take ex1 for one cycle.
            scalar = not name.startswith("v") or (not insn.quad and name.startswith("vmov"))
            return Op(
                latency=4,
                unit="fp",
                busy=1 if scalar else 2,
                stall=1 if scalar else 2,
                single=not scalar,
            )
        if insn.nregs:
            # load2/store2 (2 regs): both pipes, 1 cycle; load3/load4: 2 cycles;
            # longer lists extrapolated at two registers per cycle.
            cycles = max(1, (insn.nregs + 1) // 2)
            lat = 2 if insn.nregs <= 2 else 3
            return Op(latency=lat if insn.load else 1, unit="ls", stall=cycles, single=True)
        if insn.load:  # cortex_a7_load1: latency 2, ex1 (older slot only)
            return Op(latency=2, unit="ls", older_only=True)
        if insn.store:  # cortex_a7_store1: ex1; address needed early (no store addr bypass)
            return Op(latency=1, unit="ls", older_only=True, early=insn.addr_regs, early_by=1)
        if name in ("sdiv", "udiv"):  # cortex_a7_idiv: latency 5, both*5
            return Op(latency=5, unit="alu", stall=5, single=True)
        if name in _A32_MUL or name.startswith(("smla", "smul", "smua", "smus", "smls")):
            # cortex_a7_mul: latency 2, both pipes; accumulator forwarded in 1
            return Op(latency=2, unit="mac", single=True, late=insn.accumulator, late_by=1)
        if insn.branch != Branch.NONE:
            # direct branches dual-issue in either slot; calls only as the younger
            return Op(latency=1, unit="br", younger_only=insn.call)
        # ALU: latency 2 with a 1-cycle bypass to ALU/multiply consumers;
        # shifted operands (alu_shift) need their input a cycle earlier.
        early = insn.reads if insn.shifted else frozenset()
        return Op(latency=1, unit="alu", early=early, early_by=1, older_only=not insn.imm)

    def _pair_ok(self, older: tuple[Insn, Op], younger: tuple[Insn, Op]) -> bool:
        # ex2 is only reachable for ALU-immediate operations and branches.
        yi, yo = younger
        return (yo.unit == "alu" and yi.imm and not yi.shifted) or yo.unit == "br"

    def block_cost(self, insns: Sequence[Insn]) -> BlockCost:
        block = [(i, self.op(i)) for i in insns]
        cycles = schedule(block, width=2, units={"alu": 2}, pair_ok=self._pair_ok)
        not_taken, taken = taken_penalty_btfn(insns[-1], self.mispredict)
        return BlockCost(len(insns), cycles + not_taken, taken - not_taken, 0)


_A64_MUL = {
    "mul",
    "madd",
    "msub",
    "smull",
    "umull",
    "smaddl",
    "umaddl",
    "smsubl",
    "umsubl",
    "smulh",
    "umulh",
    "mneg",
}
_A64_VEC_MUL = (
    "mul",
    "mla",
    "mls",
    "smull",
    "umull",
    "smlal",
    "umlal",
    "sqdmul",
    "sqrdmul",
    "sdot",
    "udot",
    "sqdmlal",
    "fmul",
    "fmla",
    "fmls",
)
_A64_VEC_ALU2 = ("add", "sub", "neg", "shadd", "uhadd", "shsub", "uhsub")


class CortexA53(CycleModel):
    info = ModelInfo(
        "cortex-a53",
        2,
        (
            "llvm/lib/Target/AArch64/AArch64SchedA53.td",
            "Tencent/ncnn docs/developer-guide/arm-a53-a55-dual-issue.md (A53 ASIMD issue)",
            "Arm Cortex-A55 Software Optimization Guide ARM-EPM-128372 (accumulate forwarding)",
        ),
    )
    mispredict = 9  # CortexA53Model.MispredictPenalty

    def op(self, insn: Insn) -> Op:
        name = insn.name
        if insn.load or insn.store:
            if insn.vector and insn.load:
                # The load path is 64 bits: a Q register takes 2 issue cycles, a D (or
                # smaller) register 1, and a vector load never pairs (ncnn, A53 notes).
                per_reg = 2 if insn.quad else 1
                n = max(insn.nregs, 1) * per_reg
                return Op(latency=3 + n - 1, unit="ls", busy=n, stall=n, single=True)
            if insn.vector and insn.nregs:
                # A53WriteVST1..3: one issue cycle per register (ST1 of n regs)
                n = insn.nregs
                if name.startswith("st") and name[2:3] in "1234" and name[2:3]:
                    return Op(latency=1, unit="ls", busy=n, stall=n)
            lat = 3 if insn.load else 1  # LoadLatency 3 (with bypass)
            busy = 2 if insn.quad and insn.nregs == 2 else 1
            return Op(latency=lat, unit="ls", busy=busy, stall=busy)
        if insn.branch != Branch.NONE:
            return Op(latency=1, unit="br")
        if insn.vector:
            # One ASIMD instruction per cycle, 64- or 128-bit (a Q-form FMLA issues every
            # cycle); it pairs with integer work, not with another ASIMD instruction.
            if name.startswith(_A64_VEC_MUL) or name in ("sadalp", "uadalp"):
                # 4 cycles; the accumulator late-forwarded: 1 from a MAC (A55 SWOG).
                acc = insn.accumulator
                return Op(latency=4, unit="fp", late=acc, late_by=3 if acc else 0)
            if name.startswith(_A64_VEC_ALU2):
                return Op(latency=2, unit="fp")
            if name in ("fmov", "mov", "dup", "ins", "umov", "smov", "movi"):
                return Op(latency=2 if name in ("movi", "mov") else 4, unit="fp")
            return Op(latency=3 if not name.startswith("f") else 4, unit="fp")
        if name in _A64_MUL:
            # WriteIM32/64: latency 4; operands read 1 late (ReadIM), accumulator 2 late (ReadIMA)
            return Op(latency=3, unit="mac", late=insn.accumulator, late_by=1)
        if name in ("sdiv", "udiv"):  # WriteID32/64: latency 4, divider unit
            return Op(latency=4, unit="div", busy=4)
        # WriteI/WriteISReg: latency 3 with ReadI advance 2 -> 1 for plain reads,
        # 2 for a shifted or extended operand (A53ReadShifted advance 1).
        early = insn.reads if insn.shifted else frozenset()
        return Op(latency=1, unit="alu", early=early, early_by=1)

    def block_cost(self, insns: Sequence[Insn]) -> BlockCost:
        block = [(i, self.op(i)) for i in insns]
        cycles = schedule(block, width=2, units={"alu": 2})
        not_taken, taken = taken_penalty_btfn(insns[-1], self.mispredict)
        return BlockCost(len(insns), cycles + not_taken, taken - not_taken, 0)


MODELS: tuple[CycleModel, ...] = (CortexA7(), CortexA53())
