"""QEMU user mode as a second, independent executor of the same ELF.

QEMU counts instructions by translating one instruction per block
(``-one-insn-per-tb``, spelled ``-singlestep`` before QEMU 8.1) and logging
every block it executes (``-d exec,nochain``): one log line is one executed
instruction. Debian's QEMU ships no TCG plugins (no ``libinsn.so``), so this
log is the counter. The region counted is the emulator's: from the first
instruction of ``autotune_main`` to the arrival at ``autotune_stop``.

Inputs are given by patching a copy of the ELF (the harness keeps I/O buffers
in ``.data``, so they have file bytes), and outputs come back on stdout: the
runner fills the harness's ``autotune_dump`` table and the epilogue writes the
listed buffers before exiting through the Linux system call interface.

Cortex-M code runs under ``qemu-arm -cpu max``: QEMU 7.2's user mode aborts at
start-up with M-profile CPUs (assertion in page_set_flags), and the A-profile
``max`` CPU executes every Thumb-2 and DSP instruction an M-profile kernel uses.
"""

from __future__ import annotations

import functools
import re
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from elftools.elf.elffile import ELFFile

from autotune.errors import AutotuneError
from autotune.platform import harness, plugins
from autotune.platform.emulator import (
    DEFAULT_BUDGET,
    BufferMismatchError,
    ElfImage,
    EmulatorFault,
    EmulatorTimeout,
    RunError,
    RunnerUnavailableError,
    RunResult,
    load_elf,
)
from autotune.platform.isa import QemuCommand
from autotune.platform.runner import Runner, RunnerCapabilities
from autotune.platform.target import Target

RUNNER_NAME = "qemu"
MAX_DUMPS = 16  # AUTOTUNE_MAX_DUMPS in harness.c
_TRACE = re.compile(rb"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/")


def qemu_command(target: Target) -> QemuCommand:
    """Which qemu-user binary and CPU run this target's code (its ISA support says)."""
    try:
        command = plugins.isa_of(target).qemu(target)
    except AutotuneError as exc:
        raise RunnerUnavailableError(f"the qemu runner cannot run {target.name}: {exc}") from None
    if command is None:
        raise RunnerUnavailableError(f"the qemu runner has no user-mode emulator for {target.name}")
    return command


