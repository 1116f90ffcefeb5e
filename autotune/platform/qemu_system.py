"""QEMU system mode as a runner: a whole board (e.g. Arm's MPS3 AN547 with a Cortex-M55),
driven through QEMU's GDB server.

Where the embedded emulator has no CPU model for a core (Unicorn stops at Armv8-M
Mainline, so Armv8.1-M code such as Cortex-M55 low-overhead loops faults there), QEMU
emulates a real board with that core. One run:

1. ``qemu-system-* -M MACHINE -cpu CPU -kernel ELF -S`` loads the ELF and holds the
   CPU at reset, with its GDB server on a Unix socket (no TCP port) and an exec log of
   one instruction per translation block (``-singlestep``, ``-d exec,nochain``);
2. inputs are written into the buffers with GDB ``M`` packets, breakpoints are set on
   ``autotune_stop`` and the harness's fault handler, and the CPU runs from reset
   through the startup code's vector table;
3. at the breakpoint the outputs are read with ``m`` packets and QEMU is killed.

The instruction count is exact: one log line is one executed instruction, counted from
the first instruction of ``autotune_main`` up to the arrival at ``autotune_stop``, the
same region the embedded emulator counts. QEMU models no timing, so this runner counts
no cycles: its figures are ``instructions (exact)``.

A runner instance is one board: plugins register one per machine and CPU they need
(``QemuSystemRunner("qemu-mps3-an547", machine="mps3-an547", cpu="cortex-m55")``).
"""

from __future__ import annotations

import contextlib
import functools
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from autotune.platform import harness
from autotune.platform.emulator import (
    BufferMismatchError,
    EmulatorFault,
    EmulatorTimeout,
    RunError,
    RunnerUnavailableError,
    RunResult,
    Symbol,
    load_elf,
)
from autotune.platform.runner import DEFAULT_BUDGET, Runner, RunnerCapabilities
from autotune.platform.target import Target

FAULT_SYMBOL = "autotune_fault"  # the harness startup's catch-all exception handler
_TRACE = re.compile(rb"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/")
_CHUNK = 1024  # bytes per GDB memory packet (QEMU accepts 4096 hex digits)
_LINE_BYTES = 64  # about one exec-log line, to turn the budget into a log size
MAX_LOG_BYTES = 2 << 30  # a runaway kernel stops here, whatever its budget


