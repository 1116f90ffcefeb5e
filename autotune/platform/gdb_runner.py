"""The ``gdb`` runner: execute an ELF on a core behind any GDB server.

A board through pyOCD or OpenOCD (ST-Link, CMSIS-DAP, J-Link), or QEMU's gdbstub
(``qemu-system-arm -M mps2-an386 -S -gdb tcp::PORT``). One run:

1. connect, negotiate, halt; reset first if the core is still in an exception
   handler (a previous run faulted);
2. load every PT_LOAD segment (flash through the server's ``vFlash`` packets, skipped
   where the flash already holds those bytes; RAM with ``X``/``M``, including the
   zero-filled tail), let the ISA prepare the core (Cortex-M: VTOR at the harness's
   vector table, the FPU enabled);
3. write the inputs; stack pointer = ``__stack_top``, PC = ``autotune_main``, return
   address = ``autotune_stop``;
4. start the core's cycle counter where it has one (Cortex-M: DWT CYCCNT), set
   breakpoints on ``autotune_stop`` and on ``autotune_fault`` (every exception vector
   of the harness points there) and continue;
5. at ``autotune_stop`` read the outputs and the counter; at ``autotune_fault`` let the
   ISA decode the fault (:class:`BoardFault`; Cortex-M: CFSR/HFSR); past the time
   limit interrupt and raise :class:`BoardTimeout`.

Everything architectural (register names, the counter, fault registers) is the target
ISA's :class:`~autotune.platform.isa.DebugSupport` (``IsaSupport.debug``); a target
whose ISA has none is declined with that reason.

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

from autotune.errors import AutotuneError
from autotune.platform import harness, plugins
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
from autotune.platform.isa import DebugSupport, IsaSupport
from autotune.platform.runner import Runner, RunnerCapabilities
from autotune.platform.target import Target

RUNNER_NAME = "gdb"
REMOTE_ENV = "AUTOTUNE_REMOTE"
TIMEOUT_ENV = "AUTOTUNE_GDB_TIMEOUT"
INIT_ENV = "AUTOTUNE_GDB_INIT"
FAULT_SYMBOL = "autotune_fault"


class BoardFault(EmulatorFault):
    """The program took a fault on the core; the ISA's debug support decoded the reason
    from the fault ``status`` registers it read (Cortex-M: ``cfsr``, ``hfsr``)."""

    def __init__(self, pc: int, reason: str, status: Mapping[str, int] | None = None) -> None:
        self.status = dict(status or {})
        super().__init__(pc, reason)


class BoardTimeout(EmulatorTimeout):
    """The program did not reach ``autotune_stop`` in time; it was interrupted."""

    def __init__(self, seconds: float, pc: int) -> None:
        self.seconds = seconds
        super().__init__(0, 0, pc, why="time limit")
        self.args = (f"timeout: did not finish within {seconds:.1f} s (interrupted at pc {pc:#x})",)

    def __str__(self) -> str:
        return str(self.args[0])


def board_label(counter: str) -> str:
    """The label of cycles read from a core's own counter, named by its ISA's debug
    support (Cortex-M: ``cycles (board, DWT)``)."""
    return f"cycles (board, {counter})" if counter else "cycles (board)"


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
    """Run on a core behind a GDB server; cycles from the core's own counter."""

    name = RUNNER_NAME
    description = (
        "a core behind a GDB server (pyOCD, OpenOCD, QEMU gdbstub): "
        "cycles from its own counter (DWT on Cortex-M)"
    )
    # The core's own counter: reports label it as measured; one board: variants are
    # measured one at a time.
    capabilities = RunnerCapabilities(executes=True, counts_cycles=True, exclusive=True)

    def metric_label(self, target: Target) -> str:
        try:
            return board_label(self._debug(target)[1].counter)
        except RunnerUnavailableError:
            return board_label("")

    def __init__(self, remote: str | None = None) -> None:
        self.remote = remote

    def address(self) -> str | None:
        return self.remote or os.environ.get(REMOTE_ENV) or None

    def available(self) -> str | None:
        if not self.address():
            return f"no GDB server address: pass --remote HOST:PORT or set {REMOTE_ENV}"
        return None

    def supports(self, target: Target) -> str | None:
        try:
            self._debug(target)
        except RunnerUnavailableError as exc:
            return str(exc)
        return None

    @staticmethod
    def _debug(target: Target) -> tuple[IsaSupport, DebugSupport]:
        """The target's ISA and its debug support; RunnerUnavailableError says why not."""
        try:
            isa = plugins.isa_of(target)
        except AutotuneError as exc:
            raise RunnerUnavailableError(
                f"the gdb runner cannot drive {target.name}: {exc}"
            ) from None
        debug = isa.debug(target)
        if debug is None:
            raise RunnerUnavailableError(
                f"the gdb runner cannot drive {target.name}: its ISA support {isa.name!r} "
                f"has no debug support (IsaSupport.debug)"
            )
        return isa, debug

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
        isa, debug = self._debug(target)
        image = load_elf(elf_path)
        if image.machine != isa.elf_machine:
            raise ElfLoadError(
                f"{image.path.name} is {image.machine}, not {isa.elf_machine} code "
                f"for {target.name}"
            )
        host, port = parse_remote(self.address() or "")
        try:
            with GdbRemote(host, port) as gdb:
                return self._run(
                    gdb, image, target, isa, debug, inputs or {}, outputs or {}, budget, started
                )
        except GdbRemoteError as exc:
            raise RunnerUnavailableError(f"runner {self.name}: {exc}") from exc

    # -- one run ---------------------------------------------------------------------------

    def _run(
        self,
        gdb: GdbRemote,
        image: ElfImage,
        target: Target,
        isa: IsaSupport,
        debug: DebugSupport,
        inputs: Mapping[str, bytes],
        outputs: Mapping[str, int],
        budget: int,
        started: float,
    ) -> RunResult:
        stop = gdb.handshake()
        if not stop.running:
            raise GdbRemoteError(f"the target has exited ({stop.kind}{stop.signal:02x})")
        regs = _Port(gdb, debug)
        if debug.in_exception(regs):  # still in a handler: start from a clean core
            _reset(gdb, regs, debug)
        for address, value in init_writes():  # after any reset, before every run
            gdb.write_u32(address, value)
        code = isa.function_address_mask
        entry = image.symbol(harness.ENTRY_SYMBOL).value
        stop_symbol = image.symbol(harness.STOP_SYMBOL).value
        stop_at = stop_symbol & code
        fault_at = image.symbols.get(FAULT_SYMBOL)
        _load(gdb, image, target)
        debug.prepare(regs, target, {name: sym.value for name, sym in image.symbols.items()})
        for name, data in inputs.items():
            sym = _buffer(image, name)
            blob = bytes(data) if not hasattr(data, "tobytes") else data.tobytes()
            if len(blob) > sym.size:
                raise BufferMismatchError(
                    f"input {name!r} has {len(blob)} bytes but the buffer holds {sym.size}"
                )
            gdb.write_memory(sym.value, blob)
        debug.start(regs, entry, stop_symbol, image.symbol(harness.STACK_TOP_SYMBOL).value)
        counter = debug.start_cycle_counter(regs, target)

        points: list[tuple[int, str]] = []
        limit = time_limit(budget)
        try:
            # Breakpoints never outlive the run: a stale one would stop the next program.
            for address in (stop_at, *([fault_at.value & code] if fault_at is not None else [])):
                points.append((address, gdb.set_breakpoint(address)))
            gdb.resume()
            try:
                reply = gdb.wait_stop(limit)
            except GdbStopTimeout:
                gdb.interrupt()
                raise BoardTimeout(limit, regs.read_register("pc")) from None
        finally:
            for address, z in points:
                gdb.clear_breakpoint(address, z)
        if not reply.running:
            raise GdbRemoteError(
                f"the target exited during the run ({reply.kind}{reply.signal:02x})"
            )
        pc = regs.read_register("pc")
        if fault_at is not None and pc == fault_at.value & code:
            fault = debug.fault(regs, target)
            raise BoardFault(fault.pc, fault.reason, fault.status)
        if pc != stop_at:
            raise EmulatorFault(
                pc, f"stopped at pc {pc:#x} (signal {reply.signal}), not at the end"
            )
        cycles = debug.read_cycle_counter(regs) if counter is None else None
        if cycles == 0:
            counter = "the core's cycle counter did not count (QEMU implements none)"
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
            label=board_label(debug.counter) if cycles is not None else "",
        )


