"""Cross-compile freestanding kernels and the harness into an ELF for a target.

The driver is deliberately thin: it calls the Debian cross compiler named by the
target with the target's core-selection flags plus a fixed set of freestanding
flags, links against a generated linker script (no libc, libgcc only for the
helpers a core lacks, e.g. division on Cortex-M0), and records who compiled
what in a :class:`TargetFingerprint` that the results database keys on.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autotune.errors import AutotuneError
from autotune.platform import harness
from autotune.platform.target import Target

# Flags every build gets, on top of the target's own: no hosted assumptions, a
# stack-usage report per function, sections per function/object so that
# --gc-sections drops what the kernel does not use, and no PIE (Debian's Linux
# cross compilers default to it; bare-metal code is linked at fixed addresses).
COMMON_CFLAGS: tuple[str, ...] = (
    "-ffreestanding",
    "-fstack-usage",
    "-ffunction-sections",
    "-fdata-sections",
    "-fno-pie",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
)
COMMON_LDFLAGS: tuple[str, ...] = (
    "-nostdlib",
    "-nostartfiles",
    "-static",
    "-no-pie",
    "-Wl,--gc-sections",
    "-Wl,--build-id=none",
    "-Wl,--no-warn-rwx-segments",
)
DEFAULT_OPT = "-O2"
COMPILE_TIMEOUT_S = 120


class ToolchainError(AutotuneError):
    """Something went wrong building code for a target."""


class ToolchainMissingError(ToolchainError):
    """The target's cross compiler is not installed."""

    def __init__(self, tool: str, package: str) -> None:
        self.tool = tool
        self.package = package
        super().__init__(f"{tool} not found; install it with `apt-get install {package}`")


class CompileError(ToolchainError):
    """The compiler or linker rejected the input; carries its first error line."""

    def __init__(self, stage: str, source: str, first_error: str, output: str) -> None:
        self.stage = stage
        self.source = source
        self.first_error = first_error
        self.output = output
        super().__init__(f"{stage} failed for {source}: {first_error}")

    def overflows(self) -> dict[str, int]:
        """Memory region -> bytes the link needed beyond it (GNU ld's own count)."""
        return {
            m.group(1): int(m.group(2))
            for m in re.finditer(r"region [`'](\S+?)' overflowed by (\d+) bytes", self.output)
        }


@dataclass(frozen=True)
class CompilerIdentity:
    """Who compiles: the resolved command and the first line of ``--version``."""

    command: str
    path: str
    version_line: str
    version: str


@dataclass(frozen=True)
class TargetFingerprint:
    """What a measurement depends on: the core, the exact compiler and all flags."""

    core: str
    toolchain: str
    toolchain_version: str
    flags: tuple[str, ...]

    def key(self) -> str:
        """A short stable digest of the whole fingerprint, for database keys."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "flags": list(self.flags), "key": self.key()}


@dataclass(frozen=True)
class BuildResult:
    """An ELF and what it was built from and with."""

    elf: Path
    objects: tuple[Path, ...]
    stack_usage: tuple[Path, ...]  # the .su files of the kernel sources
    linker_script: Path
    fingerprint: TargetFingerprint
    commands: tuple[tuple[str, ...], ...] = field(default=())


def require_compiler(target: Target) -> str:
    """Absolute path of the target's compiler, or ToolchainMissingError naming the package."""
    tc = target.toolchain
    path = shutil.which(tc.cc)
    if path is None:
        raise ToolchainMissingError(tc.cc, tc.debian_package)
    return path


def toolchain_available(target: Target) -> bool:
    return shutil.which(target.toolchain.cc) is not None


