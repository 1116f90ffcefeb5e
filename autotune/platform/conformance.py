"""A conformance suite any target plugin can run against itself (public API).

An out-of-tree plugin checks its targets in its own test suite::

    import pytest
    from autotune.platform.conformance import check_target, targets_of
    import my_plugin

    @pytest.mark.parametrize("target", targets_of(my_plugin), ids=lambda t: t.name)
    def test_target_conforms(target):
        assert check_target(target) == []

:func:`check_target` returns the problems it finds as one-line strings (empty when the
target conforms): naming, the toolchain's Debian package, a sane memory map, ISA
features consistent with each other, a runner and a cycle model autotune can resolve
and, where the compiler is installed, that an empty function compiles with the
target's flags into an ELF of the declared word size and byte order, and that the
compiler's predefined macros agree with the declared ISA features.
"""

from __future__ import annotations

import difflib
import itertools
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from autotune.errors import AutotuneError
from autotune.platform import plugins, toolchain
from autotune.platform.parts import Part
from autotune.platform.target import MemoryRegion, Target

KIB = 1024

#: ISA features the built-in kernels and targets use; others are allowed, but a name
#: close to one of these is reported as a likely misspelling.
KNOWN_FEATURES = frozenset(
    {
        "mul",  # hardware multiply
        "mul64",  # 32x32 -> 64-bit multiply in one instruction (SMULL, MULH)
        "div",  # hardware integer divide
        "dsp",  # Arm DSP extension: SMLAD, SXTB16, QADD... (32-bit packed SIMD)
        "neon",  # Arm Advanced SIMD, 128-bit
        "fpu",  # single-precision floating point in hardware
        "fpu-dp",  # double precision too
        "thumb2",  # 32-bit Thumb instructions (ARMv7-M and later, A-profile)
        "unaligned",  # unaligned word loads and stores in hardware
        "compressed",  # RISC-V C extension
        "atomic",  # RISC-V A extension
        "code-density",  # ARC code-density instructions
        "barrel-shifter",  # ARC barrel shifter
    }
)

#: Smallest code and data regions that still hold a test program with its stack.
MIN_CODE_BYTES = 64 * KIB
MIN_DATA_BYTES = 32 * KIB

_NAME = re.compile(r"^[a-z0-9][a-z0-9+._-]*$")
_DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


def _registered(plugin: object) -> list[object]:
    hook = getattr(plugin, "register_targets", None)
    if hook is None:
        return []
    found: list[object] = []
    hook(register=found.append)
    return found


def targets_of(plugin: object) -> list[Target]:
    """The targets a plugin registers, without loading it into the global registry."""
    return [t for t in _registered(plugin) if not isinstance(t, Part)]  # type: ignore[misc]


def parts_of(plugin: object) -> list[Part]:
    """The parts (chips with a memory system) a plugin registers next to its targets."""
    return [p for p in _registered(plugin) if isinstance(p, Part)]