@functools.lru_cache(maxsize=8)
def _single_insn_flag(binary: str) -> str:
    """``-one-insn-per-tb`` where QEMU knows it (8.1 and later), else ``-singlestep``."""
    try:
        text = subprocess.run(
            [binary, "-h"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "-singlestep"
    return "-one-insn-per-tb" if "-one-insn-per-tb" in text else "-singlestep"


def _file_offset(elf: ELFFile, vaddr: int, size: int) -> int | None:
    """Where ``size`` bytes at ``vaddr`` live in the file, if they have file bytes at all."""
    for seg in elf.iter_segments():
        if seg["p_type"] != "PT_LOAD":
            continue
        start = seg["p_vaddr"]
        if start <= vaddr and vaddr + size <= start + seg["p_filesz"]:
            return seg["p_offset"] + (vaddr - start)
    return None


def patch_elf(
    src: Path, dst: Path, image: ElfImage, inputs: Mapping[str, bytes], dumps: list[tuple[int, int]]
) -> None:
    """Copy ``src`` to ``dst`` with input buffers and the output dump table filled in."""
    blob = bytearray(src.read_bytes())
    with open(src, "rb") as f:
        elf = ELFFile(f)
        for name, data in inputs.items():
            sym = image.symbols.get(name)
            raw = data.tobytes() if hasattr(data, "tobytes") else bytes(data)
            if sym is None or sym.is_func:
                raise BufferMismatchError(f"no buffer named {name!r} in {src.name}")
            if len(raw) > sym.size:
                raise BufferMismatchError(
                    f"input {name!r} has {len(raw)} bytes but the buffer holds {sym.size}"
                )
            off = _file_offset(elf, sym.value, len(raw))
            if off is None:
                raise BufferMismatchError(
                    f"buffer {name!r} has no bytes in the ELF file (declare it with AUTOTUNE_BUFFER)"
                )
            blob[off : off + len(raw)] = raw
        if dumps:
            word = 8 if elf.elfclass == 64 else 4
            fmt = "<Q" if word == 8 else "<I"
            sym = image.symbol(harness.DUMP_SYMBOL)
            table = struct.pack(fmt, len(dumps)) + b"".join(
                struct.pack(fmt, a) + struct.pack(fmt, n) for a, n in dumps
            )
            off = _file_offset(elf, sym.value, len(table))
            if off is None:
                raise RunError(f"{src.name}: the harness dump table has no file bytes")
            blob[off : off + len(table)] = table
    dst.write_bytes(bytes(blob))
    dst.chmod(0o755)  # qemu-user refuses files without execute permission


def count_region(log: Path, start: int, stop: int) -> tuple[int, int | None]:
    """Executed instructions from the first ``start`` to the next ``stop`` in a QEMU exec log.

    Returns (count, last pc seen); count is -1 when ``start`` never ran and the
    last pc is None when ``stop`` was never reached.
    """
    count = -1
    last: int | None = None
    with open(log, "rb") as f:
        for line in f:
            m = _TRACE.match(line)
            if m is None:
                continue
            pc = int(m.group(1), 16)
            if count < 0:
                if pc == start:
                    count = 0
                else:
                    continue
            if pc == stop:
                return count, pc
            count += 1
            last = pc
    return count, None if count < 0 else last


class QemuRunner(Runner):
    """The ``qemu`` runner: exact instruction counts from QEMU user mode, no cycle model."""

    name = RUNNER_NAME
    description = (
        "QEMU user mode, one instruction per block with an exec log: exact instruction counts"
    )
    capabilities = RunnerCapabilities(executes=True, counts_instructions=True)

    def available(self) -> str | None:
        binaries = {isa.qemu_user for isa in plugins.get_isas().values() if isa.qemu_user}
        found = [b for b in sorted(binaries) if shutil.which(b)]
        if not found:
            return "no qemu user-mode emulator on PATH (apt-get install qemu-user)"
        return None

    def supports(self, target: Target) -> str | None:
        try:
            cmd = qemu_command(target)
        except RunnerUnavailableError as exc:
            return str(exc)
        if shutil.which(cmd.binary) is None:
            return f"{cmd.binary} not found (apt-get install {cmd.debian_package})"
        return None

    def run(
        self,
        elf_path: Path | str,
        target: Target,
        inputs: Mapping[str, bytes] | None = None,
        outputs: Mapping[str, int] | None = None,
        budget: int = DEFAULT_BUDGET,
        profile: bool = False,
    ) -> RunResult:
        """Run once under QEMU; counts ``autotune_main`` up to ``autotune_stop``."""
        reason = self.supports(target)
        if reason:
            raise RunnerUnavailableError(f"runner {self.name} cannot run {target.name}: {reason}")
        cmd = qemu_command(target)
        started = time.perf_counter()
        elf_path = Path(elf_path)
        image = load_elf(elf_path)
        entry = image.symbol(harness.ENTRY_SYMBOL).value & ~1
        stop = image.symbol(harness.STOP_SYMBOL).value & ~1
        outputs = dict(outputs or {})
        if len(outputs) > MAX_DUMPS:
            raise BufferMismatchError(f"at most {MAX_DUMPS} output buffers, got {len(outputs)}")
        dumps = []
        for name, nbytes in outputs.items():
            sym = image.symbols.get(name)
            if sym is None or sym.is_func:
                raise BufferMismatchError(f"no buffer named {name!r} in {elf_path.name}")
            if nbytes < 0 or nbytes > sym.size:
                raise BufferMismatchError(
                    f"output {name!r}: asked for {nbytes} bytes but the buffer holds {sym.size}"
                )
            dumps.append((sym.value, nbytes))
        with tempfile.TemporaryDirectory(prefix="autotune-qemu-") as tmp:
            work = Path(tmp)
            patched = work / elf_path.name
            patch_elf(elf_path, patched, image, inputs or {}, dumps)
            log = work / "exec.log"
            argv = [cmd.binary]
            if cmd.cpu:
                argv += ["-cpu", cmd.cpu]
            argv += [
                _single_insn_flag(cmd.binary),
                "-d",
                "exec,nochain",
                "-D",
                str(log),
                str(patched),
            ]
            limit = 30.0 + budget * 20e-6
            try:
                proc = subprocess.run(argv, capture_output=True, timeout=limit, check=False)
            except subprocess.TimeoutExpired as exc:
                raise EmulatorTimeout(
                    budget, -1, 0, why=f"QEMU wall-clock limit ({limit:.0f} s)"
                ) from exc
            count, last = count_region(log, entry, stop)
        if count < 0:
            raise EmulatorFault(0, f"QEMU never reached autotune_main ({_tail(proc.stderr)})")
        if last is None or last != stop:
            raise EmulatorFault(
                last or 0,
                f"QEMU stopped before autotune_stop (exit {proc.returncode}: {_tail(proc.stderr)})",
            )
        if count > budget:
            raise EmulatorTimeout(budget, count, stop)
        data = proc.stdout
        want = sum(n for _, n in dumps)
        if proc.returncode != 0 or len(data) != want:
            raise EmulatorFault(
                stop, f"QEMU exited with {proc.returncode} after {len(data)} of {want} output bytes"
            )
        result: dict[str, bytes] = {}
        pos = 0
        for name, nbytes in outputs.items():
            result[name] = data[pos : pos + nbytes]
            pos += nbytes
        return RunResult(
            instructions=count,
            cycles=None,
            cycle_model="",
            outputs=result,
            runner=RUNNER_NAME,
            wall_time_s=time.perf_counter() - started,
            extra={"qemu": " ".join(a for a in argv if a not in (str(log), str(patched), "-D"))},
        )


def _tail(stderr: bytes) -> str:
    text = stderr.decode(errors="replace").strip().splitlines()
    return text[-1] if text else "no message"
