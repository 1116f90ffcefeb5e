"""What a compiled kernel costs in memory, and the image a runner loads, read with pyelftools.

Sections are classified by their ELF flags, not their names, because linker scripts and
compilers name sections freely (``.text.kernel``, ``.rodata.str1.4``, ``.sdata``,
``.ARM.exidx``); only allocated sections (SHF_ALLOC) occupy target memory:

- executable (SHF_EXECINSTR)            -> ``code``
- no file contents (SHT_NOBITS)         -> ``bss``  (zero-initialised RAM)
- not writable                          -> ``rodata``
- writable, with contents               -> ``data`` (initialised RAM, copied from flash)

so that flash = code + rodata + data and RAM = data + bss (+ stack). ``code + rodata``,
``data`` and ``bss`` equal the ``text``, ``data`` and ``bss`` columns of binutils
``size`` (Berkeley format) for ordinary images; a test checks this against the target's
own ``size`` tool.

Stack use comes from gcc's ``-fstack-usage`` files (one frame per function, marked
static, dynamic or dynamic,bounded) and, when compiled with ``-fcallgraph-info=su``,
from the call graph that turns frames into a worst-case path.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.constants import P_FLAGS, SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from autotune.errors import AutotuneError
from autotune.platform import plugins

SECTION_KINDS = ("code", "rodata", "data", "bss")


class ElfAnalysisError(AutotuneError):
    """A file that is not a readable ELF, or a symbol or stack file that cannot be used."""


def section_kind(flags: int, sh_type: str) -> str | None:
    """The memory class of a section from its flags and type; None if it takes no memory."""
    if not flags & SH_FLAGS.SHF_ALLOC:
        return None
    if flags & SH_FLAGS.SHF_EXECINSTR:
        return "code"
    if sh_type == "SHT_NOBITS":
        return "bss"
    if not flags & SH_FLAGS.SHF_WRITE:
        return "rodata"
    return "data"


@dataclass(frozen=True)
class Section:
    """One allocated section and its memory class."""

    name: str
    kind: str  # one of SECTION_KINDS
    address: int
    size: int


@dataclass(frozen=True)
class Symbol:
    """A sized function or object, with the memory class of the section it lives in."""

    name: str
    kind: str  # "function" or "object"
    section: str
    section_kind: str  # one of SECTION_KINDS
    address: int  # where the bytes are (a function's Thumb bit cleared, see IsaSupport)
    size: int
    value: int  # the raw symbol value: for a Thumb function, address | 1 (where to jump)
    local: bool


@dataclass(frozen=True)
class Segment:
    """A PT_LOAD segment: ``data`` goes at ``vaddr``; the rest up to ``memsz`` is zero."""

    vaddr: int
    paddr: int  # load address: differs from vaddr for .data copied from flash at boot
    data: bytes
    memsz: int
    flags: str  # "r", "w", "x" letters, e.g. "rx"

    @property
    def filesz(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Sizes:
    """Bytes per memory class, and what they add up to in flash and RAM."""

    code: int
    rodata: int
    data: int
    bss: int

    @property
    def text(self) -> int:
        """What binutils ``size`` calls text: code and read-only data."""
        return self.code + self.rodata

    @property
    def flash(self) -> int:
        """Flash image: code, constants and the initial values of data."""
        return self.code + self.rodata + self.data

    @property
    def ram(self) -> int:
        """Static RAM, without stack: initialised and zeroed data."""
        return self.data + self.bss

    def ram_with_stack(self, stack: int) -> int:
        """Static RAM plus a stack of ``stack`` bytes (for example a StackBound's bytes)."""
        return self.ram + stack

    def as_dict(self) -> dict[str, int]:
        return {
            "code": self.code,
            "rodata": self.rodata,
            "data": self.data,
            "bss": self.bss,
            "flash": self.flash,
            "ram": self.ram,
        }


@dataclass(frozen=True)
class ElfImage:
    """Everything autotune reads from one ELF: sizes, symbols and the load image."""

    path: str
    machine: str  # e_machine, e.g. "EM_ARM", "EM_RISCV", "EM_AARCH64", "EM_ARC_COMPACT2"
    elf_type: str  # "ET_EXEC" for a linked image, "ET_REL" for an object
    entry: int
    word_bits: int
    little_endian: bool
    sections: tuple[Section, ...]
    symbols: tuple[Symbol, ...]
    segments: tuple[Segment, ...]
    sizes: Sizes = field(init=False)

    def __post_init__(self) -> None:
        totals = dict.fromkeys(SECTION_KINDS, 0)
        for sec in self.sections:
            totals[sec.kind] += sec.size
        object.__setattr__(self, "sizes", Sizes(**totals))

    def symbol(self, name: str) -> Symbol:
        """The global (else the first local) sized symbol called ``name``."""
        found = [s for s in self.symbols if s.name == name]
        if not found:
            raise ElfAnalysisError(f"{self.path}: no function or object named '{name}'")
        return next((s for s in found if not s.local), found[0])

    def symbol_sizes(self, kind: str | None = None) -> list[Symbol]:
        """Sized symbols, largest first; ``kind`` filters by memory class (code, rodata...)."""
        if kind is not None and kind not in SECTION_KINDS:
            raise ElfAnalysisError(f"unknown memory class '{kind}'; use one of {SECTION_KINDS}")
        chosen = [s for s in self.symbols if kind is None or s.section_kind == kind]
        return sorted(chosen, key=lambda s: (-s.size, s.name))

    def unattributed(self) -> dict[str, int]:
        """Bytes per class not covered by any sized symbol (literal pools, padding, strings)."""
        covered = dict.fromkeys(SECTION_KINDS, 0)
        for s in self.symbols:
            covered[s.section_kind] += s.size
        return {k: getattr(self.sizes, k) - covered[k] for k in SECTION_KINDS}

    def read(self, address: int, length: int) -> bytes:
        """Bytes of the load image at a run-time address (zeros in the bss part)."""
        for seg in self.segments:
            if seg.vaddr <= address and address + length <= seg.vaddr + seg.memsz:
                start = address - seg.vaddr
                chunk = seg.data[start : start + length]
                return chunk + bytes(length - len(chunk))
        raise ElfAnalysisError(
            f"{self.path}: {length} bytes at 0x{address:x} are not inside one loaded segment"
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: sizes per class and per symbol (no segment bytes)."""
        return {
            "machine": self.machine,
            "entry": self.entry,
            "sizes": self.sizes.as_dict(),
            "symbols": [
                {"name": s.name, "kind": s.kind, "class": s.section_kind, "size": s.size}
                for s in self.symbol_sizes()
            ],
        }


def _flags(p_flags: int) -> str:
    return "".join(
        letter
        for bit, letter in ((P_FLAGS.PF_R, "r"), (P_FLAGS.PF_W, "w"), (P_FLAGS.PF_X, "x"))
        if p_flags & bit
    )


def read_elf(source: str | Path | bytes) -> ElfImage:
    """Analyse an ELF file (a linked image or an object) given by path or contents."""
    if isinstance(source, bytes):
        label, raw = "<bytes>", source
    else:
        label = str(source)
        try:
            raw = Path(source).read_bytes()
        except OSError as exc:
            raise ElfAnalysisError(f"{label}: cannot read ({exc.strerror})") from exc
    try:
        elf = ELFFile(io.BytesIO(raw))
        return _analyse(label, elf)
    except ELFError as exc:
        raise ElfAnalysisError(f"{label}: not a valid ELF file ({exc})") from exc


def _analyse(label: str, elf: ELFFile) -> ElfImage:
    sections: list[Section] = []
    kinds: dict[int, tuple[str, str]] = {}  # section index -> (name, kind)
    for index, sec in enumerate(elf.iter_sections()):
        kind = section_kind(sec["sh_flags"], sec["sh_type"])
        if kind is None:
            continue
        kinds[index] = (sec.name, kind)
        sections.append(Section(sec.name, kind, sec["sh_addr"], sec["sh_size"]))

    # Bits of a function symbol that are not its address (Arm's Thumb bit): ISA data.
    code_mask = plugins.function_address_mask(elf["e_machine"])
    symbols: list[Symbol] = []
    for table in elf.iter_sections():
        if not isinstance(table, SymbolTableSection) or table.name != ".symtab":
            continue
        for sym in table.iter_symbols():
            sym_type = sym["st_info"]["type"]
            shndx = sym["st_shndx"]
            if sym_type not in ("STT_FUNC", "STT_OBJECT") or sym["st_size"] == 0:
                continue
            if not isinstance(shndx, int) or shndx not in kinds:
                continue  # undefined, absolute, common or in a non-allocated section
            value = sym["st_value"]
            sec_name, kind = kinds[shndx]
            symbols.append(
                Symbol(
                    name=sym.name,
                    kind="function" if sym_type == "STT_FUNC" else "object",
                    section=sec_name,
                    section_kind=kind,
                    address=value & code_mask if sym_type == "STT_FUNC" else value,
                    size=sym["st_size"],
                    value=value,
                    local=sym["st_info"]["bind"] == "STB_LOCAL",
                )
            )

    segments = tuple(
        Segment(
            vaddr=seg["p_vaddr"],
            paddr=seg["p_paddr"],
            data=seg.data(),
            memsz=seg["p_memsz"],
            flags=_flags(seg["p_flags"]),
        )
        for seg in elf.iter_segments()
        if seg["p_type"] == "PT_LOAD" and seg["p_memsz"] > 0
    )
    return ElfImage(
        path=label,
        machine=elf["e_machine"],
        elf_type=elf["e_type"],
        entry=elf["e_entry"],
        word_bits=elf.elfclass,
        little_endian=elf.little_endian,
        sections=tuple(sections),
        symbols=tuple(symbols),
        segments=segments,
    )


# ---------------------------------------------------------------------------------------
# Stack use


@dataclass(frozen=True)
class StackFrame:
    """One function's frame as gcc reports it in a .su file."""

    function: str
    file: str
    line: int
    bytes: int
    qualifier: str  # "static", "dynamic" or "dynamic,bounded"

    @property
    def static(self) -> bool:
        """The frame size is exact."""
        return self.qualifier == "static"

    @property
    def bounded(self) -> bool:
        """The frame never exceeds ``bytes`` (static, or dynamic with a bound gcc proved)."""
        return self.qualifier == "static" or "bounded" in self.qualifier


@dataclass(frozen=True)
class StackBound:
    """The deepest stack from one function down its call graph.

    ``exact`` is true only when every frame on every path is bounded, every callee's
    frame is known and there is no recursion; ``notes`` says why it is not.
    """

    function: str
    bytes: int
    path: tuple[str, ...]
    exact: bool
    notes: tuple[str, ...]

    def describe(self) -> str:
        head = f"{self.bytes} bytes ({' -> '.join(self.path)})"
        if self.exact:
            return head
        return f"at least {head}: " + "; ".join(self.notes)


_SU_LINE = re.compile(
    r"^(?P<file>.*):(?P<line>\d+):(?P<col>\d+):(?P<fn>.+)\t(?P<bytes>\d+)\t(?P<q>.+)$"
)
_CI_EDGE = re.compile(
    r'^edge:\s*\{\s*sourcename:\s*"(?P<src>[^"]*)"\s*targetname:\s*"(?P<dst>[^"]*)"'
)


def parse_stack_usage(text: str, source: str = "<su>") -> list[StackFrame]:
    """Frames from the text of one gcc ``.su`` file."""
    frames = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _SU_LINE.match(line)
        if m is None:
            raise ElfAnalysisError(f"{source}:{number}: not a gcc -fstack-usage line: {line!r}")
        frames.append(
            StackFrame(
                function=m["fn"],
                file=m["file"],
                line=int(m["line"]),
                bytes=int(m["bytes"]),
                qualifier=m["q"].strip(),
            )
        )
    return frames


def parse_call_graph(text: str) -> list[tuple[str, str]]:
    """(caller, callee) edges from one gcc ``-fcallgraph-info`` (.ci, VCG) file."""
    return [(m["src"], m["dst"]) for m in map(_CI_EDGE.match, text.splitlines()) if m]


@dataclass(frozen=True)
class StackUsage:
    """Frames of every function compiled, and the call edges when gcc reported them."""

    frames: Mapping[str, StackFrame]
    calls: Mapping[str, tuple[str, ...]]
    has_call_graph: bool

    def worst_frame(self) -> StackFrame | None:
        """The largest single frame (the stack need of a leaf-only program)."""
        return max(self.frames.values(), key=lambda f: f.bytes, default=None)

    def worst_case(self, function: str) -> StackBound:
        """The deepest path from ``function``: frame sizes added along calls."""
        if function not in self.frames:
            raise ElfAnalysisError(f"no stack-usage record for function '{function}'")
        notes: list[str] = []
        if not self.has_call_graph:
            notes.append("no call graph (compile with -fcallgraph-info=su); callees not counted")
        memo: dict[str, tuple[int, tuple[str, ...]]] = {}

        def visit(fn: str, active: tuple[str, ...]) -> tuple[int, tuple[str, ...]]:
            if fn in active:
                notes.append(f"recursion through {fn}: unbounded")
                return 0, ()
            if fn in memo:
                return memo[fn]
            frame = self.frames.get(fn)
            if frame is None:
                notes.append(f"{fn}: stack use unknown (not compiled with -fstack-usage)")
                return 0, (fn,)
            if not frame.bounded:
                notes.append(f"{fn}: dynamic frame, {frame.bytes} bytes is a lower bound")
            best: tuple[int, tuple[str, ...]] = (0, ())
            for callee in self.calls.get(fn, ()):
                deeper = visit(callee, (*active, fn))
                if deeper[0] > best[0] or not best[1]:
                    best = deeper
            result = (frame.bytes + best[0], (fn, *best[1]))
            memo[fn] = result
            return result

        total, path = visit(function, ())
        unique = tuple(dict.fromkeys(notes))
        return StackBound(function, total, path, exact=not unique, notes=unique)

    def as_dict(self) -> dict[str, Any]:
        return {
            name: {"bytes": f.bytes, "qualifier": f.qualifier} for name, f in self.frames.items()
        }


def read_stack_usage(paths: Iterable[str | Path]) -> StackUsage:
    """Read ``.su`` files (and the ``.ci`` file next to each, when present).

    A function appearing in several files (a static helper in two units) keeps its
    largest frame, which is what a bound needs.
    """
    frames: dict[str, StackFrame] = {}
    calls: dict[str, list[str]] = {}
    has_graph = True
    any_file = False
    for raw in paths:
        path = Path(raw)
        any_file = True
        try:
            text = path.read_text()
        except OSError as exc:
            raise ElfAnalysisError(f"{path}: cannot read stack usage ({exc.strerror})") from exc
        for frame in parse_stack_usage(text, str(path)):
            old = frames.get(frame.function)
            if old is None or frame.bytes > old.bytes:
                frames[frame.function] = frame
        ci = path.with_suffix(".ci")
        if ci.exists():
            for src, dst in parse_call_graph(ci.read_text()):
                if dst not in calls.setdefault(src, []):
                    calls[src].append(dst)
        else:
            has_graph = False
    return StackUsage(
        frames=frames,
        calls={k: tuple(v) for k, v in calls.items()},
        has_call_graph=has_graph and any_file,
    )