@functools.lru_cache(maxsize=64)
def _identity_for(path: str, mtime_ns: int) -> tuple[str, str]:
    proc = subprocess.run(
        [path, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    first = (
        (proc.stdout or proc.stderr).splitlines()[0].strip() if proc.stdout or proc.stderr else ""
    )
    # The version proper is the first dotted number after the package note in
    # parentheses, e.g. "arm-none-eabi-gcc (15:12.2.rel1-1) 12.2.1 20221205".
    tail = first.rsplit(")", 1)[-1]
    match = re.search(r"\d+\.\d+(?:\.\d+)?", tail) or re.search(r"\d+\.\d+(?:\.\d+)?", first)
    return first, match.group(0) if match else ""


def compiler_identity(target: Target) -> CompilerIdentity:
    """``cc --version`` for the target's compiler, run once per installed binary."""
    path = require_compiler(target)
    real = os.path.realpath(path)
    line, version = _identity_for(real, os.stat(real).st_mtime_ns)
    return CompilerIdentity(target.toolchain.cc, real, line, version)


def build_flags(
    target: Target, opt: str = DEFAULT_OPT, extra: Sequence[str] = ()
) -> tuple[str, ...]:
    """The full compile flag list for kernel sources, in command-line order."""
    return (*target.toolchain.cflags, opt, *COMMON_CFLAGS, *extra)


def fingerprint(
    target: Target, opt: str = DEFAULT_OPT, extra_cflags: Sequence[str] = ()
) -> TargetFingerprint:
    """The fingerprint of builds for ``target`` with these flags (runs ``cc --version`` once)."""
    ident = compiler_identity(target)
    flags = (*build_flags(target, opt, extra_cflags), *target.toolchain.ldflags, *COMMON_LDFLAGS)
    return TargetFingerprint(target.name, ident.command, ident.version_line, flags)


def _first_error(output: str) -> str:
    """The first line that says what is wrong (collect2's summary line says nothing)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    wanted = re.compile(r"\berror\b|undefined reference|\bfatal\b|cannot find", re.IGNORECASE)
    for line in lines:
        if wanted.search(line) and not line.startswith("collect2"):
            return line
    return lines[0] if lines else "no diagnostic from the compiler"


def _run(cmd: list[str], stage: str, source: str) -> None:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise CompileError(stage, source, f"timed out after {COMPILE_TIMEOUT_S} s", "") from exc
    if proc.returncode != 0:
        output = proc.stderr + proc.stdout
        raise CompileError(stage, source, _first_error(output), output)


def compile_object(
    target: Target,
    source: Path,
    output: Path,
    opt: str = DEFAULT_OPT,
    extra_cflags: Sequence[str] = (),
    include_dirs: Sequence[Path] = (),
) -> list[str]:
    """Compile one C or assembly file; returns the command (for provenance)."""
    cc = require_compiler(target)
    includes = [f"-I{d}" for d in (harness.harness_dir(), *include_dirs)]
    cmd = [
        cc,
        *build_flags(target, opt, extra_cflags),
        *includes,
        "-c",
        str(source),
        "-o",
        str(output),
    ]
    _run(cmd, "compile", source.name)
    return cmd


def _harness_objects(target: Target, opt: str, work: Path) -> list[Path]:
    """Startup, epilogue and builtins objects, cached across builds.

    The key covers the compiler identity, the flags and the harness sources, so
    a changed compiler or harness never reuses a stale object. Objects are
    written under a temporary name and renamed, so concurrent builds are safe.
    """
    ident = compiler_identity(target)
    sources = [
        (harness.startup_source(target), ()),
        (harness.epilogue_source(), ()),
        (
            harness.harness_dir() / "builtins.c",
            ("-fno-builtin", "-fno-tree-loop-distribute-patterns"),
        ),
    ]
    digest = hashlib.sha256()
    digest.update(ident.path.encode() + ident.version_line.encode())
    digest.update(json.dumps(build_flags(target, opt)).encode())
    for src, extra in sources:
        digest.update(src.read_bytes() + json.dumps(extra).encode())
    cache = (
        Path(tempfile.gettempdir()) / f"autotune-harness-{os.getuid()}" / digest.hexdigest()[:20]
    )
    cache.mkdir(parents=True, exist_ok=True)
    objects = []
    for src, extra in sources:
        obj = cache / f"{src.stem}.o"
        if not obj.exists():
            tmp = work / f"{src.stem}.harness.o"
            compile_object(target, src, tmp, opt, extra)
            cache.mkdir(parents=True, exist_ok=True)  # survives a /tmp clean-up meanwhile
            os.replace(tmp, obj)
            su = tmp.with_suffix(".su")
            if su.exists():
                su.unlink()
        objects.append(obj)
    return objects


def link(
    target: Target,
    objects: Sequence[Path],
    output: Path,
    script: Path,
    opt: str = DEFAULT_OPT,
) -> list[str]:
    """Link objects with the generated script; libgcc supplies core-specific helpers."""
    cc = require_compiler(target)
    cmd = [
        cc,
        *target.toolchain.cflags,
        opt,
        *COMMON_LDFLAGS,
        *target.toolchain.ldflags,
        "-T",
        str(script),
        *map(str, objects),
        "-lgcc",
        "-o",
        str(output),
    ]
    _run(cmd, "link", output.name)
    return cmd


def build_elf(
    target: Target,
    sources: Sequence[Path],
    out_dir: Path,
    *,
    name: str = "kernel",
    opt: str = DEFAULT_OPT,
    extra_cflags: Sequence[str] = (),
    include_dirs: Sequence[Path] = (),
    stack_size: int = harness.DEFAULT_STACK_SIZE,
    source_opt: Callable[[Path], str] | None = None,
) -> BuildResult:
    """Compile ``sources`` (which define ``autotune_main``) with the harness into one ELF.

    ``source_opt`` gives a source file its own optimisation level (a library compiles
    each tuned file exactly as its variant was measured); the others use ``opt``.
    """
    if not sources:
        raise ToolchainError("nothing to build: no source files given")
    for src in sources:
        if not Path(src).is_file():
            raise ToolchainError(f"source file {src} does not exist")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(target, opt, extra_cflags)
    commands: list[tuple[str, ...]] = []
    objects: list[Path] = []
    stack_usage: list[Path] = []
    for i, src in enumerate(sources):
        src = Path(src)
        obj = out_dir / f"{i:02d}_{src.stem}.o"
        level = source_opt(src) if source_opt is not None else opt
        commands.append(tuple(compile_object(target, src, obj, level, extra_cflags, include_dirs)))
        objects.append(obj)
        su = obj.with_suffix(".su")
        if su.exists():
            stack_usage.append(su)
    objects += _harness_objects(target, opt, out_dir)
    script = out_dir / f"{name}.ld"
    script.write_text(harness.linker_script(target, stack_size))
    elf = out_dir / f"{name}.elf"
    commands.append(tuple(link(target, objects, elf, script, opt)))
    return BuildResult(elf, tuple(objects), tuple(stack_usage), script, fp, tuple(commands))
