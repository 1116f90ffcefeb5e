"""Parts: a core in a real chip, with the memory system that timing depends on.

A core's cycle model (``platform/cycles``) assumes memory that never waits. A
:class:`Part` adds what a chip puts around the core: flash wait states at its
clock, a flash accelerator or instruction cache, a data cache, TCM and SRAM
regions, and where code, constants and the arena are placed. The emulator
charges those stalls on top of the core model (:class:`MemoryTimer`), so code
and weight size cost what they cost on that part.

Parts are registered by plugins through ``register_targets`` (a plugin calls
``register(part)`` next to its targets); each target family's ``parts.py`` holds its
built-in presets, each citing the manual its figures come from; they are looked up
with ``plugins.get_part`` (a name, a board name or a calibrated ``.json`` file). A calibrated preset is a
JSON file of overrides on top of a built-in one (:func:`load_part_file`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.errors import AutotuneError
from autotune.platform.target import MemoryRegion, Target

PLACEMENT_KEYS = ("code", "rodata", "data")
POLICIES = ("lru", "fifo")


class PartError(AutotuneError):
    """A part preset that is malformed, unknown or does not fit the target or the program."""


@dataclass(frozen=True)
class Cache:
    """One cache, flash accelerator or XIP cache; memories share it by name (a unified cache)."""

    name: str
    size: int  # bytes
    line: int  # bytes per line
    ways: int  # associativity; size // line means fully associative
    miss_penalty: int  # core stall cycles per line miss, at the part's clock
    policy: str = "lru"

    @property
    def sets(self) -> int:
        return self.size // (self.line * self.ways)


@dataclass(frozen=True)
class Memory:
    """A region of the part's memory map and what an access to it costs."""

    name: str  # flash, sram1, itcm, dtcm, xip-flash, ...
    kind: str  # flash, sram, tcm, external
    size: int
    wait_states: int = 0  # extra cycles per uncached access (per load; per 4 fetched bytes)
    icache: str | None = None  # Cache.name in front of instruction fetches from here
    dcache: str | None = None  # Cache.name in front of data reads from here


@dataclass(frozen=True)
class Part:
    """A chip: which core, at what clock, with which memories, caches and placement."""

    name: str
    core: str  # the target it is a part of: "cortex-m4"
    clock_mhz: float
    memories: tuple[Memory, ...] = ()
    caches: tuple[Cache, ...] = ()
    # What lives where: code (instruction fetches), rodata (constant reads: weights,
    # tables, literal pools), data (arena, state, stack); each the memories to try in
    # order, the first large enough is used.
    placement: dict[str, tuple[str, ...]] = field(default_factory=dict)
    version: int = 1
    reference: str = ""  # the manual (document number, section) the figures come from
    boards: tuple[str, ...] = ()  # board names that select this part
    description: str = ""

    @property
    def tag(self) -> str:
        """How figures name it: ``stm32l4r5 v1 @120 MHz``."""
        return f"{self.name} v{self.version} @{self.clock_mhz:g} MHz"

    @property
    def zero_wait(self) -> bool:
        """True for the core-only model: no memory costs anything."""
        return not self.caches and all(m.wait_states == 0 for m in self.memories)

    def memory(self, name: str) -> Memory:
        for m in self.memories:
            if m.name == name:
                return m
        raise PartError(f"part {self.name}: no memory named '{name}'")

    def cache(self, name: str) -> Cache:
        for c in self.caches:
            if c.name == name:
                return c
        raise PartError(f"part {self.name}: no cache named '{name}'")

    def place(self, what: str, nbytes: int) -> Memory | None:
        """The memory ``what`` (code, rodata, data) of ``nbytes`` goes to; None: zero-wait."""
        names = self.placement.get(what, ())
        if not names:
            return None
        for name in names:
            m = self.memory(name)
            if nbytes <= m.size:
                return m
        raise PartError(
            f"part {self.name}: {nbytes} bytes of {what} fit none of {', '.join(names)}"
        )

    def capacity(self) -> tuple[int, int]:
        """(flash, RAM): the bytes of the memories code and constants may be placed in,
        and of those data may be placed in (0 where the placement names none)."""

        def total(keys: tuple[str, ...]) -> int:
            names = dict.fromkeys(n for k in keys for n in self.placement.get(k, ()))
            return sum(self.memory(n).size for n in names)

        return total(("code", "rodata")), total(("data",))

    def cache_line(self, what: str) -> int:
        """The largest cache line in front of the memories ``what`` (code, rodata, data) may
        be placed in: instruction caches for code, data caches otherwise (0: none)."""
        memories = [self.memory(n) for n in self.placement.get(what, ())]
        caches = [m.icache if what == "code" else m.dcache for m in memories]
        return max((self.cache(c).line for c in caches if c), default=0)

    def check(self) -> list[str]:
        """What is wrong with this preset (empty when it is consistent)."""
        problems = []
        if self.clock_mhz <= 0:
            problems.append(f"clock {self.clock_mhz} MHz")
        names = {c.name for c in self.caches}
        for c in self.caches:
            if c.policy not in POLICIES:
                problems.append(f"cache {c.name}: policy '{c.policy}' not one of {POLICIES}")
            if c.line <= 0 or c.line & (c.line - 1) or c.ways <= 0:
                problems.append(f"cache {c.name}: line {c.line} and ways {c.ways}")
            elif c.size % (c.line * c.ways) or c.miss_penalty < 0:
                problems.append(f"cache {c.name}: size {c.size} is not sets x ways x line")
        for m in self.memories:
            for ref in (m.icache, m.dcache):
                if ref is not None and ref not in names:
                    problems.append(f"memory {m.name}: unknown cache '{ref}'")
            if m.wait_states < 0:
                problems.append(f"memory {m.name}: wait states {m.wait_states}")
        known = {m.name for m in self.memories}
        for key, where in self.placement.items():
            if key not in PLACEMENT_KEYS:
                problems.append(f"placement '{key}' not one of {PLACEMENT_KEYS}")
            problems += [f"placement {key}: unknown memory '{w}'" for w in where if w not in known]
        return problems


