"""The ``gdb`` runner: execute an ELF on a Cortex-M core behind any GDB server.

A board through pyOCD or OpenOCD (ST-Link, CMSIS-DAP, J-Link), or QEMU's gdbstub
(``qemu-system-arm -M mps2-an386 -S -gdb tcp::PORT``). One run:

1. connect, negotiate, halt; reset first if the core is still in an exception
   handler (a previous run faulted);
2. load every PT_LOAD segment (flash through the server's ``vFlash`` packets, skipped
   where the flash already holds those bytes; RAM with ``X``/``M``, including the
   zero-filled tail), point VTOR at the harness's vector table, enable the FPU;
3. write the inputs; SP = ``__stack_top``, PC = ``autotune_main``, LR =
   ``autotune_stop``, xPSR = Thumb;
4. enable the DWT cycle counter where the core has one (DEMCR.TRCENA,
   DWT_CTRL.CYCCNTENA, CYCCNT = 0), set breakpoints on ``autotune_stop`` and on
   ``autotune_fault`` (every exception vector of the harness points there) and continue;
5. at ``autotune_stop`` read the outputs and CYCCNT; at ``autotune_fault`` read and
   decode CFSR/HFSR (:class:`BoardFault`); past the time limit interrupt and raise
   :class:`BoardTimeout`.

Cycles are ``cycles (board, DWT)``: the core's own counter, halted while the core is in
debug state. Where it does not count (QEMU implements no DWT; ARMv6-M has none) the
result has no cycles and says why in ``extra["cycles_note"]``: never a number that was
not measured. Nothing here counts instructions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from autotune.platform import harness
from autotune.platform.emulator import (
    BufferMismatchError,
    ElfImage,
    ElfLoadError,
    EmulatorFault,
    EmulatorTimeout,
    RunnerUnavailableError,
    RunResult,
    load_elf,
)
from autotune.platform.gdbremote import FlashRegion, GdbRemote, GdbRemoteError, GdbStopTimeout
from autotune.platform.runner import Runner, RunnerCapabilities
from autotune.platform.target import Target

RUNNER_NAME = "gdb"
BOARD_LABEL = "cycles (board, DWT)"
REMOTE_ENV = "AUTOTUNE_REMOTE"
TIMEOUT_ENV = "AUTOTUNE_GDB_TIMEOUT"
INIT_ENV = "AUTOTUNE_GDB_INIT"
FAULT_SYMBOL = "autotune_fault"
VECTORS_SYMBOL = "__autotune_vectors"

# System control space (Armv7-M ARM, B3.2; Armv8-M ARM, D1.2).
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


class BoardFault(EmulatorFault):
    """The program took a fault on the core; the reason decodes CFSR and HFSR."""

    def __init__(self, pc: int, reason: str, cfsr: int | None, hfsr: int | None) -> None:
        self.cfsr = cfsr
        self.hfsr = hfsr
        super().__init__(pc, reason)


class BoardTimeout(EmulatorTimeout):
    """The program did not reach ``autotune_stop`` in time; it was interrupted."""

    def __init__(self, seconds: float, pc: int) -> None:
        self.seconds = seconds
        super().__init__(0, 0, pc, why="time limit")
        self.args = (f"timeout: did not finish within {seconds:.1f} s (interrupted at pc {pc:#x})",)

    def __str__(self) -> str:
        return str(self.args[0])


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


def parse_remote(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT`` / ``PORT`` for localhost)."""
    host, _, port = text.strip().rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 < number < 65536:
        raise RunnerUnavailableError(f"GDB server address {text!r} is not HOST:PORT")
    return host or "127.0.0.1", number


