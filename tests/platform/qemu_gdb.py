"""A QEMU system-mode Cortex-M machine with its gdbstub, for tests of the gdb runner.

``qemu-system-arm -M mps2-an386 -cpu cortex-m4 -S -gdb tcp:127.0.0.1:PORT``: the
MPS2 board's 4 MiB code SRAM at 0x0 and 4 MiB data SRAM at 0x20000000 hold the
default Cortex-M memory map of the targets (1 MiB code, 512 KiB RAM). The machine
starts halted (-S); the runner loads everything over the stub.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

QEMU = "qemu-system-arm"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def qemu_gdbserver(machine: str = "mps2-an386", cpu: str = "cortex-m4") -> Iterator[str]:
    """Start QEMU halted with a gdbstub; yield ``HOST:PORT``; stop it afterwards."""
    if shutil.which(QEMU) is None:
        import pytest

        pytest.skip(f"{QEMU} not installed (apt-get install qemu-system-arm)")
    port = free_port()
    cmd = [QEMU, "-M", machine, "-cpu", cpu, "-S", "-gdb", f"tcp:127.0.0.1:{port}"]
    cmd += ["-nographic", "-monitor", "none", "-serial", "null"]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{QEMU} exited: {proc.stderr.read().decode()[:300]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
