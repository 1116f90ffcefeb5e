"""The built-in targets: names, toolchains, flags, features and memory maps as the issue lists them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotune.platform import plugins, toolchain
from autotune.platform.conformance import feature_disagreements, predefined_macros
from autotune.platform.elf import read_elf
from autotune.platform.target import Target
from autotune.targets import arc

KIB, MIB = 1024, 1024 * 1024

# name: (aliases that must resolve, family, arch, Debian package, compiler, cycle model)
EXPECTED = {
    "cortex-m0": (("m0",), "cortex-m", "armv6-m", "gcc-arm-none-eabi", "cortex-m0 v2"),
    "cortex-m0plus": (
        ("m0plus", "m0+"),
        "cortex-m",
        "armv6-m",
        "gcc-arm-none-eabi",
        "cortex-m0plus v2",
    ),
    "cortex-m3": (("m3",), "cortex-m", "armv7-m", "gcc-arm-none-eabi", "cortex-m3 v3"),
    "cortex-m4": (("m4",), "cortex-m", "armv7e-m", "gcc-arm-none-eabi", "cortex-m4 v3"),
    "cortex-m7": (("m7",), "cortex-m", "armv7e-m", "gcc-arm-none-eabi", "cortex-m7 v2"),
    "cortex-m33": (("m33",), "cortex-m", "armv8-m.main", "gcc-arm-none-eabi", "cortex-m33 v3"),
    "cortex-a53": (("a53",), "cortex-a", "armv8-a", "gcc-aarch64-linux-gnu", "cortex-a53 v2"),
    "cortex-a7": (("a7",), "cortex-a", "armv7-a", "gcc-arm-none-eabi", "cortex-a7 v1"),
    "arc-em": (("em4_dmips", "arc"), "arc", "arcv2em", "gcc-arc-linux-gnu", ""),
    "rv32imc": (("riscv",), "riscv", "rv32imc", "gcc-riscv64-unknown-elf", "ibex v1"),
    "rv32im": ((), "riscv", "rv32im", "gcc-riscv64-unknown-elf", "ibex v1"),
    "rv32imac": ((), "riscv", "rv32imac", "gcc-riscv64-unknown-elf", "sifive-e31 v1"),
    "rv32gc": ((), "riscv", "rv32gc", "gcc-riscv64-unknown-elf", "sifive-e31 v1"),
}

COMPILERS = {
    "gcc-arm-none-eabi": "arm-none-eabi-gcc",
    "gcc-aarch64-linux-gnu": "aarch64-linux-gnu-gcc",
    "gcc-riscv64-unknown-elf": "riscv64-unknown-elf-gcc",
    "gcc-arc-linux-gnu": "arc-linux-gnu-gcc",
}


@pytest.fixture(autouse=True)
def builtin_plugins_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(plugins.ENV_VAR, raising=False)
    plugins.reset()
    yield
    plugins.reset()


def test_every_listed_target_is_registered_and_nothing_unexpected() -> None:
    assert set(plugins.get_targets()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_target_identity_toolchain_and_measurement(name: str) -> None:
    aliases, family, arch, package, cycle_model = EXPECTED[name]
    target = plugins.get_target(name)
    for alias in aliases:
        assert plugins.get_target(alias) is target
    assert (target.family, target.arch, target.cycle_model) == (family, arch, cycle_model)
    assert target.toolchain.debian_package == package
    assert target.toolchain.cc == COMPILERS[package]
    assert target.toolchain.size == COMPILERS[package].removesuffix("gcc") + "size"
    if name == "arc-em":
        assert target.runner in ("nsim", "size-only")
    else:
        assert target.runner == "unicorn"
    assert target.default_clock_mhz > 0 and target.description


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_core_selection_flags(name: str) -> None:
    flags = plugins.get_target(name).toolchain.cflags
    if name.startswith("cortex-m"):
        assert flags[:2] == (f"-mcpu={name}", "-mthumb")
        assert any(f.startswith("-mfloat-abi=") for f in flags)
    elif name == "cortex-a7":
        assert flags == ("-mcpu=cortex-a7", "-marm", "-mfpu=neon-vfpv4", "-mfloat-abi=softfp")
    elif name == "cortex-a53":
        assert flags == ("-mcpu=cortex-a53",)
    elif name == "arc-em":
        assert flags == ("-mcpu=em4_dmips",)
    else:
        assert flags == (f"-march={name}", "-mabi=ilp32d" if name == "rv32gc" else "-mabi=ilp32")


def test_isa_features_that_kernels_choose_by() -> None:
    get = plugins.get_target
    dsp = {n for n in EXPECTED if get(n).has("dsp")}
    assert dsp == {"cortex-m4", "cortex-m7", "cortex-m33", "cortex-a7"}
    assert {n for n in EXPECTED if get(n).has("neon")} == {"cortex-a53", "cortex-a7"}
    assert {n for n in EXPECTED if get(n).has("compressed")} == {"rv32imc", "rv32imac", "rv32gc"}
    assert not get("m0").has("div") and get("m3").has("div")
    assert get("m4").simd_bits == 32 and get("a53").simd_bits == 128 and get("m3").simd_bits == 0
    assert get("a53").word_bits == 64
    assert all(get(n).has("mul") for n in EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_memory_map_fits_test_programs(name: str) -> None:
    target = plugins.get_target(name)
    regions = {r.name: r for r in target.memory}
    assert set(regions) == {"flash", "ram"}
    assert regions["flash"].length >= 1 * MIB
    assert regions["ram"].length >= 512 * KIB
    flash, ram = regions["flash"], regions["ram"]
    assert flash.origin + flash.length <= ram.origin or ram.origin + ram.length <= flash.origin


@pytest.mark.toolchain
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_declared_features_match_the_compiler(name: str) -> None:
    target = plugins.get_target(name)
    if not toolchain.toolchain_available(target):
        pytest.skip(f"{target.toolchain.cc} not installed")
    macros = predefined_macros(target)
    assert feature_disagreements(target, macros) == []
    # And the check has teeth: claiming what the flags do not enable is caught.
    wrong = dataclasses.replace(target, features=target.features ^ {"div", "fpu"})
    assert len(feature_disagreements(wrong, macros)) == 2


DSP_SOURCE = """
int smlad(int a, int b, int acc)
{
    int out;
    __asm__("smlad %0, %1, %2, %3" : "=r"(out) : "r"(a), "r"(b), "r"(acc));
    return out;
}
"""


@pytest.mark.toolchain
@pytest.mark.parametrize("name", ["cortex-m0", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33"])
def test_flags_select_the_core_dsp_assembles_only_where_declared(name: str, tmp_path: Path) -> None:
    target = plugins.get_target(name)
    if not toolchain.toolchain_available(target):
        pytest.skip(f"{target.toolchain.cc} not installed")
    src = tmp_path / "dsp.c"
    src.write_text(DSP_SOURCE)
    if target.has("dsp"):
        toolchain.compile_object(target, src, tmp_path / "dsp.o")
        assert read_elf(tmp_path / "dsp.o").symbol("smlad").size > 0
    else:
        with pytest.raises(toolchain.CompileError):
            toolchain.compile_object(target, src, tmp_path / "dsp.o")


KERNEL = """
#include "autotune_harness.h"
AUTOTUNE_BUFFER(int8_t, a, 64);
AUTOTUNE_BUFFER(int8_t, b, 64);
AUTOTUNE_BUFFER(int32_t, out, 1);
void autotune_main(void)
{
    int32_t acc = 0;
    for (int i = 0; i < 64; i++) acc += a[i] * b[i];
    out[0] = acc;
}
"""


@pytest.mark.toolchain
def test_arc_em_compiles_and_reports_sizes(tmp_path: Path) -> None:
    target = plugins.get_target("arc")
    if not toolchain.toolchain_available(target):
        pytest.skip("arc-linux-gnu-gcc not installed")
    src = tmp_path / "dot.c"
    src.write_text(KERNEL)
    result = toolchain.build_elf(target, [src], tmp_path, name="dot")
    image = read_elf(result.elf)
    assert image.machine == "EM_ARC_COMPACT2"
    assert image.symbol("autotune_main").section_kind == "code"
    assert image.sizes.code > 0 and image.sizes.data >= 64 + 64 + 4
    assert result.stack_usage, "the kernel's -fstack-usage file"


def test_arc_em_metric_depends_on_nsim(monkeypatch: pytest.MonkeyPatch) -> None:
    without = arc.arc_em_target(nsim_present=False)
    assert without.runner == "size-only"
    assert plugins.metric_label(without) == "code size only"
    assert "code size only" in without.description
    with_nsim = arc.arc_em_target(nsim_present=True)
    assert with_nsim.runner == "nsim" and plugins.metric_label(with_nsim) == "cycles (nSIM)"

    # The registered target follows what is on PATH when the registry is built.
    monkeypatch.setattr(arc.shutil, "which", lambda cmd: "/opt/nsim/bin/nsimdrv")
    plugins.reset()
    assert plugins.get_target("arc-em").runner == "nsim"
    monkeypatch.setattr(arc.shutil, "which", lambda cmd: None)
    plugins.reset()
    assert plugins.get_target("arc-em").runner == "size-only"


def test_targets_are_immutable() -> None:
    target: Target = plugins.get_target("m4")
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.runner = "qemu"  # type: ignore[misc]
