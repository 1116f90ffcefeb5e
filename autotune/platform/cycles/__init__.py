"""Timing models: the contract (``base``) and the capstone decode helpers (``decode``).

Models themselves live with their target family's plugin (``register_cycle_models``)
and are looked up by the name a target declares (``"cortex-m4 v3"``) with
:func:`autotune.platform.plugins.get_cycle_model`.
Every figure a model produces is an estimate and is labelled as such:
``cycles (model cortex-m4 v3)``; instruction counts from the emulator are
``instructions (exact)``.
"""

from __future__ import annotations

from autotune.platform.cycles.base import (
    INSTRUCTIONS_LABEL,
    BlockCost,
    Branch,
    CycleModel,
    Insn,
    ModelInfo,
    UnknownCycleModelError,
    cycles_label,
)


def get_model(name: str) -> CycleModel:
    """The registered model called ``name``; see :func:`plugins.get_cycle_model`."""
    from autotune.platform import plugins

    return plugins.get_cycle_model(name)


def model_names() -> list[str]:
    """Every registered model's versioned name, sorted."""
    from autotune.platform import plugins

    return sorted(plugins.get_cycle_models())


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
