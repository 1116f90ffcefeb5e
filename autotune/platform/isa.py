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

    def __repr__(self) -> str:
        return f"<IsaSupport {self.name}>"
