"""The conformance suite: every built-in target passes it, and each check catches its fault."""

from __future__ import annotations

import dataclasses
import re
import shutil
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autotune.platform import conformance, plugins
from autotune.platform.conformance import check_plugin, check_target, targets_of
from autotune.platform.hookspecs import hookimpl
from autotune.platform.target import MemoryRegion, Target, Toolchain
from autotune.targets import cortex_m

# Runner names agreed for the built-in targets; the runner plugin registers them.
AGREED_RUNNERS = ("unicorn", "qemu", "nsim", "size-only")

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


@pytest.fixture(autouse=True)
def builtin_plugins_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(plugins.ENV_VAR, raising=False)
    plugins.reset()
    yield
    plugins.reset()


def known_runners() -> dict[str, Any]:
    """The registered runners, or the agreed names while no runner plugin is present."""
    return plugins.get_runners() or dict.fromkeys(AGREED_RUNNERS)


def builtin_target_names() -> list[str]:
    plugins.reset()
    return list(plugins.get_targets())


@pytest.mark.parametrize("name", builtin_target_names())
def test_builtin_target_conforms(name: str) -> None:
    assert check_target(plugins.get_target(name), runners=known_runners()) == []


def test_builtin_runner_names_are_the_agreed_ones() -> None:
    runners = plugins.get_runners()
    if not runners:
        pytest.skip("no runner plugin registered yet (targets/runners.py)")
    assert set(AGREED_RUNNERS) <= set(runners)
    for target in plugins.get_targets().values():
        assert target.runner in runners


def good_target(**changes: Any) -> Target:
    base = Target(
        name="test-core",
        aliases=("tc",),
        family="cortex-m",
        arch="armv7e-m",
        isa="thumb-m",
        toolchain=Toolchain(
            "gcc-arm-none-eabi",
            "arm-none-eabi-gcc",
            ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft"),
            size="arm-none-eabi-size",
        ),
        memory=(MemoryRegion("flash", 0, 1 << 20), MemoryRegion("ram", 0x2000_0000, 1 << 19)),
        runner="unicorn",
        cycle_model="",
        features=frozenset({"mul", "mul64", "div", "dsp", "thumb2", "unaligned"}),
        simd_bits=32,
        description="a Cortex-M4 without FPU, for these tests",
    )
    return dataclasses.replace(base, **changes)


def problems(target: Target, compile: bool = False) -> list[str]:
    return check_target(target, runners=known_runners(), compile=compile)


def test_a_good_target_has_no_problems() -> None:
    assert problems(good_target()) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"name": "Test Core"}, "must be lower-case"),
        ({"aliases": ("tc", "TC")}, "'tc' appears more than once"),
        ({"aliases": ("m4",)}, "m4 also names target cortex-m4"),
        ({"family": ""}, "family '' must be"),
        ({"description": ""}, "description is empty"),
        (
            {"toolchain": Toolchain("", "arm-none-eabi-gcc", ("-mcpu=cortex-m4",), size="s")},
            "no valid Debian package",
        ),
        ({"toolchain": Toolchain("gcc-arm-none-eabi", "", ("-mcpu=cortex-m4",))}, "no compiler"),
        ({"toolchain": Toolchain("gcc-arm-none-eabi", "cc", (), size="s")}, "core-selection"),
        ({"memory": ()}, "declares no memory regions"),
        (
            {"memory": (MemoryRegion("flash", 0, 1 << 20), MemoryRegion("ram", 0x8000, 1 << 19))},
            "flash and ram overlap",
        ),
        (
            {"memory": (MemoryRegion("flash", 0, 4096), MemoryRegion("ram", 1 << 29, 1 << 19))},
            "code region flash has 4096 bytes",
        ),
        (
            {
                "memory": (
                    MemoryRegion("flash", 0, 1 << 20),
                    MemoryRegion("ram", 0xFFFF_0000, 1 << 19),
                )
            },
            "ends beyond the 32-bit address space",
        ),
        ({"features": frozenset({"mul", "dps"})}, "'dps' is unknown; did you mean 'dsp'"),
        ({"simd_bits": 0}, "has dsp but simd_bits < 32"),
        ({"simd_bits": 48}, "simd_bits 48 is not 0 or a power of two"),
        ({"features": frozenset({"neon"}), "simd_bits": 64}, "has neon but simd_bits < 128"),
        ({"features": frozenset({"fpu-dp"})}, "has fpu-dp but not fpu"),
        ({"word_bits": 16}, "word_bits 16 is not 32 or 64"),
        ({"endian": "middle"}, "endian 'middle'"),
        ({"default_clock_mhz": 0}, "default clock 0 MHz"),
        ({"runner": "unicron"}, "runner 'unicron' is not registered"),
        ({"runner": ""}, "names no runner"),
    ],
)
def test_each_check_catches_its_fault(changes: dict[str, Any], expected: str) -> None:
    found = problems(good_target(**changes))
    assert any(expected in p for p in found), found
    assert all(p.startswith(f"{changes.get('name', 'test-core')}: ") for p in found)