class GdbRemote:
    """The few GDB remote-protocol packets a run needs, over a Unix socket."""

    def __init__(self, path: Path, timeout_s: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.sock.settimeout(timeout_s)
        self.buf = b""

    def send(self, payload: str) -> None:
        data = payload.encode()
        self.sock.sendall(b"$" + data + b"#" + f"{sum(data) & 0xFF:02x}".encode())

    def reply(self) -> str:
        """The next packet from the server (acknowledged); raises socket.timeout when none."""
        while True:
            start = self.buf.find(b"$")
            end = self.buf.find(b"#", start + 1) if start >= 0 else -1
            if start >= 0 and end >= 0 and len(self.buf) >= end + 3:
                payload = self.buf[start + 1 : end]
                self.buf = self.buf[end + 3 :]
                self.sock.sendall(b"+")
                return payload.decode()
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QEMU closed its GDB connection")
            self.buf += chunk

    def command(self, payload: str) -> str:
        self.send(payload)
        while True:
            answer = self.reply()
            if not (answer.startswith("O") and answer != "OK"):  # skip console output
                return answer

    def expect_ok(self, payload: str, what: str) -> None:
        answer = self.command(payload)
        if answer != "OK":
            raise RunError(f"QEMU's GDB server refused {what}: {answer or 'empty reply'}")

    def write(self, address: int, data: bytes) -> None:
        for off in range(0, len(data), _CHUNK):
            part = data[off : off + _CHUNK]
            self.expect_ok(f"M{address + off:x},{len(part):x}:{part.hex()}", "a memory write")

    def read(self, address: int, size: int) -> bytes:
        out = bytearray()
        for off in range(0, size, _CHUNK):
            n = min(_CHUNK, size - off)
            answer = self.command(f"m{address + off:x},{n:x}")
            if answer.startswith("E") or len(answer) != 2 * n:
                raise RunError(f"QEMU could not read {n} bytes at {address + off:#x}: {answer}")
            out += bytes.fromhex(answer)
        return bytes(out)

    def close(self) -> None:
        self.sock.close()


def code_address(sym: Symbol) -> int:
    """Where a function's first instruction is (bit 0 of an Arm symbol marks Thumb)."""
    return sym.value & ~1


def count_instructions(log: Path, start: int, stop: int) -> int:
    """Executed instructions from the first ``start`` up to ``stop`` (or the log's end,
    where the breakpoint at ``stop`` kept it from executing); -1 if ``start`` never ran."""
    count = -1
    with open(log, "rb") as f:
        for line in f:
            m = _TRACE.match(line)
            if m is None:
                continue
            pc = int(m.group(1), 16)
            if count < 0:
                if pc != start:
                    continue
                count = 0
            if pc == stop:
                break
            count += 1
    return count


@functools.lru_cache(maxsize=8)
def _single_insn_args(binary: str) -> tuple[str, ...]:
    """One instruction per translation block: ``-singlestep`` until QEMU 8.1 renamed it."""
    try:
        text = subprocess.run(
            [binary, "-h"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ("-singlestep",)
    if "-singlestep" in text:
        return ("-singlestep",)
    return ("-accel", "tcg,one-insn-per-tb=on")


class QemuSystemRunner(Runner):
    """One QEMU system-mode board: executes and counts instructions exactly, no cycles."""

    capabilities = RunnerCapabilities(executes=True, counts_instructions=True)

    def __init__(
        self,
        name: str,
        machine: str,
        cpu: str,
        binary: str = "qemu-system-arm",
        debian_package: str = "qemu-system-arm",
        description: str = "",
        pc_index: int = 15,
        word_bytes: int = 4,
    ) -> None:
        """``pc_index``/``word_bytes``: where the program counter is in GDB's register
        packet (15 and 4 on 32-bit Arm, whose ``g`` packet starts with r0-r15)."""
        self.name = name  # type: ignore[misc]
        self.pc_index = pc_index
        self.word_bytes = word_bytes
        self.machine = machine
        self.cpu = cpu
        self.binary = binary
        self.debian_package = debian_package
        self.description = description or (  # type: ignore[misc]
            f"QEMU system mode, board {machine} with a {cpu}, through its GDB server: "
            "exact instruction counts, no cycle model"
        )

    def available(self) -> str | None:
        if shutil.which(self.binary) is None:
            return f"{self.binary} not found (apt-get install {self.debian_package})"
        return None

    def supports(self, target: Target) -> str | None:
        return self.available()

    def run(
        self,
        elf_path: Path | str,
        target: Target,
        inputs: Mapping[str, bytes] | None = None,
        outputs: Mapping[str, int] | None = None,
        budget: int = DEFAULT_BUDGET,
        profile: bool = False,
    ) -> RunResult:
        reason = self.available()
        if reason:
            raise RunnerUnavailableError(f"runner {self.name} cannot run {target.name}: {reason}")
        started = time.perf_counter()
        elf_path = Path(elf_path)
        image = load_elf(elf_path)
        entry = code_address(image.symbol(harness.ENTRY_SYMBOL))
        stop = code_address(image.symbol(harness.STOP_SYMBOL))
        fault = image.symbols.get(FAULT_SYMBOL)
        writes = [(self._buffer(image, n).value, _bytes(d), n) for n, d in (inputs or {}).items()]
        reads = [(n, self._buffer(image, n), size) for n, size in (outputs or {}).items()]
        for name, sym, size in reads:
            if size < 0 or size > sym.size:
                raise BufferMismatchError(
                    f"output {name!r}: asked for {size} bytes but the buffer holds {sym.size}"
                )
        for _, blob, name in writes:
            if len(blob) > image.symbols[name].size:
                raise BufferMismatchError(
                    f"input {name!r} has {len(blob)} bytes but the buffer holds "
                    f"{image.symbols[name].size}"
                )
        limit_s = 30.0 + budget * 20e-6
        with tempfile.TemporaryDirectory(prefix="autotune-qemu-system-") as tmp:
            work = Path(tmp)
            sock, log = work / "gdb.sock", work / "exec.log"
            argv = [
                self.binary,
                "-M",
                self.machine,
                "-cpu",
                self.cpu,
                "-nographic",
                "-monitor",
                "none",
                "-serial",
                "none",
                "-kernel",
                str(elf_path),
                "-S",
                "-gdb",
                f"unix:{sock},server=on,wait=off",
                *_single_insn_args(self.binary),
                "-d",
                "exec,nochain",
                "-D",
                str(log),
            ]
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            try:
                result = self._drive(
                    proc, sock, log, writes, reads, stop, fault, budget, limit_s, target
                )
            finally:
                if proc.poll() is None:
                    proc.kill()
                _, stderr = proc.communicate(timeout=10)
            count = count_instructions(log, entry, stop)
        if count < 0:
            raise EmulatorFault(entry, f"QEMU never reached autotune_main ({_tail(stderr)})")
        if count > budget:
            raise EmulatorTimeout(budget, count, stop)
        return RunResult(
            instructions=count,
            cycles=None,
            cycle_model="",
            outputs=result,
            runner=self.name,
            wall_time_s=time.perf_counter() - started,
            extra={"qemu": " ".join(argv[:6])},
        )

    def _drive(
        self,
        proc: subprocess.Popen,
        sock: Path,
        log: Path,
        writes: list[tuple[int, bytes, str]],
        reads: list[tuple[str, Symbol, int]],
        stop: int,
        fault: Symbol | None,
        budget: int,
        limit_s: float,
        target: Target,
    ) -> dict[str, bytes]:
        try:
            gdb = GdbRemote(sock, timeout_s=20.0)
        except OSError as exc:
            raise RunError(
                f"QEMU ({self.machine}, {self.cpu}) did not start its GDB server: {exc}"
            ) from exc
        try:
            for address, blob, _ in writes:
                gdb.write(address, blob)
            gdb.expect_ok(f"Z0,{stop:x},2", "a breakpoint at autotune_stop")
            if fault is not None:
                gdb.expect_ok(f"Z0,{code_address(fault):x},2", "a breakpoint at autotune_fault")
            gdb.send("c")
            gdb.sock.settimeout(0.2)
            deadline = time.monotonic() + limit_s
            max_log = min((budget + 10_000) * _LINE_BYTES * 2, MAX_LOG_BYTES)
            while True:
                try:
                    answer = gdb.reply()
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise EmulatorTimeout(
                            budget, -1, 0, why=f"QEMU wall-clock limit ({limit_s:.0f} s)"
                        ) from None
                    if log.exists() and log.stat().st_size > max_log:
                        raise EmulatorTimeout(budget, -1, 0) from None
                    if proc.poll() is not None:
                        raise EmulatorFault(0, f"QEMU exited with {proc.returncode}") from None
                    continue
                if answer.startswith("O") and answer != "OK":
                    continue
                break
            if not answer.startswith(("T", "S")):
                raise EmulatorFault(0, f"QEMU stopped unexpectedly: {answer}")
            gdb.sock.settimeout(20.0)
            pc = self._pc(gdb)
            if fault is not None and pc == code_address(fault):
                raise EmulatorFault(
                    pc, f"the core took an exception (fault handler reached) on {target.name}"
                )
            if pc != stop:
                raise EmulatorFault(pc, f"QEMU stopped at {pc:#x}, not at autotune_stop")
            return {name: gdb.read(sym.value, size) for name, sym, size in reads}
        finally:
            with contextlib.suppress(OSError):
                gdb.send("k")
            gdb.close()

    def _pc(self, gdb: GdbRemote) -> int:
        """The program counter, from the general registers (``g``) at ``pc_index``."""
        regs = gdb.command("g")
        width = 2 * self.word_bytes
        field = regs[self.pc_index * width : (self.pc_index + 1) * width]
        if len(field) != width:
            raise RunError(f"QEMU's GDB server sent no program counter: {regs[:40]!r}")
        return int.from_bytes(bytes.fromhex(field), "little")

    @staticmethod
    def _buffer(image, name: str) -> Symbol:
        sym = image.symbols.get(name)
        if sym is None or sym.is_func:
            known = ", ".join(image.buffer_names()) or "none"
            raise BufferMismatchError(
                f"no buffer named {name!r} in {image.path.name} (buffers: {known})"
            )
        return sym


def _bytes(data: bytes) -> bytes:
    return data.tobytes() if hasattr(data, "tobytes") else bytes(data)


def _tail(stderr: bytes) -> str:
    text = stderr.decode(errors="replace").strip().splitlines()
    return text[-1] if text else "no message"
