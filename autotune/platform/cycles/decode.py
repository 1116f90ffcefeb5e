"""Capstone to :class:`Insn`: decode helpers ISA support builds its decoder from.

Run once per basic block (never per executed instruction), so clarity wins over
speed here. Register names are normalised so that aliases meet in the
scoreboard: AArch64 ``w3``/``x3`` are one register, as are ``b0``/``s0``/``q0``/``v0``;
on AArch32 a VFP ``s`` register maps to the ``d`` register holding it and a
``q`` register to its two ``d`` halves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import capstone
from capstone import arm as cs_arm
from capstone import arm64 as cs_arm64
from capstone import riscv as cs_riscv

from autotune.platform.cycles.base import Branch, Insn

_ARM_VREG = re.compile(r"^([sdq])(\d+)$")
_A64_VREG = re.compile(r"^[bhsdqv](\d+)$")
_A64_GREG = re.compile(r"^[wx](\d+)$")
_A64_VEC_ACC = {
    "mla",
    "mls",
    "smlal",
    "smlal2",
    "umlal",
    "umlal2",
    "sdot",
    "udot",
    "sadalp",
    "uadalp",
    "fmla",
    "fmls",
    "sqdmlal",
    "sqdmlal2",
}
_A64_QFORM = re.compile(r"\.(16b|8h|4s|2d)\b|\bq\d+\b")


def _arm_reg(name: str) -> tuple[str, ...]:
    m = _ARM_VREG.match(name)
    if not m:
        if name in ("apsr", "apsr_nzcv", "fpscr_nzcv"):
            return ("cpsr",)
        return (name,)
    kind, n = m.group(1), int(m.group(2))
    if kind == "s":
        return (f"d{n // 2}",)
    if kind == "q":
        return (f"d{2 * n}", f"d{2 * n + 1}")
    return (name,)


def _a64_reg(name: str) -> tuple[str, ...]:
    if name in ("wzr", "xzr"):
        return ()
    if name in ("wsp", "sp"):
        return ("sp",)
    m = _A64_GREG.match(name)
    if m:
        return (f"x{m.group(1)}",)
    m = _A64_VREG.match(name)
    if m:
        return (f"v{m.group(1)}",)
    if name == "nzcv":
        return ("nzcv",)
    return (name,)


def _norm(names: Iterable[str], fn) -> frozenset[str]:
    out: set[str] = set()
    for n in names:
        out.update(fn(n))
    return frozenset(out)


_ARM_LOAD_PREFIX = ("ldr", "ldm", "pop", "vld", "vpop", "ldrex", "tbb", "tbh", "lda")
_ARM_STORE_PREFIX = ("str", "stm", "push", "vst", "vpush", "strex", "stl")
_ARM_MULTI = ("ldm", "stm", "push", "pop", "vldm", "vstm", "vpush", "vpop")
_ARM_MAC = {"mla", "mls", "usada8"}
_ARM_DIRECT = ("b", "bl", "cbz", "cbnz")  # target in the encoding
_ARM_LONG_MAC = {"umlal", "umaal"}


def arm_insn(ins) -> Insn:
    """An A32 instruction (capstone, detail on) as an :class:`Insn`."""
    return _decode_arm(ins, thumb=False)


def thumb_insn(ins) -> Insn:
    """A Thumb instruction (capstone, detail on) as an :class:`Insn`."""
    return _decode_arm(ins, thumb=True)


def _decode_arm(ins, thumb: bool) -> Insn:
    name = ins.insn_name().lower()
    reads_raw, writes_raw = ins.regs_access()
    reads = _norm((ins.reg_name(r) for r in reads_raw), _arm_reg)
    writes = _norm((ins.reg_name(r) for r in writes_raw), _arm_reg)
    addr: set[str] = set()
    nreg_ops = 0
    reg_ops: list[str] = []
    has_imm = False
    shifted = False
    vector = False
    quad = False
    target = None
    for op in ins.operands:
        if op.type == cs_arm.ARM_OP_MEM:
            for r in (op.mem.base, op.mem.index):
                if r:
                    addr.update(_arm_reg(ins.reg_name(r)))
        elif op.type == cs_arm.ARM_OP_REG:
            nreg_ops += 1
            rn = ins.reg_name(op.reg)
            reg_ops.append(rn)
            if _ARM_VREG.match(rn):
                vector = True
                quad = quad or rn.startswith("q")
            if op.shift.type not in (0, cs_arm.ARM_SFT_INVALID) and op.shift.value:
                shifted = True
        elif op.type == cs_arm.ARM_OP_IMM:
            target = op.imm
            has_imm = True
    load = name.startswith(_ARM_LOAD_PREFIX)
    store = not load and name.startswith(_ARM_STORE_PREFIX)
    nregs = 0
    if name.startswith(_ARM_MULTI):
        # ldm/stm name the base register as an operand; push/pop/vpush/vpop do not.
        nregs = nreg_ops - (0 if name.startswith(("push", "pop", "vpush", "vpop")) else 1)
        if quad:
            nregs *= 2
    elif name in ("ldrd", "strd", "ldaexd", "strexd", "ldrexd"):
        nregs = 2
    cond = ins.cc not in (cs_arm.ARM_CC_AL, cs_arm.ARM_CC_INVALID)
    if cond:  # a predicated instruction or conditional branch consumes the flags
        reads = reads | {"cpsr"}
    if getattr(ins, "update_flags", False):  # capstone omits the flags of 16-bit ADDS/SUBS
        writes = writes | {"cpsr"}
    branch = Branch.NONE
    call = name in ("bl", "blx")
    # Capstone lists PC as written for some branches only (not for Thumb B, B.W,
    # B<cc>.W, CBZ/CBNZ or TBB/TBH), so the mnemonic decides what is a branch.
    if name in _ARM_DIRECT or (name == "blx" and target is not None):
        branch = Branch.COND if cond or name in ("cbz", "cbnz") else Branch.DIRECT
    elif "pc" in writes or name in ("tbb", "tbh"):
        branch = Branch.INDIRECT
        target = None
    else:
        target = None
    groups = frozenset(ins.group_name(g).lower() for g in ins.groups)
    acc: frozenset[str] = frozenset()
    if name in _ARM_LONG_MAC or name.startswith(("smlal", "smlsl")):
        acc = _norm(reg_ops[:2], _arm_reg)
    elif name in _ARM_MAC or name.startswith(("smla", "smlsd", "smmla", "smmls")):
        acc = _norm(reg_ops[-1:], _arm_reg)
    elif name in ("vmla", "vmls", "vfma", "vfms", "vmlal", "vmlsl", "vqdmlal", "vpadal"):
        acc = _norm(reg_ops[:1], _arm_reg)
    return Insn(
        address=ins.address,
        size=ins.size,
        name=name,
        text=f"{ins.mnemonic} {ins.op_str}".strip(),
        reads=reads - {"pc"},
        writes=writes - {"pc"},
        addr_regs=frozenset(addr),
        load=load,
        store=store,
        nregs=nregs,
        branch=branch,
        call=call,
        target=target,
        conditional=cond,
        writeback=bool(ins.writeback),
        shifted=shifted,
        vector=vector,
        quad=quad,
        imm=has_imm and branch == Branch.NONE,
        accumulator=acc,
        groups=groups,
    )


def a64_insn(ins) -> Insn:
    """An AArch64 instruction (capstone, detail on) as an :class:`Insn`."""
    name = ins.insn_name().lower()
    reads_raw, writes_raw = ins.regs_access()
    reads = _norm((ins.reg_name(r) for r in reads_raw), _a64_reg)
    writes = _norm((ins.reg_name(r) for r in writes_raw), _a64_reg)
    addr: set[str] = set()
    vregs = 0
    reg_ops: list[str] = []
    has_imm = False
    shifted = False
    target = None
    for op in ins.operands:
        if op.type == cs_arm64.ARM64_OP_MEM:
            for r in (op.mem.base, op.mem.index):
                if r:
                    addr.update(_a64_reg(ins.reg_name(r)))
        elif op.type == cs_arm64.ARM64_OP_REG:
            rn = ins.reg_name(op.reg)
            reg_ops.append(rn)
            if _A64_VREG.match(rn):
                vregs += 1
            if (op.shift.type and op.shift.value) or op.ext:
                shifted = True
        elif op.type == cs_arm64.ARM64_OP_IMM:
            target = op.imm
            has_imm = True
    load = name.startswith("ld") or name.startswith("prfm")
    store = name.startswith("st")
    nregs = 0
    if name.startswith(("ldp", "stp", "ldnp", "stnp")):
        nregs = 2
    elif re.match(r"^(ld|st)[1-4]", name):
        nregs = max(vregs, 1)
    text = f"{ins.mnemonic} {ins.op_str}".strip()
    quad = bool(_A64_QFORM.search(ins.op_str))
    cond = getattr(ins, "cc", 0) not in (0, cs_arm64.ARM64_CC_AL, cs_arm64.ARM64_CC_NV)
    if cond:  # b.cond, csel, ccmp... consume the flags
        reads = reads | {"nzcv"}
    if getattr(ins, "update_flags", False):
        writes = writes | {"nzcv"}
    branch = Branch.NONE
    call = name in ("bl", "blr")
    if name in ("b", "bl"):
        branch = Branch.COND if cond else Branch.DIRECT
    elif name in ("cbz", "cbnz", "tbz", "tbnz"):
        branch = Branch.COND
    elif name in ("br", "blr", "ret", "braa", "brab", "retaa", "retab"):
        branch = Branch.INDIRECT
        target = None
    if branch == Branch.NONE:
        target = None
    acc: frozenset[str] = frozenset()
    if name in ("madd", "msub", "smaddl", "umaddl", "smsubl", "umsubl"):
        acc = _norm(reg_ops[-1:], _a64_reg)
    elif name in _A64_VEC_ACC:
        acc = _norm(reg_ops[:1], _a64_reg)
    return Insn(
        address=ins.address,
        size=ins.size,
        name=name,
        text=text,
        reads=reads,
        writes=writes,
        addr_regs=frozenset(addr),
        load=load,
        store=store,
        nregs=nregs,
        branch=branch,
        call=call,
        target=target,
        conditional=cond and branch == Branch.NONE,
        writeback=bool(getattr(ins, "writeback", False)),
        shifted=shifted,
        vector=vregs > 0,
        quad=quad,
        imm=has_imm and branch == Branch.NONE,
        accumulator=acc,
        groups=frozenset(ins.group_name(g).lower() for g in ins.groups),
    )


# RISC-V: capstone 5 gives operands but not their direction, so the direction
# follows the assembler conventions: the first register is the destination,
# except for stores and branches (all sources) and the compressed two-operand
# forms whose destination is also a source.
_RV_STORE = {"sb", "sh", "sw", "sd", "fsw", "fsd", "fsh"}
_RV_BRANCH = {"beq", "bne", "blt", "bge", "bltu", "bgeu", "beqz", "bnez"}
_RV_RMW = {
    "c.add",
    "c.addi",
    "c.sub",
    "c.xor",
    "c.or",
    "c.and",
    "c.andi",
    "c.slli",
    "c.srli",
    "c.srai",
    "c.addi16sp",
    "c.addw",
    "c.subw",
    "c.addiw",
}


def riscv_insn(ins) -> Insn:
    """A RISC-V instruction (capstone, detail on) as an :class:`Insn`."""
    mnem = ins.mnemonic.lower()
    base = mnem[2:] if mnem.startswith("c.") else mnem
    regs: list[str] = []
    addr: set[str] = set()
    imm = None
    for op in ins.operands:
        if op.type == cs_riscv.RISCV_OP_REG:
            regs.append(ins.reg_name(op.reg))
        elif op.type == cs_riscv.RISCV_OP_MEM:
            b = ins.reg_name(op.mem.base)
            addr.add(b)
        elif op.type == cs_riscv.RISCV_OP_IMM:
            imm = op.imm
    if base in ("lwsp", "swsp", "flwsp", "fswsp", "fldsp", "fsdsp", "addi4spn"):
        addr.add("sp")
        base = base.replace("sp", "").replace("addi4n", "addi") or base
    load = base in ("lb", "lh", "lw", "lbu", "lhu", "ld", "flw", "fld", "flh") or base.startswith(
        "lr."
    )
    store = base in _RV_STORE or base.startswith("sc.")
    if (load or store) and not addr and len(regs) >= 2:
        # compressed loads/stores list the base register as a plain operand: c.lw rd, imm, rs1
        addr.add(regs.pop())
    reads: set[str] = set(addr)
    writes: set[str] = set()
    branch = Branch.NONE
    target = None
    call = False
    if store or base in _RV_BRANCH:
        reads.update(regs)
        if base in _RV_BRANCH:
            branch = Branch.COND
            target = ins.address + imm if imm is not None else None
    elif base in ("j", "jal"):
        branch = Branch.DIRECT
        target = ins.address + imm if imm is not None else None
        if base == "jal" and (mnem == "c.jal" or not regs or regs[0] != "zero"):
            writes.add(regs[0] if regs else "ra")
            call = True
    elif base in ("jr", "jalr", "ret"):
        branch = Branch.INDIRECT
        if mnem == "c.jalr" or (base == "jalr" and len(regs) >= 2 and regs[0] != "zero"):
            call = True
            writes.add("ra" if mnem == "c.jalr" else regs[0])
            reads.update(regs[-1:])
        else:
            reads.update(regs[-1:] or ["ra"])
    elif regs:
        writes.add(regs[0])
        reads.update(regs[1:])
        if mnem in _RV_RMW:
            reads.add(regs[0])
    reads.discard("zero")
    writes.discard("zero")
    return Insn(
        address=ins.address,
        size=ins.size,
        name=base,
        text=f"{ins.mnemonic} {ins.op_str}".strip(),
        reads=frozenset(reads),
        writes=frozenset(writes),
        addr_regs=frozenset(addr - {"zero"}),
        load=load,
        store=store,
        branch=branch,
        call=call,
        target=target,
        vector=any(r.startswith("f") and r != "fp" for r in regs),
        imm=imm is not None and branch == Branch.NONE,
        groups=frozenset(ins.group_name(g).lower() for g in ins.groups),
    )


class CapstoneDecoder:
    """Disassembles basic blocks with capstone into :class:`Insn` lists.

    ``modes`` maps each decode state of the ISA (0, or 0 = A32 and 1 = Thumb on Arm)
    to capstone's architecture and mode constants and the function that turns one
    capstone instruction into an :class:`Insn` (``arm_insn``, ``a64_insn``,
    ``riscv_insn`` here, or the plugin's own). ISA support builds one of these.
    """

    def __init__(self, modes: Mapping[int, tuple[int, int, Callable[[Any], Insn]]]) -> None:
        if not modes:
            raise ValueError("a decoder needs at least one mode")
        self._modes: dict[int, tuple[capstone.Cs, Callable[[Any], Insn]]] = {}
        for state, (arch, mode, convert) in modes.items():
            md = capstone.Cs(arch, mode)
            md.detail = True
            self._modes[state] = (md, convert)
        self._only = next(iter(self._modes.values())) if len(self._modes) == 1 else None

    def decode(self, code: bytes, address: int, state: int = 0) -> list[Insn]:
        """Every instruction in ``code``; stops early at bytes capstone cannot decode."""
        md, convert = self._only or self._modes[state]
        return [convert(ins) for ins in md.disasm(code, address)]
