"""The plugin object autotune loads (entry point ``mips`` in the ``autotune`` group)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autotune.platform.hookspecs import hookimpl

from autotune_mips.isa import Mips32r2
from autotune_mips.madd import TEMPLATES
from autotune_mips.microaptiv import MicroAptiv
from autotune_mips.targets import TARGETS


@hookimpl
def register_isas(register: Callable[[Any], None]) -> None:
    register(Mips32r2())


@hookimpl
def register_cycle_models(register: Callable[[Any], None]) -> None:
    register(MicroAptiv())


@hookimpl
def register_targets(register: Callable[[Any], None]) -> None:
    for target in TARGETS:
        register(target)


@hookimpl
def register_kernels(register: Callable[[Any], None]) -> None:
    for template in TEMPLATES:
        register(template)