class _Port:
    """The halted core as the ISA's debug support sees it: memory, and registers by
    name, numbered from the server's target description (the ISA's numbers otherwise)."""

    def __init__(self, gdb: GdbRemote, debug: DebugSupport) -> None:
        self.gdb = gdb
        found = gdb.register_map()
        self.numbers = {}
        for name, number in debug.registers.items():
            listed = [
                alias for alias in (name, *debug.register_aliases.get(name, ())) if alias in found
            ]
            self.numbers[name] = found[listed[0]][0] if listed else number

    def read_register(self, name: str) -> int:
        return self.gdb.read_register(self.numbers[name])

    def write_register(self, name: str, value: int) -> None:
        self.gdb.write_register(self.numbers[name], value)

    def read_u32(self, address: int) -> int:
        return self.gdb.read_u32(address)

    def write_u32(self, address: int, value: int) -> None:
        self.gdb.write_u32(address, value)

    def read_memory(self, address: int, length: int) -> bytes:
        return self.gdb.read_memory(address, length)


def _reset(gdb: GdbRemote, port: _Port, debug: DebugSupport) -> None:
    """Reset and halt through the server's monitor: OpenOCD/pyOCD, then QEMU's HMP."""
    for command in ("reset halt", "system_reset"):
        try:
            gdb.monitor(command, timeout_s=30)
        except GdbRemoteError:
            continue
        gdb.request("?")
        if not debug.in_exception(port):
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


def _buffer(image: ElfImage, name: str):
    sym = image.symbols.get(name)
    if sym is None or sym.is_func:
        known = ", ".join(image.buffer_names()) or "none"
        raise BufferMismatchError(
            f"no buffer named {name!r} in {image.path.name} (buffers: {known})"
        )
    return sym
