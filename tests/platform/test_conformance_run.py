"""The conformance kit builds, links, runs and verifies: it catches a target whose runner
cannot execute its code and a target whose code does not link, with the reason."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from autotune.platform import plugins
from autotune.platform.conformance import check_target, main
from autotune.platform.conformance_run import PROBE_C, probe_expected
from autotune.platform.target import Toolchain

pytestmark = pytest.mark.toolchain


def need(cc: str) -> None:
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed")


@pytest.fixture(autouse=True)
def fresh_plugins() -> None:
    plugins.reset()


@pytest.mark.parametrize("name", ["cortex-m0", "rv32imc", "cortex-a53"])
def test_builtin_targets_build_link_run_and_verify(name: str) -> None:
    target = plugins.get_target(name)
    need(target.toolchain.cc)
    notes: list[str] = []
    assert check_target(target, run=True, notes=notes.append) == []
    # Every template that applies ran on some conformance layer, except the LSTM's.
    assert all("lstm" in n for n in notes), notes


def test_arc_em_kernels_link_but_libgcc_does_not() -> None:
    """A real finding of the kit: Debian's arc-linux-gnu libgcc is built for ARC HS
    (double load/store), so code needing a libgcc helper (64-bit division) does not link
    for em4_dmips. The kernels themselves need none and build (size only, no runner)."""
    target = plugins.get_target("arc-em")
    need(target.toolchain.cc)
    found = check_target(target, run=True)
    assert len(found) == 1, found
    assert "the probe program does not link" in found[0]
    assert "unable to merge ISA extension attributes" in found[0]


def test_probe_expectations_are_c_semantics() -> None:
    # -7654321 << 20 overflows int32 but not int64; division truncates towards zero.
    got = probe_expected(3, 0x00F0_1234, -7_654_321, 97)
    assert got[1] == 8  # clz(0x00F01235)
    assert got[4] == -78910  # -7654321 / 97 in C
    assert "__builtin_clz" in PROBE_C


def test_a_core_the_runner_cannot_execute_fails_with_the_reason() -> None:
    """An Armv8.1-M core on the emulator: Unicorn has no CPU for it."""
    m33 = plugins.get_target("cortex-m33")
    need(m33.toolchain.cc)
    flags = ("-mcpu=cortex-m55+nomve", "-mthumb", "-mfloat-abi=soft")
    m55 = dataclasses.replace(
        m33,
        name="fake-m55",
        aliases=(),
        arch="armv8.1-m.main",
        toolchain=dataclasses.replace(m33.toolchain, cflags=flags, ldflags=flags),
        features=m33.features - {"fpu"},
        cycle_model="",
    )
    found = check_target(m55, run=True)
    assert found == [
        "fake-m55: runner 'unicorn' cannot run it: the unicorn runner cannot execute "
        "fake-m55 (armv8.1-m.main); Unicorn has no thumb-m CPU"
    ]


def test_code_the_emulated_core_cannot_execute_fails_with_invalid_instruction() -> None:
    """Built for a Cortex-M4 but run on the ARMv6-M CPU: the run faults, and says where."""
    m4 = plugins.get_target("cortex-m4")
    need(m4.toolchain.cc)
    flags = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft")
    wrong = dataclasses.replace(
        m4,
        name="fake-m0-running-m4-code",
        aliases=(),
        arch="armv6-m",
        toolchain=dataclasses.replace(m4.toolchain, cflags=flags, ldflags=flags),
        features=m4.features - {"fpu"},
        cycle_model="",
    )
    found = check_target(wrong, run=True)
    assert found, "conformance passed a target whose code faults"
    assert any("cannot run the probe program" in p and "invalid instruction" in p for p in found)
    assert any(p.startswith("fake-m0-running-m4-code: kernel ") and "fault" in p for p in found)


def test_code_that_does_not_link_fails_with_the_missing_symbol() -> None:
    """rv32imc_zicsr (an ESP32-C3-like core) has no libgcc multilib in Debian's toolchain."""
    rv = plugins.get_target("rv32imc")
    need(rv.toolchain.cc)
    flags = ("-march=rv32imc_zicsr", "-mabi=ilp32")
    esp = dataclasses.replace(
        rv,
        name="fake-esp32c3",
        aliases=(),
        arch="rv32imc",
        toolchain=Toolchain(
            rv.toolchain.debian_package, rv.toolchain.cc, flags, flags, size=rv.toolchain.size
        ),
    )
    found = check_target(esp, run=True)
    assert found[0].startswith("fake-esp32c3: the probe program does not link: "), found
    assert "undefined reference to `__clzsi2'" in found[0]


def test_command_line_names_the_plugin_and_exits_nonzero_on_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["no_such_plugin"]) == 2
    assert "no plugin named 'no_such_plugin'" in capsys.readouterr().err
    need("arm-none-eabi-gcc")
    assert main(["cortex_m", "--target", "m0"]) == 0
    out = capsys.readouterr().out
    assert "cortex-m0: ok" in out and "1 of 1 target(s) conform" in out
