"""Whether a model can fit the target at all, decided before anything is tuned.

Whatever variants are chosen, the library holds every parameter in flash and every
activation in RAM (the model's inputs and outputs in the caller's RAM, the others in
the arena). When the parameters alone exceed the flash, or one activation alone the
RAM, no library can link, so tuning would only spend the user's time: the run stops
first, with one line naming the bytes needed, the bytes available and what to do.

Available is the target's memory map, which the library is linked into: for a core
alone, the generic memory of its plugin (cortex-m4: 1 MiB flash, 512 KiB RAM, as its
common parts).
"""

from __future__ import annotations

from dataclasses import dataclass

from autotune.errors import AutotuneError
from autotune.model.graph import Graph, Tensor
from autotune.model.stats import parameter_tensors
from autotune.platform import plugins
from autotune.platform.harness import split_memory
from autotune.platform.target import Target

# Flash the test harness around the library takes (startup, vectors, main: ~4.3 KiB on
# cortex-m4), kept free when a run without a budget is held to the target's flash.
HARNESS_ROOM = 16 * 1024


class ModelTooLarge(AutotuneError):
    """The model's parameters or an activation cannot fit the target's memory."""


@dataclass(frozen=True)
class Need:
    """The least memory any library of the model takes."""

    flash: int  # every parameter once
    ram: int  # the largest activation alone
    ram_tensor: Tensor | None


def model_needs(graph: Graph) -> Need:
    flash = sum(t.nbytes for t in parameter_tensors(graph))
    activations = [t for t in graph.tensors if not t.is_constant]
    largest = max(activations, key=lambda t: t.nbytes, default=None)
    return Need(flash, largest.nbytes if largest else 0, largest)


def flash_room(target: Target) -> int:
    """The library's own flash at most, for a run without a budget: the target's flash
    region less the harness's room."""
    return split_memory(target)[0].length - HARNESS_ROOM


def _region(target: Target, kind: str) -> tuple[int, str]:
    """(bytes, whose they are): the flash or RAM region the library is linked into."""
    code, data = split_memory(target)
    region = code if kind == "flash" else data
    where = (
        "the core alone, no --part" if target.part is None else f"with --part {target.part.name}"
    )
    return region.length, f"{target.name}'s {region.name} region ({where})"


def _fitting_targets(need: Need) -> list[str]:
    fits = []
    for name, t in plugins.get_targets().items():
        code, data = split_memory(t)
        if code.length >= need.flash and data.length >= need.ram:
            fits.append(name)
    return fits


def check_fits(graph: Graph, target: Target, model: str) -> None:
    """ModelTooLarge (one line) when no choice of variants can fit; else nothing.

    Budgets are not checked here: the choice under a budget names the smallest library
    that would meet it, which says more than the parameters alone."""
    need = model_needs(graph)
    problems = []
    flash, flash_what = _region(target, "flash")
    ram, ram_what = _region(target, "ram")
    if need.flash > flash:
        problems.append(
            f"its parameters alone need {need.flash:,} B of flash, {flash_what} has {flash:,} B"
        )
    if need.ram > ram and need.ram_tensor is not None:
        t = need.ram_tensor
        shape = "x".join(str(d) for d in t.shape)
        problems.append(
            f"its activation '{t.name}' ({shape} {t.dtype}) alone needs {need.ram:,} B of RAM, "
            f"{ram_what} has {ram:,} B"
        )
    if not problems:
        return
    others = [n for n in _fitting_targets(need) if n != target.name]
    hints = [f"tune for a target whose memory holds it ({', '.join(others[:4])})"] if others else []
    raise ModelTooLarge(
        f"{model}: does not fit {target.name}: {'; '.join(problems)}; nothing was tuned "
        f"({', or '.join([*hints, 'use a smaller model'])})"
    )


def library_too_large(model: str, target: Target, overflows: dict[str, int]) -> ModelTooLarge:
    """The one line for a chosen library the linker could not place (GNU ld's overflows)."""
    code, _ = split_memory(target)
    sizes = {r.name: r.length for r in target.memory}
    said = [
        f"its {name} region ({sizes[name]:,} B) overflowed by {extra:,} B"
        if name in sizes
        else f"region {name} overflowed by {extra:,} B"
        for name, extra in overflows.items()
    ]
    option = "--flash-budget" if code.name in overflows else "--ram-budget"
    return ModelTooLarge(
        f"{model}: the library does not fit {target.name}: {'; '.join(said)}; no library was "
        f"shipped (the tuning results are in the report; give {option} to choose the fastest "
        "mix that fits)"
    )
