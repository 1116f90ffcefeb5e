"""What a cycle model sees and returns: decoded instructions in, one cost per basic block out.

The emulator decodes each basic block once (capstone) into :class:`Insn` records
and asks the target's model for a :class:`BlockCost`. At run time it only adds
those numbers up, plus the taken-branch delta when the next block executed is not
the fall-through. Everything that depends on neighbouring instructions (load-use,
multiply latency, load pipelining, dual issue) is therefore resolved statically
within the block; registers are assumed ready at block entry.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from autotune.errors import AutotuneError

INSTRUCTIONS_LABEL = "instructions (exact)"


def cycles_label(name: str) -> str:
    """How every figure of the cycle model ``name`` is labelled."""
    return f"cycles (model {name})"


class UnknownCycleModelError(AutotuneError):
    """A target names a cycle model that no plugin registered."""


class Branch(enum.IntEnum):
    """How an instruction changes control flow."""

    NONE = 0
    DIRECT = 1  # unconditional, target in the encoding: b, bl, jal, c.j
    COND = 2  # conditional, target in the encoding: b<cc>, cbz, beq, c.beqz
    INDIRECT = 3  # target from a register or memory: bx, blx rN, pop {pc}, ldr pc, jalr, ret, br


@dataclass(frozen=True, slots=True)
class Insn:
    """One decoded instruction, in the terms the models need and no more."""

    address: int
    size: int
    name: str  # base mnemonic without condition or width suffix: ldr, smlad, lw, c.lw -> lw
    text: str  # as disassembled, for messages
    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()
    addr_regs: frozenset[str] = frozenset()  # registers that form a memory address
    load: bool = False
    store: bool = False
    nregs: int = 0  # registers moved by LDM/STM/PUSH/POP/LDRD/LDP/VLDM (0 otherwise)
    branch: Branch = Branch.NONE
    call: bool = False  # writes a return address (bl, blx, jal with rd=ra)
    target: int | None = None  # for direct and conditional branches
    conditional: bool = False  # predicated (ARM condition code other than AL, or IT block)
    writeback: bool = False  # base register update
    shifted: bool = False  # an operand goes through the shifter (ARM)
    vector: bool = False  # NEON / VFP / SIMD register operands
    quad: bool = False  # 128-bit vector operation
    imm: bool = False  # has an immediate operand
    accumulator: frozenset[str] = frozenset()  # accumulator inputs of multiply-accumulates
    groups: frozenset[str] = frozenset()  # capstone's instruction groups (e.g. thumb2dsp)

    @property
    def end(self) -> int:
        return self.address + self.size

    @property
    def backward(self) -> bool:
        """A branch to an earlier address: the shape of a loop back-edge."""
        return self.target is not None and self.target <= self.address


@dataclass(frozen=True, slots=True)
class BlockCost:
    """Static cost of one basic block.

    ``cycles`` is what the block costs when it falls through (its last branch
    not taken); ``taken_delta`` is added when control leaves through the taken
    branch instead (it can be negative where a model predicts the branch taken
    and charges the fall-through as a mispredict); ``entry_extra`` is added when
    the block is entered by a taken branch (fetch alignment effects).
    """

    instructions: int
    cycles: int
    taken_delta: int = 0
    entry_extra: int = 0


@dataclass(frozen=True)
class ModelInfo:
    name: str  # e.g. "cortex-m4"
    version: int
    sources: tuple[str, ...] = field(default=())  # documents the tables are taken from


class CycleModel(ABC):
    """A per-core timing model; subclasses set ``info`` and implement ``block_cost``."""

    info: ModelInfo

    @property
    def name(self) -> str:
        """The model's full name, as targets refer to it: ``"cortex-m4 v3"``."""
        return f"{self.info.name} v{self.info.version}"

    @property
    def label(self) -> str:
        """How every figure from this model is labelled."""
        return f"cycles (model {self.name})"

    @abstractmethod
    def block_cost(self, insns: Sequence[Insn]) -> BlockCost:
        """Cycles for a straight-line run of instructions ending at most in one branch."""

    def check(self, insn: Insn) -> str | None:
        """Why this instruction cannot run on the modelled core, or None.

        Used by the emulator to turn instructions that its CPU model accepts but
        the real core lacks (for example DSP instructions on a Cortex-M3) into
        invalid-instruction faults.
        """
        return None


