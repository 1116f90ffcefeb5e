"""Synopsys nSIM, the runner of the ARC family: usable only where ``nsimdrv`` is installed."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from autotune.platform.emulator import DEFAULT_BUDGET, RunnerUnavailableError, RunResult
from autotune.platform.runner import Runner, RunnerCapabilities
from autotune.platform.target import Target

NSIM_COMMAND = "nsimdrv"


class NsimRunner(Runner):
    """Synopsys nSIM for ARC EM: usable only where ``nsimdrv`` is installed."""

    name = "nsim"
    description = "Synopsys nSIM (nsimdrv) for ARC EM"
    capabilities = RunnerCapabilities(executes=True, counts_instructions=True, counts_cycles=True)

    def metric_label(self, target: Target) -> str:
        return "cycles (nSIM)"

    def available(self) -> str | None:
        if shutil.which(NSIM_COMMAND) is None:
            return f"{NSIM_COMMAND} (Synopsys nSIM) not found on PATH; it is not in Debian"
        return None

    def supports(self, target: Target) -> str | None:
        if target.family != "arc":
            return f"nSIM simulates ARC cores only, not {target.name}"
        return self.available()

    def run(
        self,
        elf_path: Path | str,
        target: Target,
        inputs: Mapping[str, bytes] | None = None,
        outputs: Mapping[str, int] | None = None,
        budget: int = DEFAULT_BUDGET,
        profile: bool = False,
    ) -> RunResult:
        reason = self.supports(target)
        raise RunnerUnavailableError(
            f"runner nsim cannot run {target.name}: "
            + (reason or "driving nsimdrv (inputs, outputs, counting) is not implemented yet")
        )
