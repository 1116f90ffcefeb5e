"""Capstone's MIPS32 decoding turned into autotune's :class:`Insn` records.

Capstone 5 gives MIPS operands without their direction, so direction follows the
assembler's conventions: the first register is the destination, except for stores,
branches, traps and the multiply/divide instructions that write HI/LO (all sources).
HI and LO are one register here, ``hilo``, because every MDU instruction of MIPS32r2
without the DSP extension reads or writes them as a pair.

A MIPS basic block as Unicorn executes it ends with its branch *and* the branch's
delay slot, so the branch is usually the second-to-last instruction of a block.
"""

from __future__ import annotations

import capstone
from autotune.platform.cycles.base import Branch, Insn
from autotune.platform.cycles.decode import CapstoneDecoder
from capstone import mips as cs_mips

HILO = "hilo"

LOADS = frozenset({"lb", "lbu", "lh", "lhu", "lw", "lwl", "lwr", "ll"})
STORES = frozenset({"sb", "sh", "sw", "swl", "swr", "sc"})
# Instructions that merge into their destination: it is read as well as written.
_MERGE = frozenset({"lwl", "lwr", "movn", "movz", "ins"})
_COND_BRANCH = frozenset(
    {
        "beq",
        "bne",
        "beqz",
        "bnez",
        "blez",
        "bgtz",
        "bltz",
        "bgez",
        "beql",
        "bnel",
        "blezl",
        "bgtzl",
        "bltzl",
        "bgezl",
        "bltzal",
        "bgezal",
    }
)
_CALLS = frozenset({"jal", "jalr", "jalr.hb", "bal", "bltzal", "bgezal"})
# Multiply/divide unit instructions whose registers are all sources; they write HI/LO.
MDU_TO_HILO = frozenset({"mult", "multu", "madd", "maddu", "msub", "msubu", "div", "divu"})
MDU_ACCUMULATE = frozenset({"madd", "maddu", "msub", "msubu"})
_TRAPS = frozenset({"teq", "tne", "tge", "tgeu", "tlt", "tltu", "teqi", "tnei"})


def _mnemonic(ins) -> str:
    return ins.mnemonic.lower()


def decode_one(ins) -> Insn:
    """One capstone instruction (``detail`` on) as an :class:`Insn`."""
    name = _mnemonic(ins)
    regs: list[str] = []
    addr: set[str] = set()
    imm: int | None = None
    for op in ins.operands:
        if op.type == cs_mips.MIPS_OP_REG:
            regs.append(ins.reg_name(op.reg))
        elif op.type == cs_mips.MIPS_OP_MEM:
            addr.add(ins.reg_name(op.mem.base))
        elif op.type == cs_mips.MIPS_OP_IMM:
            imm = op.imm
    load = name in LOADS
    store = name in STORES
    reads: set[str] = set(addr)
    writes: set[str] = set()
    branch = Branch.NONE
    target: int | None = None
    call = name in _CALLS
    accumulator: frozenset[str] = frozenset()
    if store or name in _TRAPS:
        reads.update(regs)
    elif name in _COND_BRANCH or name == "b" or name == "bal":
        reads.update(regs)
        branch = Branch.DIRECT if name in ("b", "bal") else Branch.COND
        target = imm
    elif name in ("j", "jal"):
        branch = Branch.DIRECT
        target = imm
    elif name in ("jr", "jr.hb"):
        branch = Branch.INDIRECT
        reads.update(regs[-1:])
    elif name in ("jalr", "jalr.hb"):
        branch = Branch.INDIRECT
        reads.update(regs[-1:])
        writes.add(regs[0] if len(regs) > 1 else "ra")
    elif name in MDU_TO_HILO:
        reads.update(regs)
        writes.add(HILO)
        if name in MDU_ACCUMULATE:
            reads.add(HILO)
            accumulator = frozenset({HILO})
    elif name in ("mfhi", "mflo"):
        reads.add(HILO)
        writes.update(regs[:1])
    elif name in ("mthi", "mtlo"):
        reads.update(regs)
        writes.add(HILO)
    elif regs:
        writes.add(regs[0])
        reads.update(regs[1:])
        if name in _MERGE:
            reads.add(regs[0])
    if call and branch != Branch.INDIRECT:
        writes.add("ra")
    reads.discard("zero")
    writes.discard("zero")
    return Insn(
        address=ins.address,
        size=ins.size,
        name=name,
        text=f"{ins.mnemonic} {ins.op_str}".strip(),
        reads=frozenset(reads),
        writes=frozenset(writes),
        addr_regs=frozenset(addr - {"zero"}),
        load=load,
        store=store,
        branch=branch,
        call=call,
        target=target,
        imm=imm is not None and branch == Branch.NONE,
        accumulator=accumulator,
        groups=frozenset(ins.group_name(g).lower() for g in ins.groups),
    )


def mips_decoder(big_endian: bool = False) -> CapstoneDecoder:
    """A decoder for MIPS32 basic blocks (one instruction-set state)."""
    endian = capstone.CS_MODE_BIG_ENDIAN if big_endian else capstone.CS_MODE_LITTLE_ENDIAN
    return CapstoneDecoder(
        {0: (capstone.CS_ARCH_MIPS, capstone.CS_MODE_MIPS32 | endian, decode_one)}
    )