def init_writes(text: str | None = None) -> list[tuple[int, int]]:
    """``ADDR=VALUE,...`` (32-bit register writes made before every run), from
    ``AUTOTUNE_GDB_INIT`` by default: e.g. the flash wait states and caches of the
    clock the figures are meant for (docs/boards.md)."""
    raw = os.environ.get(INIT_ENV, "") if text is None else text
    out = []
    for item in raw.replace(";", ",").split(","):
        if not item.strip():
            continue
        address, _, value = item.partition("=")
        try:
            out.append((int(address, 0), int(value, 0)))
        except ValueError:
            raise RunnerUnavailableError(
                f"{INIT_ENV}: {item.strip()!r} is not ADDRESS=VALUE (e.g. 0x40022000=0x705)"
            ) from None
    return out


def time_limit(budget: int) -> float:
    """Seconds allowed for a run of at most ``budget`` instructions.

    Assumes at least 20 M instructions/s (a 48 MHz core at 2.4 CPI; QEMU is faster);
    ``AUTOTUNE_GDB_TIMEOUT`` overrides it.
    """
    fixed = os.environ.get(TIMEOUT_ENV)
    if fixed:
        return float(fixed)
    return 2.0 + budget / 20e6


class GdbRunner(Runner):
    """Run on a Cortex-M core behind a GDB server; cycles from the core's DWT counter."""

    name = RUNNER_NAME
    description = (
        "a Cortex-M core behind a GDB server (pyOCD, OpenOCD, QEMU gdbstub): "
        "cycles from the DWT counter"
    )
    # The core's own counter: reports label it as measured; one board: variants are
    # measured one at a time.
    capabilities = RunnerCapabilities(executes=True, counts_cycles=True, exclusive=True)

    def metric_label(self, target: Target) -> str:
        return BOARD_LABEL

    def __init__(self, remote: str | None = None) -> None:
        self.remote = remote

    def address(self) -> str | None:
        return self.remote or os.environ.get(REMOTE_ENV) or None

    def available(self) -> str | None:
        if not self.address():
            return f"no GDB server address: pass --remote HOST:PORT or set {REMOTE_ENV}"
        return None

    def supports(self, target: Target) -> str | None:
        if target.isa != "thumb-m":
            return (
                f"the gdb runner drives Cortex-M cores (DWT, fault status registers), "
                f"not {target.name}"
            )
        return None

    def run(
        self,
        elf_path: Path | str,
        target: Target,
        inputs: Mapping[str, bytes] | None = None,
        outputs: Mapping[str, int] | None = None,
        budget: int = 50_000_000,
        profile: bool = False,
    ) -> RunResult:
        reason = self.available() or self.supports(target)
        if reason:
            raise RunnerUnavailableError(f"runner {self.name} unavailable: {reason}")
        started = time.perf_counter()
        image = load_elf(elf_path)
        if image.machine != "EM_ARM":
            raise ElfLoadError(f"{image.path.name} is {image.machine}, not Arm code")
        host, port = parse_remote(self.address() or "")
        try:
            with GdbRemote(host, port) as gdb:
                return self._run(gdb, image, target, inputs or {}, outputs or {}, budget, started)
        except GdbRemoteError as exc:
            raise RunnerUnavailableError(f"runner {self.name}: {exc}") from exc

    # -- one run ---------------------------------------------------------------------------

    def _run(
        self,
        gdb: GdbRemote,
        image: ElfImage,
        target: Target,
        inputs: Mapping[str, bytes],
        outputs: Mapping[str, int],
        budget: int,
        started: float,
    ) -> RunResult:
        stop = gdb.handshake()
        if not stop.running:
            raise GdbRemoteError(f"the target has exited ({stop.kind}{stop.signal:02x})")
        regs = _Registers(gdb)
        if regs.read("xpsr") & 0x1FF:  # still in a handler: start from a clean core
            _reset(gdb, regs)
        for address, value in init_writes():  # after any reset, before every run
            gdb.write_u32(address, value)
        entry = image.symbol(harness.ENTRY_SYMBOL).value
        stop_at = image.symbol(harness.STOP_SYMBOL).value & ~1
        fault_at = image.symbols.get(FAULT_SYMBOL)
        _load(gdb, image, target)
        v7 = target.arch != "armv6-m"
        vectors = image.symbols.get(VECTORS_SYMBOL)
        if vectors is not None:
            gdb.write_u32(VTOR, vectors.value)
        if v7:
            gdb.write_u32(CPACR, gdb.read_u32(CPACR) | (0xF << 20))
        for name, data in inputs.items():
            sym = _buffer(image, name)
            blob = bytes(data) if not hasattr(data, "tobytes") else data.tobytes()
            if len(blob) > sym.size:
                raise BufferMismatchError(
                    f"input {name!r} has {len(blob)} bytes but the buffer holds {sym.size}"
                )
            gdb.write_memory(sym.value, blob)
        regs.write("sp", image.symbol(harness.STACK_TOP_SYMBOL).value)
        regs.write("lr", stop_at | 1)
        regs.write("pc", entry & ~1)
        regs.write("xpsr", XPSR_T)
        counter = _enable_cyccnt(gdb) if v7 else "ARMv6-M has no DWT cycle counter"

        points: list[tuple[int, str]] = []
        limit = time_limit(budget)
        try:
            # Breakpoints never outlive the run: a stale one would stop the next program.
            for address in (stop_at, *([fault_at.value & ~1] if fault_at is not None else [])):
                points.append((address, gdb.set_breakpoint(address)))
            gdb.resume()
            try:
                reply = gdb.wait_stop(limit)
            except GdbStopTimeout:
                gdb.interrupt()
                raise BoardTimeout(limit, regs.read("pc")) from None
        finally:
            for address, z in points:
                gdb.clear_breakpoint(address, z)
        if not reply.running:
            raise GdbRemoteError(
                f"the target exited during the run ({reply.kind}{reply.signal:02x})"
            )
        pc = regs.read("pc")
        if fault_at is not None and pc == fault_at.value & ~1:
            raise _fault(gdb, regs, v7)
        if pc != stop_at:
            raise EmulatorFault(
                pc, f"stopped at pc {pc:#x} (signal {reply.signal}), not at the end"
            )
        cycles = gdb.read_u32(DWT_CYCCNT) if counter is None else None
        if cycles == 0:
            counter = "the DWT cycle counter did not count (QEMU implements none)"
            cycles = None
        got = {}
        for name, nbytes in outputs.items():
            sym = _buffer(image, name)
            if nbytes < 0 or nbytes > sym.size:
                raise BufferMismatchError(
                    f"output {name!r}: asked for {nbytes} bytes but the buffer holds {sym.size}"
                )
            got[name] = gdb.read_memory(sym.value, nbytes)
        extra: dict[str, object] = {"remote": gdb.address, "counts_instructions": False}
        if counter is not None:
            extra["cycles_note"] = counter
        return RunResult(
            instructions=None,
            cycles=cycles,
            cycle_model="",
            outputs=got,
            runner=RUNNER_NAME,
            wall_time_s=time.perf_counter() - started,
            extra=extra,
            label=BOARD_LABEL if cycles is not None else "",
        )


