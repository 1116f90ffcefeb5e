"""ISA support: everything that differs per instruction set, provided by the plugin
that registers the targets (``register_isas``).

Core code (the harness, the emulator, QEMU, the timing models' decoder, conformance)
asks a target's :class:`IsaSupport` instead of keeping tables keyed by ISA or compiler
names, so a plugin can add an instruction set autotune has never seen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from autotune.platform.cycles.base import Insn
    from autotune.platform.target import Target


class Decoder(Protocol):
    """Decodes one basic block of machine code for the timing models."""

    def decode(self, code: bytes, address: int, state: int = 0) -> list[Insn]:
        """Every instruction in ``code`` (stopping at undecodable bytes); ``state`` selects
        the instruction-set state where an ISA has several (0 = A32, 1 = Thumb on Arm)."""
        ...


@dataclass(frozen=True)
class EmulatorCpu:
    """How Unicorn executes one core: engine, CPU model and register conventions.

    ``arch``/``mode``/``cpu`` are Unicorn constants (``UC_ARCH_*``, ``UC_MODE_*``,
    ``UC_CPU_*``); ``pc``/``sp``/``lr`` the register ids of the program counter, stack
    pointer and return-address register; ``gp`` a global pointer set from the ELF
    symbol ``gp_symbol`` where the ABI has one.
    """

    arch: int
    mode: int
    cpu: int
    pc: int
    sp: int
    lr: int
    gp: int | None = None
    gp_symbol: str = ""
    # Code addresses are masked with this before use as an emulation start or stop
    # address (Arm keeps the Thumb state in bit 0 of function symbols).
    address_mask: int = ~0
    # Interrupt numbers Unicorn reports for this CPU, named for fault messages.
    exceptions: Mapping[int, str] = field(default_factory=dict)
    # Called once on a fresh engine (enable the FPU, ...).
    setup: Callable[[Any], None] | None = None
    # The decoder state at a block (Thumb or A32 on Arm); None when there is one state.
    decode_state: Callable[[Any], int] | None = None
    # Virtual to physical address, for CPUs that translate before Unicorn's memory map
    # (MIPS kseg0/kseg1); None when program addresses are physical.
    physical: Callable[[int], int] | None = None

    def phys(self, address: int) -> int:
        """Where Unicorn's memory API finds the byte at program address ``address``."""
        return address if self.physical is None else self.physical(address)


class DebugPort(Protocol):
    """What a debug support may do to a halted core (the gdb runner provides it)."""

    def read_u32(self, address: int) -> int: ...
    def write_u32(self, address: int, value: int) -> None: ...
    def read_memory(self, address: int, length: int) -> bytes: ...
    def read_register(self, name: str) -> int: ...
    def write_register(self, name: str, value: int) -> None: ...


@dataclass(frozen=True)
class DebugFault:
    """A fault the core took, as the ISA's debug support reads it."""

    pc: int  # where the faulting instruction is
    reason: str  # one line: the decoded fault status
    status: Mapping[str, int] = field(default_factory=dict)  # raw status registers read


class DebugSupport:
    """How the ``gdb`` runner drives a core of one ISA through a GDB server.

    The runner owns the remote protocol (load, breakpoints, time limits, buffers); this
    owns the architecture: register names, what to set before ``autotune_main`` runs,
    the cycle counter and fault decoding. Subclass it in the ISA's plugin.
    """

    # Register name -> GDB register number, used where the server's target description
    # does not list the name. The runner uses "pc", "sp" and "lr"; others are the ISA's.
    registers: ClassVar[Mapping[str, int]] = {}
    # Register name -> names to look up in the target description instead when it
    # lacks the name (QEMU calls the M-profile xPSR "cpsr" in some versions).
    register_aliases: ClassVar[Mapping[str, Sequence[str]]] = {}
    # The cycle counter's name in figure labels: "DWT" gives "cycles (board, DWT)".
    counter: ClassVar[str] = ""

    def in_exception(self, port: DebugPort) -> bool:
        """Whether the halted core is inside an exception handler (a previous run
        faulted): the runner then resets it before loading."""
        return False

    def prepare(self, port: DebugPort, target: Target, symbols: Mapping[str, int]) -> None:
        """Set up the core after loading (vector table, FPU, ...); ``symbols`` maps the
        image's symbol names to their values."""

    def start(self, port: DebugPort, entry: int, stop: int, stack_top: int) -> None:
        """Point the core at ``entry`` with the stack at ``stack_top``, returning to
        ``stop``."""
        port.write_register("sp", stack_top)
        port.write_register("lr", stop)
        port.write_register("pc", entry)

    def start_cycle_counter(self, port: DebugPort, target: Target) -> str | None:
        """Start the core's cycle counter from zero; None when it runs, else why not."""
        return "this ISA's debug support reads no cycle counter"

    def read_cycle_counter(self, port: DebugPort) -> int:
        """The counter started by :meth:`start_cycle_counter`."""
        raise NotImplementedError

    def fault(self, port: DebugPort, target: Target) -> DebugFault:
        """Read and decode the fault the core stopped in (at the harness's fault handler)."""
        return DebugFault(port.read_register("pc"), "the core took a fault")


