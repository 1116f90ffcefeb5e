"""Cycle models for the Cortex-M family (M0, M0+, M3, M4, M33, M7).

Sources, cited per table below:
- Cortex-M0 TRM (Arm DDI 0432C), section 3.3, Table 3-1 "Cortex-M0 instruction summary".
- Cortex-M0+ TRM (Arm DDI 0484C), section 3.3, Table 3-1 "Cortex-M0+ instruction summary".
- Cortex-M3 TRM (Arm DDI 0337I), section 3.3, Table 3-1 and 3.3.2 "Load/store timings".
- Cortex-M4 TRM (Arm 100166_0001_00), section 3.3.1, Table 3-1 (processor
  instructions, DSP instructions included), and the load/store timing rules
  shared with the M3.
- Cortex-M33: Arm publishes no per-instruction table; LLVM schedules the M33
  with the Cortex-M4 model (llvm/lib/Target/ARM/ARM.td: ProcessorModel
  "cortex-m33", CortexM4Model), and so does this model.
- Cortex-M7: no public per-instruction table either; latencies, units and
  dual-issue restrictions follow LLVM's llvm/lib/Target/ARM/ARMScheduleM7.td
  (IssueWidth 2, LoadLatency 2, MAC latency 2 with the accumulator read one
  cycle late, divide 7 cycles single-issue, load/store multiple single-issue,
  DSP/SIMD instructions only in the first slot, MispredictPenalty 4).

Zero-wait-state memory is assumed throughout, as in the TRM tables.
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
_MLA = {"mla", "mls"}
_LONG_MUL = {"smull", "umull"}
_LONG_MAC = {"smlal", "umlal", "umaal"}
_DIV = {"sdiv", "udiv"}
_BARRIER = {"dmb", "dsb", "isb"}
_SYSREG = {"mrs", "msr"}


def _is_dsp(insn: Insn) -> bool:
    return "thumb2dsp" in insn.groups


def _loads_pc(insn: Insn) -> bool:
    return insn.branch == Branch.INDIRECT and insn.load


def _single_ls(insn: Insn) -> bool:
    """A single load or store (not multiple, not doubleword, not a table branch)."""
    return (insn.load or insn.store) and insn.nregs == 0 and insn.name not in ("tbb", "tbh")


def _loaded(insn: Insn) -> set[str]:
    """The registers a load writes with memory data (its base write-back left out)."""
    base = insn.addr_regs if insn.writeback else set()
    return set(insn.writes) - set(base)


def _entry_extra_32bit_unaligned(insns: Sequence[Insn]) -> int:
    """Fetching a 32-bit Thumb instruction at a halfword-aligned target takes one more fetch."""
    first = insns[0]
    return 1 if first.size == 4 and first.address % 4 == 2 else 0


class CortexM0(CycleModel):
    """Cortex-M0: 3-stage pipeline, von Neumann bus, no branch speculation."""

    info = ModelInfo("cortex-m0", 2, ("Arm DDI 0432C, Cortex-M0 TRM, Table 3-1",))
    # DDI 0432C Table 3-1: B<cc> 1 or 3, B 3, BL 4, BX/BLX 3, MOV/ADD PC 3 -> a
    # taken branch adds 2 refill cycles; POP {..,PC} is 4+N -> 3 on top of 1+N.
    refill = 2
    pop_pc_extra = 3
    barrier = 4  # DMB/DSB/ISB 4
    sysreg = 4  # MRS/MSR 4
    # MULS is 1 cycle with the fast multiplier, 32 with the small one (an
    # implementation option, note a of Table 3-1); the fast option is modelled.
    muls = 1

    def insn_cost(self, insn: Insn) -> tuple[int, int]:
        """(cycles when not taken / not a branch, extra cycles when taken)."""
        name = insn.name
        if insn.branch != Branch.NONE:
            if _loads_pc(insn):  # POP {..., PC}
                return 1 + insn.nregs, self.pop_pc_extra
            base = 2 if name == "bl" else 1  # BL is a 32-bit pair: 4 = 2 + refill
            return base, self.refill
        if insn.nregs:  # LDM, STM, PUSH, POP: 1 + N
            return 1 + insn.nregs, 0
        if insn.load or insn.store:  # all single loads and stores: 2
            return 2, 0
        if name in _MUL:
            return self.muls, 0
        if name in _BARRIER:
            return self.barrier, 0
        if name in _SYSREG:
            return self.sysreg, 0
        return 1, 0

    def block_cost(self, insns: Sequence[Insn]) -> BlockCost:
        total = 0
        taken = 0
        for insn in insns:
            c, taken = self.insn_cost(insn)
            total += c
        return BlockCost(len(insns), total, taken, 0)

    def check(self, insn: Insn) -> str | None:
        if _is_dsp(insn):
            return (
                f"{insn.name} is a DSP-extension instruction, not implemented by {self.info.name}"
            )
        return None


class CortexM0Plus(CortexM0):
    """Cortex-M0+: 2-stage pipeline, so a taken branch refills one stage less."""

    info = ModelInfo("cortex-m0plus", 2, ("Arm DDI 0484C, Cortex-M0+ TRM, Table 3-1",))
    # DDI 0484C Table 3-1: B<cc> 1 or 2, B 2, BL 3, BX/BLX 2, POP {..,PC} 3+N,
    # DMB/DSB/ISB 3, MRS/MSR 3. Loads/stores are 2 (1 only on the single-cycle
    # I/O port, which kernels do not use).
    refill = 1
    pop_pc_extra = 2
    barrier = 3
    sysreg = 3


class CortexM3(CycleModel):
    """Cortex-M3: 3-stage pipeline with branch speculation and pipelined loads."""

    info = ModelInfo(
        "cortex-m3",
        3,
        ("Arm DDI 0337I, Cortex-M3 TRM, Table 3-1 and section 3.3.2 Load/store timings",),
    )
    has_dsp = False
    # Table 3-1 (M3): MUL 1, MLA/MLS 2, SMULL/UMULL 3-5, SMLAL/UMLAL 4-7 (early
    # termination on small operands; int8 kernels have small operands, so the
    # lower bounds are used), SDIV/UDIV 2-12 (upper bound used).
    mla = 2
    long_mul = 3
    long_mac = 4
    div = 12

    def _branch(self, insn: Insn) -> tuple[int, int]:
        # B, BL, BX, BLX, CBZ: 1 (+P when taken). P is 1-3 "depending on the
        # alignment and width of the target instruction, and whether the
        # processor manages to speculate the address early": 1 for a direct
        # branch (speculated), 2 for a register target, plus one for a 32-bit
        # unaligned target (BlockCost.entry_extra). Loads to PC: "at least two
        # cycles for the load, and three cycles for the pipeline reload"; POP
        # {..,PC} and LDM with PC are 1+N then the reload; TBB/TBH 2+P.
        name = insn.name
        if _loads_pc(insn):
            if name in ("tbb", "tbh"):
                return 2, 2
            if insn.nregs:
                return 1 + insn.nregs, 2
            return 2, 2
        if insn.branch in (Branch.DIRECT, Branch.COND):
            return 1, 1
        return 1, 2

    def insn_cost(self, insn: Insn, prev: Insn | None) -> int:
        name = insn.name
        if insn.nregs:  # LDM/STM/PUSH/POP 1+N; LDRD/STRD 1+N and never pipelined
            return 1 + insn.nregs
        if insn.load or insn.store:
            # Table 3-1: single loads and stores 2, "neighboring load and store
            # single instructions can pipeline their address and data phases".
            # 3.3.2 (M3 DDI 0337I and M4 100166, same text): "LDR [any] are
            # pipelined when possible. This means that if the next instruction is
            # an LDR or STR, and the destination of the first LDR is not used to
            # compute the address for the next instruction, then one cycle is
            # removed from the cost of the next instruction": any addressing mode,
            # base update included (the section excludes only LDRD/STRD, LDM/STM
            # and loads to PC); the destination is the loaded register, not the
            # written-back base. "STR Rx,[Ry,#imm] is always one cycle"; an
            # address computed by the immediately preceding data-processing
            # instruction stalls one cycle (no forwarding path).
            cost = 2
            if (
                prev is not None
                and prev.load
                and _single_ls(prev)
                and not (insn.addr_regs & _loaded(prev))
            ):
                cost = 1
            if insn.store and len(insn.addr_regs) <= 1 and not insn.writeback:
                cost = 1
            if (
                prev is not None
                and not (prev.load or prev.store)
                and prev.branch == Branch.NONE
                and insn.addr_regs & prev.writes
            ):
                cost += 1
            return cost
        if name in _MUL:
            return 1
        if name in _MLA:
            return self.mla
        if name in _LONG_MUL:
            return self.long_mul
        if name in _LONG_MAC:
            return self.long_mac
        if name in _DIV:
            return self.div
        if name in _BARRIER:
            return 4  # 1 + B, B at least a pipeline refill
        return 1  # ALU, shifts, saturation, bitfield, extend, DSP (M4), IT

    def block_cost(self, insns: Sequence[Insn]) -> BlockCost:
        total = 0
        taken = 0
        prev: Insn | None = None
        for insn in insns:
            if insn.branch != Branch.NONE:
                c, taken = self._branch(insn)
                total += c
            else:
                total += self.insn_cost(insn, prev)
            prev = insn
        return BlockCost(len(insns), total, taken, _entry_extra_32bit_unaligned(insns))

    def check(self, insn: Insn) -> str | None:
        if not self.has_dsp and _is_dsp(insn):
            return (
                f"{insn.name} is a DSP-extension instruction, not implemented by {self.info.name}"
            )
        return None


class CortexM4(CortexM3):
    """Cortex-M4: the M3 pipeline with a single-cycle MAC unit and the DSP extension."""

    info = ModelInfo(
        "cortex-m4",
        3,
        (
            "Arm 100166_0001_00, Cortex-M4 TRM, Table 3-1",
            "Arm DDI 0337I, Cortex-M3 TRM, 3.3.2 Load/store timings (same rules)",
        ),
    )
    has_dsp = True
    # Table 3-1 (M4): MUL, MLA, MLS 1; SMULL, UMULL, SMLAL, UMLAL 1; every
    # DSP instruction (SMLAD, SMUAD, SXTB16, SADD16, QADD, ...) 1; SDIV/UDIV
    # 2-12 (upper bound used).
    mla = 1
    long_mul = 1
    long_mac = 1
    div = 12


class CortexM33(CortexM4):
    """Cortex-M33, timed as a Cortex-M4 (LLVM uses the M4 scheduling model for it)."""

    info = ModelInfo(
        "cortex-m33",
        3,
        (
            "llvm/lib/Target/ARM/ARM.td: cortex-m33 uses CortexM4Model",
            "Arm 100166_0001_00, Cortex-M4 TRM, Table 3-1",
        ),
    )


_M7_SLOT0 = {"clz", "bfc", "bfi", "ldrex", "ldrexb", "ldrexh"}


class CortexM7(CycleModel):
    """Cortex-M7: 6-stage, dual-issue, with a branch predictor (LLVM ARMScheduleM7.td)."""

    info = ModelInfo("cortex-m7", 2, ("llvm/lib/Target/ARM/ARMScheduleM7.td",))
    mispredict = 4  # CortexM7Model.MispredictPenalty

    def op(self, insn: Insn) -> Op:
        name = insn.name
        # Address operands are read at the issue stage, one cycle before EX2
        # (M7Read_ISS = SchedReadAdvance<-1>); shifted ALU operands likewise.
        early = insn.addr_regs
        if insn.shifted:
            early = early | (insn.reads - insn.addr_regs)
        if insn.nregs:  # LDM/STM/PUSH/POP/LDRD/STRD: single issue (M7SingleIssue)
            # The M7's 64-bit load/store path moves two registers per cycle.
            stall = max(1, (insn.nregs + 1) // 2)
            return Op(
                latency=2,
                unit="ld" if insn.load else "st",
                stall=stall,
                single=True,
                early=early,
                early_by=1,
            )
        if insn.load:
            # WriteLd latency 1 (word, EX2 data) / M7SlowLoad 2 (byte, halfword).
            slow = name in ("ldrb", "ldrh", "ldrsb", "ldrsh", "ldrex", "ldrexb", "ldrexh")
            return Op(
                latency=2 if slow else 1,
                unit="ld",
                early=early,
                early_by=1,
                older_only=name in _M7_SLOT0,
            )
        if insn.store:
            return Op(latency=1, unit="st", early=early, early_by=1)
        if name in _DIV:  # WriteDIV: latency 7, SingleIssue, stalls for its latency
            return Op(latency=7, unit="alu", stall=7, single=True)
        if name in _MUL | _MLA | _LONG_MUL | _LONG_MAC or name.startswith(
            ("smla", "smul", "smua", "smus", "smls", "smml", "smmu")
        ):
            # WriteMUL*/WriteMAC*: latency 2 on the single MAC pipe; ReadMAC
            # advance 1: the accumulator is read a cycle late.
            return Op(latency=2, unit="mac", late=insn.accumulator, late_by=1)
        if _is_dsp(insn) or name in ("sxtb", "sxth", "uxtb", "uxth", "ssat", "usat"):
            # M7WriteSIMD*: BeginGroup (first slot only), SIMD unit; the
            # saturating and USAD8 forms have latency 2.
            lat = 2 if name.startswith(("q", "uq", "ssat", "usat", "usad")) else 1
            return Op(latency=lat, unit="simd", older_only=True)
        if name in _BARRIER or name in _SYSREG:  # M7NonGeneralPurpose: latency 3, single issue
            return Op(latency=3, unit="alu", single=True)
        if insn.branch != Branch.NONE:
            return Op(latency=1, unit="br")
        return Op(
            latency=1,
            unit="alu",
            early=early - insn.addr_regs,
            early_by=1,
            older_only=name in _M7_SLOT0,
        )

    def block_cost(self, insns: Sequence[Insn]) -> BlockCost:
        block = [(i, self.op(i)) for i in insns]
        cycles = schedule(block, width=2, units={"alu": 2, "ld": 2})
        not_taken, taken = taken_penalty_btfn(insns[-1], self.mispredict)
        return BlockCost(len(insns), cycles + not_taken, taken - not_taken, 0)


MODELS: tuple[CycleModel, ...] = (
    CortexM0(),
    CortexM0Plus(),
    CortexM3(),
    CortexM4(),
    CortexM7(),
    CortexM33(),
)