def check_plugin(plugin: object, compile: bool = True, run: bool = False) -> list[str]:
    """Problems of every target a plugin registers, plus clashes between them."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for target in targets_of(plugin):
        if not isinstance(target, Target):
            problems.append(f"registered {type(target).__name__}, not a Target")
            continue
        for key in (target.name, *target.aliases):
            low = key.lower()
            if low in seen and seen[low] != target.name:
                problems.append(f"{target.name}: '{key}' is also claimed by {seen[low]}")
            seen[low] = target.name
        problems += check_target(target, others=(), compile=compile, run=run)
    for part in parts_of(plugin):
        problems += [f"part {part.name}: {p}" for p in part.check()]
    return problems


def check_target(
    target: Target,
    others: Iterable[Target] | None = None,
    runners: Mapping[str, Any] | None = None,
    compile: bool = True,
    run: bool = False,
    notes: Callable[[str], None] | None = None,
) -> list[str]:
    """Every way ``target`` fails to conform, one line each; empty when it conforms.

    ``others`` are the targets its names must not clash with (default: every registered
    target); ``runners`` the runners its runner must be among (default: the registry).
    ``compile=False`` skips the checks that run the compiler. ``run=True`` also links
    and runs a probe program (runtime helpers, instruction counts) and every kernel
    template that applies, verified bit-exact (see conformance_run); the target's
    plugin must then be loaded, since its ISA support and runner are needed.
    """
    problems: list[str] = []
    add = problems.append
    if others is None:
        others = plugins.get_targets().values()
    if runners is None:
        runners = plugins.get_runners()
    _check_names(target, others, add)
    _check_toolchain(target, add)
    _check_memory(target, add)
    _check_features(target, add)
    _check_measurement(target, runners, add)
    if compile and shutil.which(target.toolchain.cc):
        _check_compiler(target, add)
    if run and not problems:
        from autotune.platform.conformance_run import check_running

        problems += check_running(target, notes=notes)
    return [f"{target.name}: {p}" for p in problems]


def _check_names(target: Target, others: Iterable[Target], add: Callable[[str], None]) -> None:
    names = (target.name, *target.aliases)
    for key in names:
        if not _NAME.match(key):
            add(f"name or alias '{key}' must be lower-case letters, digits and + . _ -")
    lowered = [k.lower() for k in names]
    for key in sorted({k for k in lowered if lowered.count(k) > 1}):
        add(f"'{key}' appears more than once among its name and aliases")
    for other in others:
        if other is target or other.name == target.name:
            continue
        clash = set(lowered) & {k.lower() for k in (other.name, *other.aliases)}
        if clash:
            add(f"{', '.join(sorted(clash))} also names target {other.name}")
    for label, value in (("family", target.family), ("arch", target.arch)):
        if not value or not _NAME.match(value):
            add(f"{label} '{value}' must be a non-empty lower-case word")
    if not target.description:
        add("description is empty")


def _check_toolchain(target: Target, add: Callable[[str], None]) -> None:
    tc = target.toolchain
    if not _DEBIAN_PACKAGE.match(tc.debian_package or ""):
        add(f"toolchain names no valid Debian package ({tc.debian_package!r})")
    if not tc.cc:
        add("toolchain names no compiler")
    if not tc.size:
        add("toolchain names no binutils size tool")
    if not tc.cflags:
        add("toolchain has no core-selection flags (-mcpu / -march)")
    if any(not flag.startswith("-") for flag in tc.cflags):
        add(f"toolchain flags must each be one option: {tc.cflags}")


def _check_memory(target: Target, add: Callable[[str], None]) -> None:
    regions: tuple[MemoryRegion, ...] = target.memory
    if not regions:
        add("declares no memory regions")
        return
    limit = 1 << target.word_bits
    names = [r.name for r in regions]
    if len(set(names)) != len(names):
        add(f"memory region names repeat: {names}")
    for r in regions:
        if r.origin < 0 or r.length <= 0:
            add(f"memory region {r.name} has origin {r.origin:#x} and length {r.length}")
        elif r.origin + r.length > limit:
            add(f"memory region {r.name} ends beyond the {target.word_bits}-bit address space")
    ordered = sorted(regions, key=lambda r: r.origin)
    for a, b in itertools.pairwise(ordered):
        if a.origin + a.length > b.origin:
            add(f"memory regions {a.name} and {b.name} overlap")
    by_name = {r.name: r for r in regions}
    code = by_name.get("flash", regions[0])
    data = by_name.get("ram", regions[-1])
    if code.length < MIN_CODE_BYTES:
        add(f"code region {code.name} has {code.length} bytes, fewer than {MIN_CODE_BYTES}")
    if data.length < MIN_DATA_BYTES:
        add(f"data region {data.name} has {data.length} bytes, fewer than {MIN_DATA_BYTES}")


def _check_features(target: Target, add: Callable[[str], None]) -> None:
    for feature in sorted(target.features):
        if feature in KNOWN_FEATURES:
            continue
        close = difflib.get_close_matches(feature, KNOWN_FEATURES, n=1, cutoff=0.6)
        if close:
            add(f"feature '{feature}' is unknown; did you mean '{close[0]}'?")
    simd = target.simd_bits
    if simd < 0 or (simd and simd & (simd - 1)):
        add(f"simd_bits {simd} is not 0 or a power of two")
    if target.has("dsp") and simd < 32:
        add("has dsp but simd_bits < 32")
    if target.has("neon") and simd < 128:
        add("has neon but simd_bits < 128")
    if target.has("fpu-dp") and not target.has("fpu"):
        add("has fpu-dp but not fpu")
    if target.word_bits not in (32, 64):
        add(f"word_bits {target.word_bits} is not 32 or 64")
    if target.endian not in ("little", "big"):
        add(f"endian {target.endian!r} is not 'little' or 'big'")
    if target.default_clock_mhz <= 0:
        add(f"default clock {target.default_clock_mhz} MHz is not positive")


def _check_measurement(
    target: Target, runners: Mapping[str, Any], add: Callable[[str], None]
) -> None:
    if not target.isa:
        add("names no ISA support (Target.isa)")
    elif target.isa not in plugins.get_isas():
        known = ", ".join(plugins.get_isas()) or "none"
        add(f"ISA support '{target.isa}' is not registered (registered: {known})")
    if not target.runner:
        add("names no runner")
    elif target.runner not in runners:
        known = ", ".join(runners) or "none"
        add(f"runner '{target.runner}' is not registered (registered runners: {known})")
    else:
        # A runner says whether it can execute a core (``supports(target)`` returns
        # None or the reason why not), e.g. the emulator lacking a CPU model for it.
        reason = runners[target.runner].supports(target)
        if reason:
            add(f"runner '{target.runner}' cannot run it: {reason}")
    if target.cycle_model and not _cycle_model_known(target.cycle_model):
        add(f"cycle model '{target.cycle_model}' is unknown (use a versioned name)")


def _cycle_model_known(name: str) -> bool:
    """Whether a cycle model exists under this exact, versioned name.

    A bare core name would resolve to the latest version, but a target must pin the
    version so that its labels and cached results say which model made them.
    """
    return name in plugins.get_cycle_models()


def predefined_macros(target: Target) -> dict[str, str]:
    """The compiler's predefined macros under the target's flags (``cc -dM -E``)."""
    cmd = [target.toolchain.cc, *target.toolchain.cflags, "-dM", "-E", "-x", "c", "-"]
    proc = subprocess.run(cmd, input="", capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
    macros = {}
    for line in proc.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0] == "#define":
            macros[parts[1]] = parts[2] if len(parts) == 3 else ""
    return macros


def feature_disagreements(target: Target, macros: Mapping[str, str]) -> list[str]:
    """Features the target declares that its compiler does not, and the reverse."""
    isa = plugins.get_isas().get(target.isa)
    told = isa.compiler_features(macros) if isa is not None else None
    if told is None:
        return []
    implied, checked = told
    problems = []
    declared = target.features & checked
    for f in sorted(declared - implied):
        problems.append(f"declares '{f}' but the compiler flags do not enable it")
    for f in sorted(implied - declared):
        problems.append(f"the compiler flags enable '{f}' but the target does not declare it")
    pointer_bits = int(macros.get("__SIZEOF_POINTER__", "0")) * 8
    if pointer_bits and pointer_bits != target.word_bits:
        problems.append(
            f"word_bits {target.word_bits} but the compiler's pointers are {pointer_bits}"
        )
    order = macros.get("__BYTE_ORDER__")
    if order:
        little = order == "__ORDER_LITTLE_ENDIAN__"
        if little != (target.endian == "little"):
            problems.append(f"endian {target.endian} disagrees with the compiler")
    return problems


def compile_empty_function(target: Target, workdir: Path) -> Path:
    """Compile ``void f(void) {}`` with the target's flags (the toolchain driver's build)."""
    src = workdir / "conformance_empty.c"
    obj = workdir / "conformance_empty.o"
    src.write_text("void autotune_conformance_empty(void) {}\n")
    toolchain.compile_object(target, src, obj)
    return obj


def _check_compiler(target: Target, add: Callable[[str], None]) -> None:
    from autotune.platform.elf import ElfAnalysisError, read_elf

    with tempfile.TemporaryDirectory(prefix="autotune-conformance-") as tmp:
        try:
            obj = compile_empty_function(target, Path(tmp))
        except toolchain.ToolchainError as exc:
            add(f"an empty function does not compile: {exc}")
            return
        try:
            image = read_elf(obj)
        except ElfAnalysisError as exc:
            add(f"the compiled object is not a readable ELF: {exc}")
            return
        if image.word_bits != target.word_bits:
            add(f"word_bits {target.word_bits} but the compiler emits ELF{image.word_bits}")
        if image.little_endian != (target.endian == "little"):
            add(f"endian {target.endian} but the compiler emits the other byte order")
        if not any(s.name == "autotune_conformance_empty" for s in image.symbols):
            add("the compiled object lacks the empty function's symbol")
    try:
        macros = predefined_macros(target)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        add(f"cannot read the compiler's predefined macros: {exc}")
        return
    for problem in feature_disagreements(target, macros):
        add(problem)


def main(argv: list[str] | None = None) -> int:
    """``python -m autotune.platform.conformance PLUGIN [--target NAME] [--static]``."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m autotune.platform.conformance",
        description="Check that every target a loaded plugin registers builds, links, "
        "runs and computes its kernels bit-exactly.",
    )
    parser.add_argument("plugin", help="plugin name (autotune targets lists them)")
    parser.add_argument("--target", action="append", help="only this target (repeatable)")
    parser.add_argument("--static", action="store_true", help="skip building and running")
    args = parser.parse_args(argv)
    try:
        loaded = {p.name for p in plugins.plugins()}
        if args.plugin not in loaded:
            print(
                f"error: no plugin named '{args.plugin}' is loaded; loaded: "
                f"{', '.join(sorted(loaded)) or 'none'}",
                file=sys.stderr,
            )
            return 2
        plugin = plugins.plugin_manager().get_plugin(args.plugin)
        targets = targets_of(plugin)
        if args.target:
            wanted = {plugins.get_target(t).name for t in args.target}
            targets = [t for t in targets if t.name in wanted]
        if not targets:
            print(f"error: plugin '{args.plugin}' registers no target to check", file=sys.stderr)
            return 2
        failed = 0
        for target in targets:
            print(f"{target.name}: checking ...", flush=True)
            found = check_target(target, run=not args.static, notes=lambda n: print(f"  note: {n}"))
            for problem in found:
                print(f"  FAIL {problem}")
            print(f"{target.name}: {'ok' if not found else f'{len(found)} problem(s)'}", flush=True)
            failed += bool(found)
    except AutotuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(targets) - failed} of {len(targets)} target(s) conform")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