@dataclass(frozen=True)
class LinuxAbi:
    """A Linux user-space ABI a target's library can also be built for (embedded Linux).

    ``cflags`` select the core as the tuned code was compiled for it, under this ABI's
    calling convention; ``qemu`` runs its programs with ``sysroot`` as ``-L``."""

    triplet: str  # e.g. aarch64-linux-gnu
    cc: str
    debian_package: str
    cflags: tuple[str, ...]
    qemu: str = ""
    sysroot: str = ""


@dataclass(frozen=True)
class QemuCommand:
    """A qemu-user binary and the CPU it emulates for a target."""

    binary: str
    cpu: str | None
    debian_package: str = "qemu-user"


class IsaSupport:
    """One instruction set as autotune needs to know it. Subclass and register an instance.

    Only ``name``, ``elf_machine`` and ``startup`` are required; the rest defaults to
    "not available", which makes the corresponding runner decline with the reason.
    """

    name: ClassVar[str]  # what Target.isa refers to, e.g. "thumb-m"
    elf_machine: ClassVar[str]  # pyelftools' e_machine, e.g. "EM_ARM"
    startup: ClassVar[Path]  # assembly source with _start (see docs/plugins.md)
    description: ClassVar[str] = ""
    qemu_user: ClassVar[str] = ""  # qemu-user binary that runs this ISA, "" when none
    # A function symbol's value masked with this is where its code starts (Arm keeps the
    # Thumb state in bit 0 of function symbols: ~1). Applies to every ELF of elf_machine.
    function_address_mask: ClassVar[int] = ~0

    def emulator(self, target: Target) -> EmulatorCpu | None:
        """How Unicorn runs ``target``; None when it cannot."""
        return None

    def decoder(self) -> Decoder | None:
        """A decoder for the timing models; None when there is none."""
        return None

    def qemu_cpu(self, target: Target) -> str | None:
        """The ``-cpu`` value for qemu-user (None: QEMU's default)."""
        return None

    def qemu(self, target: Target) -> QemuCommand | None:
        """The qemu-user command for ``target``; None when this ISA has none."""
        if not self.qemu_user:
            return None
        return QemuCommand(self.qemu_user, self.qemu_cpu(target))

    def linker_code_sections(self, region: str) -> Sequence[str]:
        """Extra output sections after .rodata, placed in the MEMORY region ``region``."""
        return ()

    def linker_data_symbols(self) -> Sequence[str]:
        """Extra linker-script lines inside .data, before the small-data sections."""
        return ()

    def compiler_features(self, macros: Mapping[str, str]) -> tuple[set[str], set[str]] | None:
        """From the compiler's predefined macros: (features they imply, features they can
        tell about), or None when these macros are not this ISA's."""
        return None

    def debug(self, target: Target) -> DebugSupport | None:
        """How the gdb runner drives ``target`` behind a GDB server; None when it cannot."""
        return None

    def linux_abis(self, target: Target) -> Sequence[LinuxAbi]:
        """The Linux ABIs ``target``'s library is also built for (static, shared and
        pkg-config next to the sources); none for bare-metal-only cores."""
        return ()

    def __repr__(self) -> str:
        return f"<IsaSupport {self.name}>"
