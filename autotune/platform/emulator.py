"""The embedded default runner: execute a target ELF in Unicorn, count it, time it.

Instruction counts are exact: Unicorn runs the real machine code and a
``UC_HOOK_BLOCK`` callback adds, per executed basic block, the instruction count
and static cycle cost computed once for that block (capstone decode + the
target's cycle model). No Python runs per instruction. The region measured is
from ``autotune_main`` (entered with a fresh stack and its return address set to
``autotune_stop``) to ``autotune_stop``; QEMU measures the same region.

Failures are typed: :class:`EmulatorFault` (unmapped or protected access,
invalid instruction, exception; with the PC and the reason) and
:class:`EmulatorTimeout` (instruction budget or wall-clock limit exhausted).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from autotune.errors import AutotuneError
from autotune.platform import harness, plugins
from autotune.platform.cycles.base import CycleModel
from autotune.platform.isa import Decoder, EmulatorCpu
from autotune.platform.parts import MemoryTimer
from autotune.platform.runner import (
    DEFAULT_BUDGET,
    RunError,
    Runner,
    RunnerCapabilities,
    RunnerUnavailableError,
    RunResult,
)
from autotune.platform.target import Target

RUNNER_NAME = "unicorn"
# Unicorn is also given an instruction count a little past the budget (the block hook
# stops at the budget itself): a hard stop, and it keeps Unicorn 2.1's MIPS engine
# from crashing on basic blocks longer than about 370 instructions.
COUNT_SLACK = 1_000_000


class ElfLoadError(RunError):
    """The ELF does not fit the target (wrong machine, outside memory, missing symbols)."""


class BufferMismatchError(RunError):
    """An input or output buffer named by the caller does not fit the ELF."""


class EmulatorFault(RunError):
    """The program faulted: bad memory access, invalid instruction or an exception."""

    def __init__(self, pc: int, reason: str, address: int | None = None) -> None:
        self.pc = pc
        self.reason = reason
        self.address = address
        super().__init__(f"fault at pc {pc:#x}: {reason}")


class EmulatorTimeout(RunError):
    """The program ran past its instruction budget or wall-clock limit (a runaway variant)."""

    def __init__(
        self, budget: int, instructions: int, pc: int, why: str = "instruction budget"
    ) -> None:
        self.budget = budget
        self.instructions = instructions
        self.pc = pc
        super().__init__(
            f"timeout: {why} of {budget} instructions exhausted after {instructions} "
            f"instructions (pc {pc:#x})"
        )


# --------------------------------------------------------------------------- ELF


@dataclass(frozen=True)
class Symbol:
    name: str
    value: int
    size: int
    is_func: bool


@dataclass(frozen=True)
class ElfImage:
    """The parts of an ELF an executor needs: loadable segments and symbols."""

    path: Path
    machine: str  # pyelftools e_machine, e.g. EM_ARM
    elfclass: int
    entry: int
    segments: tuple[tuple[int, bytes, int], ...]  # (vaddr, file bytes, memsz)
    symbols: dict[str, Symbol]

    def symbol(self, name: str) -> Symbol:
        sym = self.symbols.get(name)
        if sym is None:
            raise ElfLoadError(f"{self.path.name}: no symbol {name!r}")
        return sym

    def buffer_names(self) -> list[str]:
        return sorted(n for n, s in self.symbols.items() if not s.is_func and s.size > 0)


def load_elf(path: Path | str) -> ElfImage:
    """Parse an ELF once per (path, modification time)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise ElfLoadError(f"cannot read ELF {p}: {exc.strerror}") from exc
    return _load_elf(str(p), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=32)