def taken_penalty_btfn(insn: Insn, mispredict: int) -> tuple[int, int]:
    """(not-taken cost, taken cost) under static backward-taken/forward-not-taken prediction.

    Cores with dynamic predictors (SiFive E31, Cortex-M7, Cortex-A7/A53) learn
    loop back-edges; a static model cannot replay branch history, so it charges
    the mispredict penalty where BTFN would be wrong: leaving a loop and taking
    a forward branch. Direct jumps and calls are predicted by the target buffer.
    """
    if insn.branch == Branch.COND:
        if insn.backward:
            return mispredict, 0
        return 0, mispredict
    if insn.branch == Branch.DIRECT:
        return 0, 0
    if insn.branch == Branch.INDIRECT:
        return 0, mispredict
    return 0, 0


_FLAGS = frozenset({"cpsr", "nzcv"})  # condition flags: renamed in hardware, no WAW stall


@dataclass(frozen=True, slots=True)
class Op:
    """How one instruction uses an in-order pipeline, for :func:`schedule`.

    ``latency``: cycles from issue until a dependent instruction may issue.
    ``unit``/``busy``: the functional unit and how long it stays occupied (a
    128-bit NEON operation on a 64-bit datapath keeps its unit for 2 cycles).
    ``stall``: cycles the issue stage itself is blocked (divides on cores that
    stall, multi-cycle load/store-multiple). ``single``: never dual-issued;
    ``older_only``/``younger_only``: which slot of a dual-issue pair it may take.
    ``late``/``late_by``: registers read late (an accumulator forwarded into the
    next multiply-accumulate); ``early``/``early_by``: registers needed early
    (address generation, shifted operands).
    """

    latency: int = 1
    unit: str = "alu"
    busy: int = 1
    stall: int = 1
    single: bool = False
    older_only: bool = False
    younger_only: bool = False
    late: frozenset[str] = frozenset()
    late_by: int = 0
    early: frozenset[str] = frozenset()
    early_by: int = 0


def schedule(
    block: Sequence[tuple[Insn, Op]],
    width: int = 1,
    units: dict[str, int] | None = None,
    pair_ok=None,
) -> int:
    """Cycles for an in-order core to issue ``block``: operand readiness, unit
    occupancy and (for ``width`` 2) dual issue of adjacent independent instructions.

    Registers are taken as ready at block entry. ``units`` gives how many of each
    unit exist (default 1); ``pair_ok(older, younger)`` adds core-specific pairing
    restrictions on top of the generic ones (no dependency, free units, slots).
    """
    units = units or {}
    ready: dict[str, int] = {}
    free: dict[str, list[int]] = {}
    group_cycle = -1
    group_n = 0
    group_first: tuple[Insn, Op] | None = None
    group_units: dict[str, int] = {}
    next_min = 0  # first cycle a new issue group may start
    for insn, op in block:
        t = 0
        for r in insn.reads:
            rt = ready.get(r)
            if rt is None:
                continue
            if r in op.late:
                rt -= op.late_by
            if r in op.early:
                rt += op.early_by
            if rt > t:
                t = rt
        slots = free.setdefault(op.unit, [0] * units.get(op.unit, 1))
        unit_t = min(slots)
        if unit_t > t:
            t = unit_t
        dual = (
            width > 1
            and group_n == 1
            and group_first is not None
            and t <= group_cycle
            and not op.single
            and not op.older_only
            and not group_first[1].single
            and not group_first[1].younger_only
            and group_first[1].stall <= 1
            and group_units.get(op.unit, 0) < units.get(op.unit, 1)
            and not ((insn.writes & group_first[0].writes) - _FLAGS)
            and (pair_ok is None or pair_ok(group_first, (insn, op)))
        )
        if dual:
            issue = group_cycle
            group_n = 2
            group_units[op.unit] = group_units.get(op.unit, 0) + 1
        else:
            issue = max(t, next_min)
            group_cycle = issue
            group_n = 2 if op.single else 1
            group_first = (insn, op)
            group_units = {op.unit: 1}
        next_min = max(next_min, issue + max(op.stall, 1))
        for w in insn.writes:
            ready[w] = issue + op.latency
        k = slots.index(min(slots))
        slots[k] = issue + op.busy
    return next_min