CORE_ONLY = Part(
    name="core-only",
    core="*",
    clock_mhz=1,
    reference="no memory system: every access is zero-wait (the core models alone)",
    boards=("zero-wait",),
    description="the core's timing model alone, with zero-wait memory, for comparison",
)


def apply_part(target: Target, part: Part | None) -> Target:
    """``target`` timed on ``part``: its cycle model name carries the part, so the
    results DB keys and every label say which part and model version a figure is for.

    The core-only part (zero-wait) leaves the target as it is: that is the core model.
    """
    if part is None or part.zero_wait:
        return target
    if part.core not in (target.name, *target.aliases):
        raise PartError(
            f"part {part.name} has a {part.core} core, not {target.name}; "
            f"use --target {part.core} or a part with a {target.name}"
        )
    if not target.cycle_model:
        raise PartError(f"target {target.name} has no cycle model to time part {part.name} with")
    core = target.cycle_model.split(",", 1)[0]
    # Every function starts on an instruction-cache line: a kernel touches the same
    # lines measured alone as inside the library, wherever the linker puts it (a loop
    # one line longer than the cache thrashes it). A compile flag, so it is in the
    # fingerprint, the library's flags and every emitted build file.
    toolchain = target.toolchain
    if part.cache_line("code") > 1:
        flag = f"-falign-functions={part.cache_line('code')}"
        toolchain = dataclasses.replace(toolchain, cflags=(*toolchain.cflags, flag))
    return dataclasses.replace(
        target,
        cycle_model=f"{core}, {part.tag}",
        default_clock_mhz=part.clock_mhz,
        part=part,
        toolchain=toolchain,
        memory=_part_memory(target, part),
    )


def _part_memory(target: Target, part: Part) -> tuple[MemoryRegion, ...]:
    """The target's map with its code and data regions sized as the part's memories: a
    library links only where it fits the chip. Origins stay, so code and data sit
    where they were measured."""
    if not target.memory:
        return target.memory
    code, data = target.code_and_data()
    flash, ram = part.capacity()
    sizes = {id(code): flash, id(data): ram}
    return tuple(
        dataclasses.replace(r, length=sizes[id(r)]) if sizes.get(id(r)) else r
        for r in target.memory
    )


# ------------------------------------------------------------------ calibrated files


