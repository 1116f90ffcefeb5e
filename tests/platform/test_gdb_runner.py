"""The gdb runner against a real GDB server: QEMU's gdbstub on an MPS2-AN386 (Cortex-M4).

Kernels and whole libraries must come back bit-exact; a fault and a hang each give
their typed failure; QEMU has no cycle counter, so no cycles are reported.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from autotune.emit.library import emit_library, quick_choices
from autotune.emit.verify import run_on_target
from autotune.examples import quickstart_model
from autotune.model.tflite_import import load_model, parse_model
from autotune.platform import plugins
from autotune.platform.emulator import ElfLoadError, RunnerUnavailableError, run_elf
from autotune.platform.gdb_runner import (
    REMOTE_ENV,
    BoardFault,
    BoardTimeout,
    GdbRunner,
    _flash_region,
    init_writes,
    parse_remote,
)
from autotune.platform.gdbremote import (
    FlashRegion,
    decode_rle,
    escape,
    frame,
    parse_memory_map,
    parse_registers,
    parse_stop_reply,
)
from autotune.reference.executor import Interpreter
from autotune.reference.oracle import oracle_invoke
from autotune.targets.cortex_m.debug import decode_fault
from tests.conftest import extreme_inputs, seeded_inputs, shared_model
from tests.platform.qemu_gdb import qemu_gdbserver
from tests.platform.test_emulator import DOT_C, build_kernel, dot_inputs, need_toolchain

HANG_C = """
#include "autotune_harness.h"
AUTOTUNE_BUFFER(int32_t, spin, 1);
void autotune_main(void) { while (spin[0] == 0) { } }
"""

BOARD_LABEL = "cycles (board, DWT)"  # Cortex-M's counter, as targets/cortex_m/debug.py names it

TRAP_C = """
#include "autotune_harness.h"
AUTOTUNE_BUFFER(int32_t, where, 1);
void autotune_main(void) { where[0] = 1; __builtin_trap(); }
"""

BUS_C = """
#include "autotune_harness.h"
AUTOTUNE_BUFFER(int32_t, got, 1);
void autotune_main(void) { got[0] = *(volatile int32_t *)0xF0000000u; }
"""


# -- protocol pieces (no server needed) ---------------------------------------------------


def test_packets_are_framed_escaped_and_run_length_decoded() -> None:
    assert frame(b"g") == b"$g#67"
    assert frame(b"qSupported") == b"$qSupported#37"
    assert escape(b"a#b$c}d*") == b"a}\x03b}\x04c}]d}\x0a"
    assert decode_rle(escape(b"#$}*")) == b"#$}*"
    assert decode_rle(b"0* ") == b"0000"  # ' ' is 32: three more copies
    assert decode_rle(b"ab*\x22c") == b"ab" + b"b" * 5 + b"c"


def test_stop_reply_carries_signal_and_registers() -> None:
    reply = parse_stop_reply(b"T05thread:01;0f:54000000;0d:b0400020;")
    assert reply.kind == "T" and reply.signal == 5 and reply.running
    assert reply.registers[15] == bytes.fromhex("54000000")
    assert not parse_stop_reply(b"W00").running


def test_memory_map_and_target_description_are_read() -> None:
    mm = (
        '<memory-map><memory type="ram" start="0x20000000" length="0x50000"/>'
        '<memory type="flash" start="0x08000000" length="0x200000">'
        '<property name="blocksize">0x1000</property></memory></memory-map>'
    )
    (region,) = parse_memory_map(mm)
    assert (region.start, region.length, region.blocksize) == (0x08000000, 0x200000, 0x1000)
    docs = {
        "target.xml": '<target><xi:include href="core.xml"/><xi:include href="sys.xml"/></target>',
        "core.xml": '<feature><reg name="r0" bitsize="32"/><reg name="pc" bitsize="32" '
        'regnum="15"/><reg name="xPSR" bitsize="32" regnum="25"/></feature>',
        "sys.xml": '<feature><reg name="msp" bitsize="32"/></feature>',
    }
    regs = parse_registers(docs)
    assert regs == {"r0": (0, 32), "pc": (15, 32), "xpsr": (25, 32), "msp": (26, 32)}


def test_code_linked_at_zero_is_programmed_into_aliased_flash() -> None:
    stm32 = [FlashRegion(0x08000000, 0x200000, 0x1000)]
    assert _flash_region(stm32, 0x0, 0x4000) == (stm32[0], 0x08000000)
    assert _flash_region(stm32, 0x08000100, 0x100) == (stm32[0], 0x08000100)
    assert _flash_region(stm32, 0x20000000, 0x100) == (None, 0x20000000)
    assert _flash_region([], 0x0, 0x100) == (None, 0x0)  # QEMU: no flash, plain writes
    with pytest.raises(ElfLoadError, match="past the end of flash"):
        _flash_region(stm32, 0x081FFF00, 0x200)


def test_init_writes_are_parsed_and_bad_ones_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert init_writes("0x40022000=0x705, 0xE000ED88=15") == [(0x40022000, 0x705), (0xE000ED88, 15)]
    monkeypatch.setenv("AUTOTUNE_GDB_INIT", "0x40022000=0x705")
    assert init_writes() == [(0x40022000, 0x705)]
    with pytest.raises(RunnerUnavailableError, match="not ADDRESS=VALUE"):
        init_writes("0x40022000")


def test_fault_status_is_decoded() -> None:
    text = decode_fault(0x00008200, 0x40000000, 0, 0x1234)
    assert "FORCED" in text and "PRECISERR" in text and "BFAR 0x00001234" in text
    assert "UNDEFINSTR" in decode_fault(1 << 16, 0, 0, 0)
    assert "DIVBYZERO" in decode_fault(1 << 25, 0, 0, 0)


def test_remote_address_and_availability(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_remote("board.local:3333") == ("board.local", 3333)
    assert parse_remote(":1234") == ("127.0.0.1", 1234)
    with pytest.raises(RunnerUnavailableError, match="not HOST:PORT"):
        parse_remote("localhost")
    monkeypatch.delenv(REMOTE_ENV, raising=False)
    assert "--remote" in (GdbRunner().available() or "")
    monkeypatch.setenv(REMOTE_ENV, "127.0.0.1:3333")
    assert GdbRunner().available() is None
    why = GdbRunner().supports(plugins.get_target("rv32imc"))
    assert why is not None and "'riscv32' has no debug support" in why
    assert GdbRunner().supports(plugins.get_target("cortex-m0")) is None
    gdb = plugins.get_runner("gdb")
    assert gdb.metric_label(plugins.get_target("m4")) == BOARD_LABEL
    assert gdb.metric_label(plugins.get_target("rv32imc")) == "cycles (board)"  # no counter
    assert gdb.capabilities.exclusive and gdb.capabilities.counts_cycles


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    from tests.platform.qemu_gdb import free_port

    target = plugins.get_target("cortex-m4")
    need_toolchain(target)
    elf = build_kernel(target, "dot", DOT_C, tmp_path)
    with pytest.raises(RunnerUnavailableError, match="cannot connect"):
        GdbRunner(f"127.0.0.1:{free_port()}").run(elf, target, {}, {})


# -- against QEMU's gdbstub ---------------------------------------------------------------


@pytest.fixture(scope="module")
def remote() -> Iterator[str]:
    with qemu_gdbserver() as address:
        yield address


@pytest.fixture(scope="module")
def m4() -> object:
    plugins.reset()
    target = plugins.get_target("cortex-m4")
    need_toolchain(target)
    return target


@pytest.mark.toolchain
def test_kernel_outputs_equal_the_emulator_and_no_cycles_are_invented(
    remote: str, m4, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elf = build_kernel(m4, "dot", DOT_C, tmp_path)
    runner = GdbRunner(remote)
    # Init writes land before the run: a scratch word past the image reads back.
    monkeypatch.setenv("AUTOTUNE_GDB_INIT", "0x203F0000=0x12345678")
    runner.run(elf, m4, dot_inputs(0)[0], {"dot_out": 4})
    from autotune.platform.gdbremote import GdbRemote

    host, port = remote.split(":")
    with GdbRemote(host, int(port)) as gdb:
        gdb.handshake()
        assert gdb.read_u32(0x203F0000) == 0x12345678
    monkeypatch.delenv("AUTOTUNE_GDB_INIT")
    for seed in (1, 2):
        inputs, _ = dot_inputs(seed)
        want = run_elf(elf, m4, inputs, {"dot_out": 4})
        got = runner.run(elf, m4, inputs, {"dot_out": 4})
        assert got.outputs == want.outputs
        assert got.runner == "gdb"
        # QEMU implements no DWT: the run says so instead of reporting a number.
        assert got.cycles is None and got.instructions is None
        assert "did not count" in str(got.extra["cycles_note"])
        assert got.metrics() == {}


@pytest.mark.toolchain
def test_fault_and_hang_are_typed_and_the_core_recovers(
    remote: str, m4, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = GdbRunner(remote)
    trap = build_kernel(m4, "trap", TRAP_C, tmp_path)
    with pytest.raises(BoardFault) as fault:
        runner.run(trap, m4, {}, {})
    assert fault.value.status["cfsr"] & (1 << 16)  # UNDEFINSTR
    assert "UNDEFINSTR" in str(fault.value) and "FORCED" in str(fault.value)

    bus = build_kernel(m4, "bus", BUS_C, tmp_path)
    with pytest.raises(BoardFault, match="BFAR 0xf0000000"):
        runner.run(bus, m4, {}, {"got": 4})

    hang = build_kernel(m4, "hang", HANG_C, tmp_path)
    monkeypatch.setenv("AUTOTUNE_GDB_TIMEOUT", "1.5")
    with pytest.raises(BoardTimeout, match=r"did not finish within 1\.5 s"):
        runner.run(hang, m4, {"spin": bytes(4)}, {})
    monkeypatch.delenv("AUTOTUNE_GDB_TIMEOUT")
    # The same program with the loop's exit condition met, after a fault and a hang.
    done = runner.run(hang, m4, {"spin": (1).to_bytes(4, "little")}, {"spin": 4})
    assert done.outputs["spin"] == (1).to_bytes(4, "little")


def _library_on_qemu(model: bytes | Path, m4, remote: str, tmp_path: Path, monkeypatch):
    graph = load_model(model) if isinstance(model, Path) else parse_model(model)
    library = emit_library(graph, m4, tmp_path / "model", quick_choices(graph, m4))
    monkeypatch.setenv(REMOTE_ENV, remote)
    on_board = dataclasses.replace(m4, runner="gdb")
    calls = [seeded_inputs(graph, 5), extreme_inputs(graph, "min"), extreme_inputs(graph, "max")]
    run = run_on_target(library, graph, on_board, calls, reset_each=True)
    assert run.cycles is None and run.instructions is None
    return graph, calls, run.outputs


@pytest.mark.toolchain
def test_small_model_library_is_bit_exact_on_qemu(
    remote: str, m4, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph, calls, outputs = _library_on_qemu(quickstart_model(), m4, remote, tmp_path, monkeypatch)
    interp = Interpreter(graph)
    for call, got in zip(calls, outputs, strict=True):
        interp.reset()
        want = interp.invoke(call)
        assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


@pytest.mark.toolchain
def test_kws_library_is_bit_exact_with_tflite_micro_on_qemu(
    remote: str, m4, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = shared_model("kws_ref_model.tflite")
    _graph, calls, outputs = _library_on_qemu(path, m4, remote, tmp_path, monkeypatch)
    oracle, expected = oracle_invoke(path.read_bytes(), calls, isolated=True)
    assert oracle == "tflite-micro"
    for got, want in zip(outputs, expected, strict=True):
        assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


@pytest.mark.toolchain
def test_cli_tunes_through_the_gdb_runner(remote: str, m4, tmp_path: Path) -> None:
    from tests.cli.test_cli_basics import autotune

    model = tmp_path / "quickstart.tflite"
    model.write_bytes(quickstart_model())
    out = tmp_path / "out"
    done = autotune(
        str(model),
        "--target",
        "cortex-m4",
        "--runner",
        "gdb",
        "--remote",
        remote,
        "--trials",
        "2",
        "--db",
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["runner"] == "gdb" and report["metric"] == BOARD_LABEL
    tuned = [layer for layer in report["layers"] if layer["tuned"]]
    assert tuned and all(layer["bit_exact"] for layer in tuned)
    # QEMU counts nothing: no cycles or instructions anywhere, and the report says so.
    assert all(layer["tuned"]["cycles"] is None for layer in tuned)
    dep = report["deployment"]
    assert dep["bit_exact"] and dep["cycles"] is None and "latency" not in dep
    assert "counted neither cycles nor instructions" in (out / "report.md").read_text()


@pytest.mark.toolchain
def test_calibrate_on_qemu_says_no_cycles_were_counted(remote: str, m4, tmp_path: Path) -> None:
    pytest.importorskip("autotune.platform.parts")
    from tests.cli.test_cli_basics import autotune

    done = autotune("calibrate", "--part", "stm32l4r5", "--remote", remote, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("autotune: error: benchmark sram_loads: ")
    assert "did not count" in last and "calibration needs a cycle count" in last
    assert not list(tmp_path.glob("*.json"))  # nothing written without a measurement
