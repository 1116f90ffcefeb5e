"""M-profile debug architecture for the ``gdb`` runner (Armv7-M ARM part C1 and B3.2,
Armv8-M ARM part D1): register conventions, the vector table, the FPU, the DWT cycle
counter and the fault status registers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from autotune.errors import AutotuneError
from autotune.platform.isa import DebugFault, DebugPort, DebugSupport
from autotune.platform.target import Target

# System control space.
VTOR = 0xE000ED08
CFSR = 0xE000ED28
HFSR = 0xE000ED2C
MMFAR = 0xE000ED34
BFAR = 0xE000ED38
CPACR = 0xE000ED88
DEMCR = 0xE000EDFC
DWT_CTRL = 0xE0001000
DWT_CYCCNT = 0xE0001004
TRCENA = 1 << 24
CYCCNTENA = 1
NOCYCCNT = 1 << 25
XPSR_T = 1 << 24
IPSR_MASK = 0x1FF
VECTORS_SYMBOL = "__autotune_vectors"  # the harness's vector table (start.S)
STACKED_PC = 24  # offset of the return address in the exception frame

_CFSR_BITS = {
    0: "IACCVIOL: instruction fetch from a protected region",
    1: "DACCVIOL: data access to a protected region",
    3: "MUNSTKERR: MemManage fault on exception return",
    4: "MSTKERR: MemManage fault on exception entry",
    5: "MLSPERR: MemManage fault during FP lazy state preservation",
    8: "IBUSERR: bus fault on instruction fetch",
    9: "PRECISERR: precise data bus error",
    10: "IMPRECISERR: imprecise data bus error",
    11: "UNSTKERR: bus fault on exception return",
    12: "STKERR: bus fault on exception entry (stack overflow?)",
    13: "LSPERR: bus fault during FP lazy state preservation",
    16: "UNDEFINSTR: undefined instruction",
    17: "INVSTATE: invalid state (Thumb bit clear)",
    18: "INVPC: invalid EXC_RETURN",
    19: "NOCP: coprocessor (FPU) disabled or absent",
    20: "STKOF: stack overflow (stack limit register)",
    24: "UNALIGNED: unaligned access",
    25: "DIVBYZERO: divide by zero",
}
_HFSR_BITS = {
    1: "VECTTBL: bus fault on vector table read",
    30: "FORCED: escalated from a configurable fault",
    31: "DEBUGEVT: debug event",
}
_MMARVALID = 1 << 7
_BFARVALID = 1 << 15


def decode_fault(cfsr: int, hfsr: int, mmfar: int, bfar: int) -> str:
    """A one-line reading of the fault status registers."""
    parts = [text for bit, text in _HFSR_BITS.items() if hfsr >> bit & 1]
    parts += [text for bit, text in _CFSR_BITS.items() if cfsr >> bit & 1]
    if cfsr & _MMARVALID:
        parts.append(f"MMFAR {mmfar:#010x}")
    if cfsr & _BFARVALID:
        parts.append(f"BFAR {bfar:#010x}")
    described = "; ".join(parts) or "no fault status bit set"
    return f"HardFault (CFSR {cfsr:#010x}, HFSR {hfsr:#010x}): {described}"


def _baseline(target: Target) -> bool:
    """ARMv6-M: no DWT cycle counter, no fault status registers, no FPU."""
    return target.arch == "armv6-m"


class MProfileDebug(DebugSupport):
    """An M-profile core halted behind a GDB server."""

    registers: ClassVar[Mapping[str, int]] = {"sp": 13, "lr": 14, "pc": 15, "xpsr": 25}
    register_aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {"xpsr": ("cpsr",)}
    counter = "DWT"

    def __init__(self, target: Target) -> None:
        self.baseline = _baseline(target)

    def in_exception(self, port: DebugPort) -> bool:
        return bool(port.read_register("xpsr") & IPSR_MASK)

    def prepare(self, port: DebugPort, target: Target, symbols: Mapping[str, int]) -> None:
        if VECTORS_SYMBOL in symbols:  # every vector points at autotune_fault
            port.write_u32(VTOR, symbols[VECTORS_SYMBOL])
        if not self.baseline:  # CP10/CP11 full access: the FPU, where there is one
            port.write_u32(CPACR, port.read_u32(CPACR) | (0xF << 20))

    def start(self, port: DebugPort, entry: int, stop: int, stack_top: int) -> None:
        port.write_register("sp", stack_top)
        port.write_register("lr", stop | 1)
        port.write_register("pc", entry & ~1)
        port.write_register("xpsr", XPSR_T)

    def start_cycle_counter(self, port: DebugPort, target: Target) -> str | None:
        if self.baseline:
            return "ARMv6-M has no DWT cycle counter"
        port.write_u32(DEMCR, port.read_u32(DEMCR) | TRCENA)
        ctrl = port.read_u32(DWT_CTRL)
        if ctrl & NOCYCCNT:
            return "this core's DWT has no cycle counter (DWT_CTRL.NOCYCCNT)"
        port.write_u32(DWT_CYCCNT, 0)
        port.write_u32(DWT_CTRL, ctrl | CYCCNTENA)
        return None

    def read_cycle_counter(self, port: DebugPort) -> int:
        return port.read_u32(DWT_CYCCNT)

    def fault(self, port: DebugPort, target: Target) -> DebugFault:
        try:  # the faulting instruction is the return address in the exception frame
            sp = port.read_register("sp")
            stacked_pc = int.from_bytes(port.read_memory(sp + STACKED_PC, 4), "little")
        except AutotuneError:  # an unreadable frame: the handler's own pc still says "fault"
            stacked_pc = port.read_register("pc")
        if self.baseline:
            return DebugFault(stacked_pc, "HardFault (ARMv6-M has no fault status registers)")
        cfsr, hfsr = port.read_u32(CFSR), port.read_u32(HFSR)
        reason = decode_fault(cfsr, hfsr, port.read_u32(MMFAR), port.read_u32(BFAR))
        return DebugFault(stacked_pc, reason, {"cfsr": cfsr, "hfsr": hfsr})