def _load_elf(path: str, _mtime: int, _size: int) -> ElfImage:
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            segments = tuple(
                (seg["p_vaddr"], seg.data(), seg["p_memsz"])
                for seg in elf.iter_segments()
                if seg["p_type"] == "PT_LOAD" and seg["p_memsz"] > 0
            )
            symtab = elf.get_section_by_name(".symtab")
            symbols: dict[str, Symbol] = {}
            if symtab is not None:
                for s in symtab.iter_symbols():
                    if s.name and s["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT", "STT_NOTYPE"):
                        symbols.setdefault(
                            s.name,
                            Symbol(
                                s.name,
                                s["st_value"],
                                s["st_size"],
                                s["st_info"]["type"] == "STT_FUNC",
                            ),
                        )
            return ElfImage(
                Path(path), elf["e_machine"], elf.elfclass, elf["e_entry"], segments, symbols
            )
    except ELFError as exc:
        raise ElfLoadError(f"{path}: not a valid ELF file ({exc})") from exc


# ----------------------------------------------------------------------- machine


@dataclass(frozen=True)
class Machine:
    """How Unicorn and the timing model's decoder see one target."""

    uc_arch: int
    uc_mode: int
    uc_cpu: int
    isa: str  # the target's IsaSupport name
    elf_machine: str
    pc: int
    sp: int
    lr: int
    gp: int | None = None
    cpu: EmulatorCpu | None = None


def machine_for(target: Target) -> Machine:
    """Unicorn engine, CPU model and registers for a target, from its ISA support;
    RunnerUnavailableError when the ISA support has no emulator for it."""
    try:
        isa = plugins.isa_of(target)
    except AutotuneError as exc:
        raise RunnerUnavailableError(
            f"the unicorn runner cannot execute {target.name}: {exc}"
        ) from None
    cpu = isa.emulator(target)
    if cpu is None:
        raise RunnerUnavailableError(
            f"the unicorn runner cannot execute {target.name} ({target.arch}); "
            f"Unicorn has no {isa.name} CPU"
        )
    return Machine(
        cpu.arch, cpu.mode, cpu.cpu, isa.name, isa.elf_machine, cpu.pc, cpu.sp, cpu.lr, cpu.gp, cpu
    )


def _page_align(lo: int, hi: int, page: int = 0x1000) -> tuple[int, int]:
    return lo & ~(page - 1), (hi + page - 1) & ~(page - 1)


# ------------------------------------------------------------------------ engine


def _attribute(
    image: ElfImage,
    cache: Mapping[int, tuple[int, int, int, int, int, bool]],
    executed: Mapping[int, int],
    extra_cycles: Mapping[int, int],
) -> dict[str, tuple[int, int]]:
    """Per-function (instructions, cycles) from per-block execution counts."""
    import bisect

    funcs = sorted(
        (s.value & ~1, s.size, name) for name, s in image.symbols.items() if s.is_func and s.size
    )
    starts = [f[0] for f in funcs]
    out: dict[str, list[int]] = {}
    for address, count in executed.items():
        info = cache[address]
        k = bisect.bisect_right(starts, address) - 1
        name = funcs[k][2] if k >= 0 and address < funcs[k][0] + funcs[k][1] else "?"
        slot = out.setdefault(name, [0, 0])
        slot[0] += count * info[1]
        slot[1] += count * info[2] + extra_cycles.get(address, 0)
    return {name: (v[0], v[1]) for name, v in sorted(out.items(), key=lambda kv: -kv[1][1])}


def _ends_in_call(insns) -> bool:
    """The block's last instruction (or the one before a delay slot) is a call."""
    return any(i.call for i in insns[-2:])


def _function_finder(image: ElfImage):
    """(address -> name of the function containing it or "?", the functions' entry addresses)."""
    import bisect

    funcs = sorted(
        (s.value & ~1, s.size, name) for name, s in image.symbols.items() if s.is_func and s.size
    )
    starts = [f[0] for f in funcs]

    @functools.cache
    def find(address: int) -> str:
        k = bisect.bisect_right(starts, address) - 1
        return funcs[k][2] if k >= 0 and address < funcs[k][0] + funcs[k][1] else "?"

    return find, frozenset(starts)