@pytest.mark.toolchain
def test_compiler_checks_run_where_the_compiler_is_installed() -> None:
    target = good_target()
    if conformance.shutil.which(target.toolchain.cc) is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    assert problems(target, compile=True) == []
    broken = good_target(
        toolchain=dataclasses.replace(target.toolchain, cflags=("-mcpu=cortex-m99", "-mthumb"))
    )
    assert any("an empty function does not compile" in p for p in problems(broken, compile=True))
    boastful = good_target(
        toolchain=dataclasses.replace(target.toolchain, cflags=("-mcpu=cortex-m0", "-mthumb"))
    )
    found = problems(boastful, compile=True)
    assert any("declares 'dsp' but the compiler flags do not enable it" in p for p in found), found
    wide = good_target(word_bits=64)
    assert any("the compiler emits ELF32" in p for p in problems(wide, compile=True))


def test_a_missing_compiler_skips_compile_checks_only() -> None:
    target = good_target(
        toolchain=Toolchain("gcc-nowhere", "nowhere-gcc", ("-mcpu=x",), size="s"),
        runner="size-only",  # the emulator rightly refuses an unknown compiler's code
    )
    assert problems(target, compile=True) == []


def test_cycle_model_must_name_an_existing_versioned_model() -> None:
    assert problems(good_target(cycle_model="cortex-m4 v3")) == []
    for name in ("cortex-m4 v9", "cortex-m4", "cortex-m5 v1"):
        found = problems(good_target(cycle_model=name))
        assert any(f"cycle model '{name}' is unknown" in p for p in found), found


def test_targets_of_and_check_plugin() -> None:
    assert [t.name for t in targets_of(cortex_m)] == [
        "cortex-m0",
        "cortex-m0plus",
        "cortex-m3",
        "cortex-m4",
        "cortex-m7",
        "cortex-m33",
    ]
    assert targets_of(object()) == []

    class TwoClashing:
        @hookimpl
        def register_targets(self, register: Callable[[Any], None]) -> None:
            register(good_target(name="one", aliases=("same",)))
            register(good_target(name="two", aliases=("same",)))

    found = check_plugin(TwoClashing(), compile=False)
    assert any("two: 'same' is also claimed by one" in p for p in found), found


def test_the_documented_example_plugin_is_checked_by_the_suite() -> None:
    """docs/plugins.md's external plugin is real code: with its own runner (QEMU system
    mode) it conforms; on the unicorn runner the suite reports that Unicorn cannot
    execute Armv8.1-M, before any tuning run faults."""
    code = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)[0]
    module = types.ModuleType("autotune_m55")
    exec(compile(code, "docs/plugins.md", "exec"), module.__dict__)
    (target,) = targets_of(module)
    assert target.name == "cortex-m55"
    own: list[Any] = []
    module.register_runners(register=own.append)
    runners = {**known_runners(), **{r.name: r for r in own}}
    if shutil.which("qemu-system-arm"):
        assert check_target(target, runners=runners) == []
    on_unicorn = dataclasses.replace(target, runner="unicorn")
    assert check_target(on_unicorn, runners=known_runners()) == [
        "cortex-m55: runner 'unicorn' cannot run it: the unicorn runner cannot execute "
        "cortex-m55 (armv8.1-m.main); Unicorn has no thumb-m CPU"
    ]


def test_a_runner_that_cannot_run_the_core_is_a_problem() -> None:
    class Picky:
        name = "picky"

        def supports(self, target: Target) -> str | None:
            return None if target.family == "cortex-m" else f"no CPU model for {target.name}"

    runners = {"picky": Picky()}
    assert check_target(good_target(runner="picky"), runners=runners, compile=False) == []
    found = check_target(
        good_target(runner="picky", family="xtensa"), runners=runners, compile=False
    )
    assert found == ["test-core: runner 'picky' cannot run it: no CPU model for test-core"]