def load_part_file(path: str | Path, known: dict[str, Part]) -> Part:
    """A calibrated preset: JSON overrides on top of a registered part.

    ``{"base": "stm32l4r5", "name": "stm32l4r5-board7", "version": 2,
    "caches": {"art-i": {"miss_penalty": 14}}, "memories": {"flash": {"wait_states": 5}},
    "calibrated_from": "..."}``
    """
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise PartError(f"part file {p}: cannot read it as JSON ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("base") not in known:
        raise PartError(f"part file {p}: 'base' must name a known part ({', '.join(known)})")
    base = known[raw["base"]]
    caches = _override(base.caches, raw.get("caches", {}), ("miss_penalty",), p)
    memories = _override(base.memories, raw.get("memories", {}), ("wait_states",), p)
    part = dataclasses.replace(
        base,
        name=str(raw.get("name", f"{base.name}+cal")),
        version=int(raw.get("version", base.version)),
        caches=caches,
        memories=memories,
        reference=f"{base.reference}; calibrated: {raw.get('calibrated_from', p.name)}",
        boards=(),
    )
    problems = part.check()
    if problems:
        raise PartError(f"part file {p}: {'; '.join(problems)}")
    return part


def _override(items: Sequence[Any], changes: Any, fields: Iterable[str], path: Path) -> tuple:
    if not isinstance(changes, dict):
        raise PartError(f"part file {path}: overrides must be an object by name")
    by_name = {item.name: item for item in items}
    for name, values in changes.items():
        if name not in by_name or not isinstance(values, dict):
            raise PartError(f"part file {path}: no '{name}' to override in the base part")
        bad = [k for k in values if k not in fields]
        if bad or not all(isinstance(v, int) and v >= 0 for v in values.values()):
            raise PartError(f"part file {path}: '{name}' may only set {', '.join(fields)}")
        by_name[name] = dataclasses.replace(by_name[name], **values)
    return tuple(by_name[item.name] for item in items)


# ------------------------------------------------------------------------ simulation


class CacheSim:
    """A set-associative cache's tags, LRU or FIFO; answers hit or miss per address."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.shift = cache.line.bit_length() - 1
        self.nsets = cache.sets
        self.ways = cache.ways
        self.lru = cache.policy == "lru"
        self.sets: list[list[int]] = [[] for _ in range(self.nsets)]
        self.hits = 0
        self.misses = 0

    def access(self, address: int) -> bool:
        line = address >> self.shift
        ways = self.sets[line % self.nsets]
        if line in ways:
            if self.lru and ways[-1] != line:
                ways.remove(line)
                ways.append(line)
            self.hits += 1
            return True
        ways.append(line)
        if len(ways) > self.ways:
            del ways[0]
        self.misses += 1
        return False


@dataclass
class _Side:
    """How one kind of access (fetch or read) to one address range is charged."""

    lo: int
    hi: int
    cache: CacheSim | None
    penalty: int
    wait_states: int


class MemoryTimer:
    """The stalls a part adds to the core model, for one run of one program.

    ``regions`` are the program's (lo, hi, kind) address ranges, kind one of
    code/data as the target's memory map lays them out: instruction fetches from
    a code range are charged as the part's ``code`` placement, data reads from it
    as ``rodata`` (weights, tables, literal pools), reads from a data range as
    ``data``. Caches start cold. Stores cost nothing extra (write buffers).
    """

    def __init__(self, part: Part, regions: Sequence[tuple[int, int, str, int]]) -> None:
        self.part = part
        self.sims = {c.name: CacheSim(c) for c in part.caches}
        self.fetch: list[_Side] = []
        self.read: list[_Side] = []
        for lo, hi, kind, used in regions:
            if kind == "code":
                mem = part.place("code", used)
                if mem is not None:
                    self.fetch.append(self._side(lo, hi, mem, mem.icache))
                mem = part.place("rodata", used)
                if mem is not None:
                    self.read.append(self._side(lo, hi, mem, mem.dcache))
            else:
                mem = part.place("data", used)
                if mem is not None:
                    self.read.append(self._side(lo, hi, mem, mem.dcache))
        self.fetch = [s for s in self.fetch if s.cache or s.wait_states]
        self.read = [s for s in self.read if s.cache or s.wait_states]

    def _side(self, lo: int, hi: int, mem: Memory, cache: str | None) -> _Side:
        sim = self.sims[cache] if cache else None
        penalty = sim.cache.miss_penalty if sim else 0
        return _Side(lo, hi, sim, penalty, mem.wait_states)

    def fetch_block(self, address: int, size: int) -> int:
        """Stall cycles to fetch the ``size`` bytes of a basic block at ``address``."""
        for side in self.fetch:
            if side.lo <= address < side.hi:
                if side.cache is None:
                    return side.wait_states * ((size + 3) // 4)
                sim = side.cache
                shift = sim.shift
                stall = 0
                for line in range(address >> shift, ((address + size - 1) >> shift) + 1):
                    if not sim.access(line << shift):
                        stall += side.penalty
                return stall
        return 0

    def read_data(self, address: int, size: int) -> int:
        """Stall cycles for one data read."""
        for side in self.read:
            if side.lo <= address < side.hi:
                if side.cache is None:
                    return side.wait_states
                sim = side.cache
                stall = 0 if sim.access(address) else side.penalty
                end = address + size - 1
                if (end >> sim.shift) != (address >> sim.shift) and not sim.access(end):
                    stall += side.penalty
                return stall
        return 0

    def read_ranges(self) -> list[tuple[int, int]]:
        """Address ranges whose data reads cost something (the emulator hooks only these)."""
        return [(s.lo, s.hi) for s in self.read]

    def stats(self) -> dict[str, dict[str, int]]:
        return {name: {"hits": s.hits, "misses": s.misses} for name, s in self.sims.items()}