def _inclusive(per_stack: Mapping[tuple[str, ...], list[int]]) -> dict[str, tuple[int, int]]:
    """Per function: (instructions, cycles) while it was on the call stack."""
    out: dict[str, list[int]] = {}
    for stack, (insns, cycles) in per_stack.items():
        for name in set(stack):
            slot = out.setdefault(name, [0, 0])
            slot[0] += insns
            slot[1] += cycles
    return {name: (v[0], v[1]) for name, v in sorted(out.items(), key=lambda kv: -kv[1][1])}


class Emulator:
    """One target's emulator: machine, memory map and cycle model; one ``run`` per ELF."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.machine = machine_for(target)
        self.cpu: EmulatorCpu = self.machine.cpu  # type: ignore[assignment]
        self.model: CycleModel | None = (
            plugins.get_cycle_model(target.cycle_model) if target.cycle_model else None
        )
        decoder = plugins.isa_of(target).decoder()
        if decoder is None:
            raise RunnerUnavailableError(
                f"the unicorn runner cannot count {target.name}: ISA {target.isa} has no decoder"
            )
        self.decoder: Decoder = decoder
        self.part = target.part if self.model is not None else None

    # Each block's static cost; the tuple layout is the hot path's contract:
    # (size, instructions, cycles, taken_delta, entry_extra, ends_in_call).
    def _block_info(
        self, uc, address: int, size: int
    ) -> tuple[tuple[int, int, int, int, int, bool], tuple[int, str] | None]:
        code = bytes(uc.mem_read(self.cpu.phys(address), size))
        state = self.cpu.decode_state(uc) if self.cpu.decode_state is not None else 0
        insns = self.decoder.decode(code, address, state)
        decoded = sum(i.size for i in insns)
        if decoded != size:
            bad = address + decoded
            raw = code[decoded : decoded + 4].hex()
            why = f"invalid instruction (bytes {raw}): not decodable as {self.machine.isa}"
            return (size, 0, 0, 0, 0, False), (bad, why)
        problem = None
        if self.model is not None:
            for ins in insns:
                why = self.model.check(ins)
                if why:
                    problem = (ins.address, f"invalid instruction '{ins.text}': {why}")
                    break
            cost = self.model.block_cost(insns)
            return (
                size,
                len(insns),
                cost.cycles,
                cost.taken_delta,
                cost.entry_extra,
                _ends_in_call(insns),
            ), problem
        return (size, len(insns), 0, 0, 0, _ends_in_call(insns)), problem

    def run(
        self,
        elf_path: Path | str,
        inputs: Mapping[str, bytes] | None = None,
        outputs: Mapping[str, int] | None = None,
        budget: int = DEFAULT_BUDGET,
        wall_timeout_s: float | None = None,
        profile: bool = False,
    ) -> RunResult:
        """Run ``autotune_main`` once; write ``inputs`` before, read ``outputs`` after.

        profile=True also attributes instructions and cycles to the functions of the ELF
        (``extra["functions"]``: name -> (instructions, cycles)); the totals are unchanged.
        ``extra["inclusive"]`` gives the same per function including its callees.
        """
        import unicorn as uc_mod
        from unicorn import (
            UC_HOOK_BLOCK,
            UC_HOOK_INTR,
            UC_HOOK_MEM_PROT,
            UC_HOOK_MEM_READ,
            UC_HOOK_MEM_UNMAPPED,
            Uc,
            UcError,
        )

        if budget <= 0:
            raise RunError(f"instruction budget must be positive, got {budget}")
        started = time.perf_counter()
        image = load_elf(elf_path)
        m = self.machine
        if image.machine != m.elf_machine:
            raise ElfLoadError(
                f"{image.path.name} is {image.machine}, not code for {self.target.name} ({m.elf_machine})"
            )
        uc = Uc(m.uc_arch, m.uc_mode, m.uc_cpu)
        self._map_memory(uc, image)
        entry = image.symbol(harness.ENTRY_SYMBOL)
        stop = image.symbol(harness.STOP_SYMBOL)
        stop_addr = stop.value & self.cpu.address_mask
        self._write_inputs(uc, image, inputs or {})
        self._init_cpu(uc, image, stop.value)

        cache: dict[int, tuple[int, int, int, int, int, bool]] = {}
        fault: list[tuple[int, str, int | None]] = []
        n_insn = 0
        n_cyc = 0
        fall = entry.value & self.cpu.address_mask
        taken = 0
        over = False
        block_info = self._block_info
        executed: dict[int, int] = {}
        extra_cycles: dict[int, int] = {}
        # Inclusive profile: a shadow call stack (return address, callee) kept from
        # the blocks that end in a call; every block's cost goes to the tuple of
        # functions on the stack when it runs (callees such as libgcc helpers count
        # in their caller's inclusive figure).
        calls: list[int] = []
        frames: tuple[str, ...] = ()
        inclusive: dict[tuple[str, ...], list[int]] = {}
        function_of, entries = _function_finder(image) if profile else (None, frozenset())
        called = False
        # The part's memory system: fetch stalls per block, read stalls per load.
        timer = MemoryTimer(self.part, self._regions(image)) if self.part is not None else None
        fetch_stall = timer.fetch_block if timer is not None else None
        read_stall = 0
        current = 0

        def on_read(uc, access, address, size, value, _ud):
            nonlocal read_stall
            stall = timer.read_data(address, size)
            if stall:
                read_stall += stall
                if profile:
                    inclusive[frames][1] += stall
                    extra_cycles[current] = extra_cycles.get(current, 0) + stall

        def on_block(uc, address, size, _ud):
            nonlocal n_insn, n_cyc, fall, taken, over, frames, called, current
            info = cache.get(address)
            if info is None or info[0] != size:
                info, problem = block_info(uc, address, size)
                if problem:
                    fault.append((problem[0], problem[1], None))
                    uc.emu_stop()
                    return
                cache[address] = info
            cyc = info[2]
            extra = taken + info[4] if address != fall else 0
            if fetch_stall is not None:
                extra += fetch_stall(address, size)
            if extra:
                cyc += extra
                if profile:
                    extra_cycles[address] = extra_cycles.get(address, 0) + extra
            if profile:
                current = address
                executed[address] = executed.get(address, 0) + 1
                if called and address in entries:  # Thumb-1 far jumps are BLs too
                    calls.append(fall)
                    frames = (*frames, function_of(address))
                elif calls and address == calls[-1]:
                    calls.pop()
                    frames = frames[:-1]
                slot = inclusive.get(frames)
                if slot is None:
                    slot = inclusive[frames] = [0, 0]
                slot[0] += info[1]
                slot[1] += cyc
                called = info[5]
            n_insn += info[1]
            n_cyc += cyc
            fall = address + size
            taken = info[3]
            if n_insn > budget:
                over = True
                uc.emu_stop()

        def on_bad_mem(uc, access, address, size, value, _ud):
            kinds = {
                uc_mod.UC_MEM_READ_UNMAPPED: "read from unmapped address",
                uc_mod.UC_MEM_WRITE_UNMAPPED: "write to unmapped address",
                uc_mod.UC_MEM_FETCH_UNMAPPED: "instruction fetch from unmapped address",
                uc_mod.UC_MEM_WRITE_PROT: "write to read-only memory at",
                uc_mod.UC_MEM_READ_PROT: "read from protected memory at",
                uc_mod.UC_MEM_FETCH_PROT: "instruction fetch from non-executable memory at",
            }
            pc = uc.reg_read(m.pc)
            what = kinds.get(access, "bad memory access at")
            fault.append((pc, f"{what} {address:#x} ({size} bytes)", address))
            return False

        def on_intr(uc, intno, _ud):
            pc = uc.reg_read(m.pc)
            name = self.cpu.exceptions.get(intno, f"exception {intno}")
            where = ""
            if not any(r.origin <= pc < r.origin + r.length for r in self.target.memory):
                # Some CPUs (Unicorn's MIPS) report the exception vector, or 0: name the
                # basic block that was running instead.
                block = next((a for a, info in cache.items() if a + info[0] == fall), None)
                if block is not None:
                    pc, where = block, " in the basic block starting there"
            fault.append((pc, f"{name} (exception {intno}){where}", None))
            uc.emu_stop()

        uc.hook_add(UC_HOOK_BLOCK, on_block)
        uc.hook_add(UC_HOOK_MEM_UNMAPPED | UC_HOOK_MEM_PROT, on_bad_mem)
        uc.hook_add(UC_HOOK_INTR, on_intr)
        if timer is not None:
            for lo, hi in timer.read_ranges():
                uc.hook_add(UC_HOOK_MEM_READ, on_read, begin=lo, end=hi - 1)
        if wall_timeout_s is None:
            wall_timeout_s = 10.0 + budget * 5e-6
        begin = entry.value
        error: UcError | None = None
        try:
            uc.emu_start(
                begin, stop_addr, timeout=int(wall_timeout_s * 1e6), count=budget + COUNT_SLACK
            )
        except UcError as exc:
            error = exc
        pc = uc.reg_read(m.pc)
        if fault:
            fpc, reason, addr = fault[0]
            raise EmulatorFault(fpc, reason, addr)
        if error is not None:
            raise EmulatorFault(pc, self._describe_error(uc, error, pc))
        if over:
            raise EmulatorTimeout(budget, n_insn, pc)
        if pc != stop_addr:
            raise EmulatorTimeout(
                budget, n_insn, pc, why=f"wall-clock limit ({wall_timeout_s:.0f} s)"
            )
        # The return into autotune_stop is a taken branch like any other.
        n_cyc += taken + read_stall
        result_outputs = self._read_outputs(uc, image, outputs or {})
        extra: dict[str, object] = {"blocks_decoded": len(cache)}
        if timer is not None:
            extra["caches"] = timer.stats()
        if profile:
            extra["functions"] = _attribute(image, cache, executed, extra_cycles)
            extra["inclusive"] = _inclusive(inclusive)
        return RunResult(
            instructions=n_insn,
            cycles=n_cyc if self.model is not None else None,
            cycle_model=self._model_name(),
            outputs=result_outputs,
            runner=RUNNER_NAME,
            wall_time_s=time.perf_counter() - started,
            extra=extra,
        )

    # -- helpers -------------------------------------------------------------

    def _model_name(self) -> str:
        if self.model is None:
            return ""
        return f"{self.model.name}, {self.part.tag}" if self.part is not None else self.model.name

    def _regions(self, image: ElfImage) -> list[tuple[int, int, str, int]]:
        """(lo, hi, code|data, bytes the program uses there) per memory region."""
        code, _ = harness.split_memory(self.target)
        out = []
        for region in self.target.memory:
            lo, hi = region.origin, region.origin + region.length
            used = sum(memsz for vaddr, _, memsz in image.segments if lo <= vaddr < hi)
            out.append((lo, hi, "code" if region is code else "data", used))
        return out

    def _map_memory(self, uc, image: ElfImage) -> None:
        from unicorn import UC_PROT_ALL, UC_PROT_EXEC, UC_PROT_READ

        code, data = harness.split_memory(self.target)
        spans: list[tuple[int, int, int]] = []
        for region in self.target.memory:
            start = self.cpu.phys(region.origin)
            lo, hi = _page_align(start, start + region.length)
            prot = (
                UC_PROT_READ | UC_PROT_EXEC if region is code and code is not data else UC_PROT_ALL
            )
            spans.append((lo, hi, prot))
        spans.sort()
        merged: list[list[int]] = []
        for lo, hi, prot in spans:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
                merged[-1][2] |= prot
            else:
                merged.append([lo, hi, prot])
        for lo, hi, prot in merged:
            uc.mem_map(lo, hi - lo, prot)
        for vaddr, blob, memsz in image.segments:
            where = self.cpu.phys(vaddr)
            if not any(lo <= where and where + memsz <= hi for lo, hi, _ in merged):
                raise ElfLoadError(
                    f"{image.path.name}: segment {vaddr:#x}+{memsz:#x} lies outside the memory map of "
                    f"{self.target.name}"
                )
            uc.mem_write(where, blob)
            if memsz > len(blob):
                uc.mem_write(where + len(blob), bytes(memsz - len(blob)))

    def _write_inputs(self, uc, image: ElfImage, inputs: Mapping[str, bytes]) -> None:
        for name, data in inputs.items():
            sym = self._buffer(image, name)
            blob = bytes(data) if not hasattr(data, "tobytes") else data.tobytes()
            if len(blob) > sym.size:
                raise BufferMismatchError(
                    f"input {name!r} has {len(blob)} bytes but the buffer holds {sym.size}"
                )
            uc.mem_write(self.cpu.phys(sym.value), blob)

    def _read_outputs(self, uc, image: ElfImage, outputs: Mapping[str, int]) -> dict[str, bytes]:
        out = {}
        for name, nbytes in outputs.items():
            sym = self._buffer(image, name)
            if nbytes < 0 or nbytes > sym.size:
                raise BufferMismatchError(
                    f"output {name!r}: asked for {nbytes} bytes but the buffer holds {sym.size}"
                )
            out[name] = bytes(uc.mem_read(self.cpu.phys(sym.value), nbytes))
        return out

    @staticmethod
    def _buffer(image: ElfImage, name: str) -> Symbol:
        sym = image.symbols.get(name)
        if sym is None or sym.is_func:
            known = ", ".join(image.buffer_names()) or "none"
            raise BufferMismatchError(
                f"no buffer named {name!r} in {image.path.name} (buffers: {known})"
            )
        return sym

    def _init_cpu(self, uc, image: ElfImage, return_to: int) -> None:
        m = self.machine
        uc.reg_write(m.sp, image.symbol(harness.STACK_TOP_SYMBOL).value)
        uc.reg_write(m.lr, return_to)
        cpu = self.cpu
        if cpu.gp is not None and cpu.gp_symbol in image.symbols:
            uc.reg_write(cpu.gp, image.symbols[cpu.gp_symbol].value)
        if cpu.setup is not None:
            cpu.setup(uc)

    def _describe_error(self, uc, error, pc: int) -> str:
        from unicorn import UC_ERR_INSN_INVALID

        if error.errno == UC_ERR_INSN_INVALID:
            try:
                raw = bytes(uc.mem_read(self.cpu.phys(pc), 4))
            except Exception:
                raw = b""
            return f"invalid instruction (bytes {raw.hex()}) on {self.target.name}"
        return f"{error} on {self.target.name}"


def run_elf(
    elf_path: Path | str,
    target: Target,
    inputs: Mapping[str, bytes] | None = None,
    outputs: Mapping[str, int] | None = None,
    budget: int = DEFAULT_BUDGET,
    profile: bool = False,
) -> RunResult:
    """Execute ``elf_path`` on ``target`` in the emulator; see :class:`Emulator`."""
    return Emulator(target).run(elf_path, inputs, outputs, budget, profile=profile)


class UnicornRunner(Runner):
    """The ``unicorn`` runner: exact instruction counts and model cycles, no hardware needed."""

    name = RUNNER_NAME
    description = (
        "embedded emulator (Unicorn): exact instruction counts, cycles from a per-core model"
    )
    capabilities = RunnerCapabilities(
        executes=True, counts_instructions=True, counts_cycles=True, profiles_functions=True
    )

    def available(self) -> str | None:
        """None when usable, otherwise why not."""
        try:
            import capstone  # noqa: F401
            import unicorn  # noqa: F401
        except ImportError as exc:
            return f"Python package missing: {exc.name} (pip install unicorn capstone)"
        return None

    def supports(self, target: Target) -> str | None:
        try:
            machine_for(target)
        except RunnerUnavailableError as exc:
            return str(exc)
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
        reason = self.available()
        if reason:
            raise RunnerUnavailableError(f"runner {self.name} unavailable: {reason}")
        return run_elf(elf_path, target, inputs, outputs, budget, profile=profile)
