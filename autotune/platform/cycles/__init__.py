"""Per-core cycle models, looked up by the name a target declares (``"cortex-m4 v2"``).

Every figure a model produces is an estimate and is labelled as such:
``cycles (model cortex-m4 v2)``; instruction counts from the emulator are
``instructions (exact)``.
"""

from __future__ import annotations

from autotune.errors import AutotuneError
from autotune.platform.cycles.base import BlockCost, Branch, CycleModel, Insn, ModelInfo
from autotune.platform.cycles.cortex_a import CortexA7, CortexA53
from autotune.platform.cycles.cortex_m import (
    CortexM0,
    CortexM0Plus,
    CortexM3,
    CortexM4,
    CortexM7,
    CortexM33,
)
from autotune.platform.cycles.riscv import Ibex, SiFiveE31

INSTRUCTIONS_LABEL = "instructions (exact)"

_MODELS: dict[str, type[CycleModel]] = {
    cls.info.name + f" v{cls.info.version}": cls
    for cls in (
        CortexM0,
        CortexM0Plus,
        CortexM3,
        CortexM4,
        CortexM7,
        CortexM33,
        CortexA7,
        CortexA53,
        Ibex,
        SiFiveE31,
    )
}


class UnknownCycleModelError(AutotuneError):
    """A target names a cycle model that does not exist."""


def model_names() -> list[str]:
    return sorted(_MODELS)


def get_model(name: str) -> CycleModel:
    """The model called ``name`` (``"cortex-m4 v2"``); a bare core name means its latest version."""
    cls = _MODELS.get(name)
    if cls is None:
        versions = [n for n in _MODELS if n.rsplit(" v", 1)[0] == name]
        if versions:
            cls = _MODELS[max(versions, key=lambda n: int(n.rsplit(" v", 1)[1]))]
    if cls is None:
        raise UnknownCycleModelError(
            f"unknown cycle model {name!r}; known: {', '.join(model_names())}"
        )
    return cls()


def cycles_label(name: str) -> str:
    return f"cycles (model {name})"


__all__ = [
    "INSTRUCTIONS_LABEL",
    "BlockCost",
    "Branch",
    "CycleModel",
    "Insn",
    "ModelInfo",
    "UnknownCycleModelError",
    "cycles_label",
    "get_model",
    "model_names",
]