class _Registers:
    """Core registers by name, numbered from the server's target description."""

    _CLASSIC: ClassVar[dict[str, int]] = {
        "sp": 13,
        "lr": 14,
        "pc": 15,
        "xpsr": 25,
    }  # GDB's arm-m-profile numbering

    def __init__(self, gdb: GdbRemote) -> None:
        self.gdb = gdb
        found = gdb.register_map()
        self.numbers = {name: found.get(name, (num, 32))[0] for name, num in self._CLASSIC.items()}
        if "xpsr" not in found and "cpsr" in found:
            self.numbers["xpsr"] = found["cpsr"][0]

    def read(self, name: str) -> int:
        return self.gdb.read_register(self.numbers[name])

    def write(self, name: str, value: int) -> None:
        self.gdb.write_register(self.numbers[name], value)


def _reset(gdb: GdbRemote, regs: _Registers) -> None:
    """Reset and halt through the server's monitor: OpenOCD/pyOCD, then QEMU's HMP."""
    for command in ("reset halt", "system_reset"):
        try:
            gdb.monitor(command, timeout_s=30)
        except GdbRemoteError:
            continue
        gdb.request("?")
        if not regs.read("xpsr") & 0x1FF:
            return
    raise GdbRemoteError(
        "the core is inside an exception handler and the server did not reset it "
        "(tried monitor 'reset halt' and 'system_reset'); reset the board"
    )


