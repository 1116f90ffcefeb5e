"""QEMU system mode as a runner: a whole emulated board (e.g. Arm's MPS3 AN547 with a
Cortex-M55) that autotune starts for each run, drives through the ``gdb`` runner, and
counts instructions on exactly.

Where the embedded emulator has no CPU model for a core (Unicorn stops at Armv8-M
Mainline, so Armv8.1-M code such as the Cortex-M55's low-overhead loops cannot run
there), QEMU emulates a board with that core. One run:

1. ``qemu-system-arm -M MACHINE -cpu CPU -S -gdb tcp:127.0.0.1:PORT`` starts halted,
   translating one instruction per block (``-singlestep``) and logging every block it
   executes (``-d exec,nochain``) into a pipe that a reader thread counts;
2. :class:`~autotune.platform.gdb_runner.GdbRunner` loads the ELF through QEMU's GDB
   server, writes the inputs, runs ``autotune_main`` to the breakpoint on
   ``autotune_stop`` (faults stop at ``autotune_fault`` and are decoded), and reads
   the outputs;
3. QEMU is stopped. Every logged instruction ran between the first instruction of
   ``autotune_main`` and the arrival at ``autotune_stop``: the count is exact, the
   same region the embedded emulator counts.

QEMU models no timing and no DWT, so this runner counts no cycles: its figures are
``instructions (exact)``, and variants are ranked by them. A runner instance is one
board: a plugin registers one per machine and CPU it needs, e.g.
``QemuSystemRunner("qemu-mps3-an547", machine="mps3-an547", cpu="cortex-m55")``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from autotune.platform import harness
from autotune.platform.emulator import EmulatorTimeout, RunnerUnavailableError, load_elf
from autotune.platform.gdb_runner import GdbRunner
from autotune.platform.runner import DEFAULT_BUDGET, RunError, Runner, RunnerCapabilities, RunResult
from autotune.platform.target import Target

# GdbRunner's time limit assumes 20 M instructions/s; QEMU translating one instruction
# per block and logging each runs at a few million, so its budget is scaled by this.
SLOWDOWN = 10
# A port found free can be taken before QEMU binds it: start again, this many times.
START_ATTEMPTS = 3
_TRACE = b"Trace "


@functools.lru_cache(maxsize=8)
def single_insn_args(binary: str) -> tuple[str, ...]:
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


class ExecCounter(threading.Thread):
    """Reads QEMU's exec log from a pipe and counts executed instructions.

    Counting in a thread keeps nothing on disk, and lets a runaway program be stopped
    once it passes its budget (``on_over`` is called once).
    """

    def __init__(self, fifo: Path, budget: int, on_over) -> None:
        super().__init__(daemon=True)
        self.fifo = fifo
        self.budget = budget
        self.on_over = on_over
        self.count = 0
        self.first_line = b""
        self.over = False

    def run(self) -> None:
        tail = b""
        with open(self.fifo, "rb") as f:
            while chunk := f.read(1 << 16):
                data = tail + chunk
                cut = data.rfind(b"\n") + 1  # count whole lines only
                lines, tail = data[:cut], data[cut:]
                if not self.first_line and _TRACE in lines:
                    start = lines.index(_TRACE)
                    self.first_line = lines[start : lines.index(b"\n", start)]
                self.count += lines.count(_TRACE)
                if self.count > self.budget and not self.over:
                    self.over = True
                    self.on_over()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _NotListening(RunError):
    """QEMU exited before its GDB server listened (e.g. the free port was taken meanwhile)."""


def _wait_listening(proc: subprocess.Popen, port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            raise _NotListening(f"QEMU exited before its GDB server listened: {err[-300:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RunError(f"QEMU's GDB server did not listen on port {port}") from None
            time.sleep(0.05)


class QemuSystemRunner(Runner):
    """One QEMU system-mode board: executes, and counts instructions exactly; no cycles."""

    capabilities = RunnerCapabilities(executes=True, counts_instructions=True)

    def __init__(
        self,
        name: str,
        machine: str,
        cpu: str,
        binary: str = "qemu-system-arm",
        debian_package: str = "qemu-system-arm",
        description: str = "",
    ) -> None:
        self.name = name  # type: ignore[misc]
        self.machine = machine
        self.cpu = cpu
        self.binary = binary
        self.debian_package = debian_package
        self.description = description or (  # type: ignore[misc]
            f"QEMU system mode, board {machine} with a {cpu}, driven through its GDB "
            "server: exact instruction counts, no cycles"
        )

    def available(self) -> str | None:
        if shutil.which(self.binary) is None:
            return f"{self.binary} not found (apt-get install {self.debian_package})"
        return None

    def supports(self, target: Target) -> str | None:
        return self.available() or GdbRunner().supports(target)

    def run(
        self,
        elf_path: Path | str,
        target: Target,
        inputs: Mapping[str, bytes] | None = None,
        outputs: Mapping[str, int] | None = None,
        budget: int = DEFAULT_BUDGET,
        profile: bool = False,
    ) -> RunResult:
        reason = self.supports(target)
        if reason:
            raise RunnerUnavailableError(f"runner {self.name} cannot run {target.name}: {reason}")
        started = time.perf_counter()
        entry = load_elf(elf_path).symbol(harness.ENTRY_SYMBOL).value & ~1
        with tempfile.TemporaryDirectory(prefix="autotune-qemu-system-") as tmp:
            for attempt in range(1, START_ATTEMPTS + 1):
                try:
                    result, counter, argv = self._attempt(
                        Path(tmp) / f"exec{attempt}.log", elf_path, target, inputs, outputs, budget
                    )
                    break
                except _NotListening:
                    if attempt == START_ATTEMPTS:
                        raise
        first = counter.first_line
        if first and f"/{entry:08x}/".encode() not in first:
            raise RunError(f"QEMU's first instruction was not autotune_main: {first[:80]!r}")
        if counter.count > budget:
            raise EmulatorTimeout(budget, counter.count, 0)
        return RunResult(
            instructions=counter.count,
            cycles=None,
            cycle_model="",
            outputs=result.outputs,
            runner=self.name,
            wall_time_s=time.perf_counter() - started,
            extra={"qemu": " ".join(argv[:5])},
        )

    def _attempt(
        self,
        fifo: Path,
        elf_path: Path | str,
        target: Target,
        inputs: Mapping[str, bytes] | None,
        outputs: Mapping[str, int] | None,
        budget: int,
    ) -> tuple[RunResult, ExecCounter, list[str]]:
        """One QEMU process: start it, run through its GDB server, stop it."""
        os.mkfifo(fifo)
        port = _free_port()
        argv = [
            self.binary,
            "-M",
            self.machine,
            "-cpu",
            self.cpu,
            "-S",
            "-gdb",
            f"tcp:127.0.0.1:{port}",
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "null",
            *single_insn_args(self.binary),
            "-d",
            "exec,nochain",
            "-D",
            str(fifo),
        ]
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        counter = ExecCounter(fifo, budget, proc.kill)
        counter.start()
        try:
            _wait_listening(proc, port)
            board = GdbRunner(remote=f"127.0.0.1:{port}")
            try:
                result = board.run(elf_path, target, inputs, outputs, budget=budget * SLOWDOWN)
            except RunnerUnavailableError:
                if counter.over:  # QEMU was stopped for running past the budget
                    raise EmulatorTimeout(budget, counter.count, 0) from None
                raise
        finally:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
            if counter.is_alive():  # QEMU never opened its log: end the reader's wait
                with contextlib.suppress(OSError):
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            counter.join(10)
        return result, counter, argv
