"""The runner contract: what a way of executing an ELF must provide and may do.

Core code asks a runner what it can do (:class:`RunnerCapabilities`), never what it
is called: whether variants execute and are verified, whether per-function profiles
exist, and how a measurement is labelled all come from here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from autotune.errors import AutotuneError
from autotune.platform.cycles.base import INSTRUCTIONS_LABEL, cycles_label

if TYPE_CHECKING:
    from autotune.platform.target import Target

DEFAULT_BUDGET = 50_000_000
SIZE_ONLY_LABEL = "code size only"


class RunError(AutotuneError):
    """Executing a kernel failed."""


class RunnerUnavailableError(RunError):
    """This runner cannot execute this target here (missing tool or unsupported ISA)."""


@dataclass(frozen=True)
class RunResult:
    """What one execution measured; every figure carries its provenance label."""

    instructions: int | None  # None where the runner counts none (a board)
    cycles: int | None
    cycle_model: str  # "cortex-m4 v3"; "" when the target has no model
    outputs: dict[str, bytes]
    runner: str = ""  # the name of the runner that measured it
    wall_time_s: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)
    label: str = ""  # what the cycles are when no model made them: "cycles (board, DWT)"

    instructions_label = INSTRUCTIONS_LABEL

    @property
    def cycles_label(self) -> str:
        if self.label:
            return self.label
        return cycles_label(self.cycle_model) if self.cycle_model else ""

    def metrics(self) -> dict[str, int]:
        """Labelled figures, e.g. {"instructions (exact)": 1200, "cycles (model cortex-m4 v3)": 1890}."""
        out = {} if self.instructions is None else {INSTRUCTIONS_LABEL: self.instructions}
        if self.cycles is not None and self.cycles_label:
            out[self.cycles_label] = self.cycles
        return out


@dataclass(frozen=True)
class RunnerCapabilities:
    """What a runner can do; every flag is a promise core code relies on."""

    executes: bool  # runs the ELF and returns its outputs (so variants can be verified)
    counts_instructions: bool = False  # RunResult.instructions is an exact count
    counts_cycles: bool = False  # RunResult.cycles is filled (a model or real hardware)
    profiles_functions: bool = False  # run(profile=True) fills extra["functions"]
    exclusive: bool = False  # drives one device: variants are measured one at a time


class Runner(ABC):
    """A way to execute (or decline to execute) a target's ELF and measure it."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    capabilities: ClassVar[RunnerCapabilities]

    def available(self) -> str | None:
        """None when usable on this machine, otherwise why not (missing tool and package)."""
        return None

    def supports(self, target: Target) -> str | None:
        """None when this runner can execute ``target``'s code, otherwise why not."""
        return None

    def metric_label(self, target: Target) -> str:
        """What a measurement of ``target`` by this runner counts, as reports label it.

        An estimate is never presented as a measurement: cycles from a model name the
        model, and a runner that executes nothing says the target is ranked by size.
        """
        caps = self.capabilities
        if not caps.executes:
            return SIZE_ONLY_LABEL
        if caps.counts_cycles and target.cycle_model:
            return f"cycles (model {target.cycle_model})"
        if caps.counts_instructions:
            return INSTRUCTIONS_LABEL
        return f"runtime ({self.name})"

    @abstractmethod
    def run(
        self,
        elf_path: Path | str,
        target: Target,
        inputs: Mapping[str, bytes] | None = None,
        outputs: Mapping[str, int] | None = None,
        budget: int = DEFAULT_BUDGET,
        profile: bool = False,
    ) -> RunResult:
        """Run ``autotune_main`` once: write ``inputs`` before, read ``outputs`` after.

        ``profile=True`` asks for per-function figures; runners without the
        ``profiles_functions`` capability ignore it.
        """