def _load(gdb: GdbRemote, image: ElfImage, target: Target) -> None:
    flash = gdb.flash_regions()
    spans = [(r.origin, r.origin + r.length) for r in target.memory]
    for vaddr, blob, memsz in image.segments:
        if not any(lo <= vaddr and vaddr + memsz <= hi for lo, hi in spans):
            raise ElfLoadError(
                f"{image.path.name}: segment {vaddr:#x}+{memsz:#x} lies outside the memory map "
                f"of {target.name}"
            )
        region, at = _flash_region(flash, vaddr, len(blob))
        if region is not None:
            if blob and gdb.read_memory(vaddr, len(blob)) != blob:
                gdb.write_flash(region, at, blob)
            continue
        gdb.write_memory(vaddr, blob + bytes(memsz - len(blob)))


def _flash_region(
    regions: list[FlashRegion], address: int, length: int
) -> tuple[FlashRegion | None, int]:
    """The flash region holding ``address`` and the address to program it at.

    Code linked at 0x0 on a part whose server lists one flash region elsewhere is
    programmed there: STM32 parts alias main flash at 0x0 when they boot from it
    (e.g. RM0432 2.6), and execute it from the alias through the same flash interface.
    """
    for r in regions:
        if r.start <= address < r.start + r.length:
            if address + length > r.start + r.length:
                raise ElfLoadError(f"segment at {address:#x} runs past the end of flash")
            return r, address
    only = regions[0] if len(regions) == 1 else None
    if only is not None and address < only.start and address + length <= only.length:
        return only, only.start + address
    return None, address


def _enable_cyccnt(gdb: GdbRemote) -> str | None:
    """Start CYCCNT from zero; None when it is running, otherwise why not."""
    gdb.write_u32(DEMCR, gdb.read_u32(DEMCR) | TRCENA)
    ctrl = gdb.read_u32(DWT_CTRL)
    if ctrl & NOCYCCNT:
        return "this core's DWT has no cycle counter (DWT_CTRL.NOCYCCNT)"
    gdb.write_u32(DWT_CYCCNT, 0)
    gdb.write_u32(DWT_CTRL, ctrl | CYCCNTENA)
    return None


def _fault(gdb: GdbRemote, regs: _Registers, v7: bool) -> BoardFault:
    sp = regs.read("sp")
    try:
        stacked_pc = int.from_bytes(gdb.read_memory(sp + 24, 4), "little")
    except GdbRemoteError:
        stacked_pc = regs.read("pc")
    if not v7:
        return BoardFault(
            stacked_pc, "HardFault (ARMv6-M has no fault status registers)", None, None
        )
    cfsr, hfsr = gdb.read_u32(CFSR), gdb.read_u32(HFSR)
    reason = decode_fault(cfsr, hfsr, gdb.read_u32(MMFAR), gdb.read_u32(BFAR))
    return BoardFault(stacked_pc, reason, cfsr, hfsr)


def _buffer(image: ElfImage, name: str):
    sym = image.symbols.get(name)
    if sym is None or sym.is_func:
        known = ", ".join(image.buffer_names()) or "none"
        raise BufferMismatchError(
            f"no buffer named {name!r} in {image.path.name} (buffers: {known})"
        )
    return sym
