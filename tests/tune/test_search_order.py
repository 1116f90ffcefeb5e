"""The search tries every applicable template's expert points early, in turn."""

from __future__ import annotations

from typing import Any

from autotune.platform.target import MemoryRegion, Target, Toolchain
from autotune.tune.search import StudyContext, WorkloadSearch
from autotune.tune.space import Point, Space
from autotune.tune.spec import KernelSpec
from autotune.tune.template import KernelTemplate


class Suggesting(KernelTemplate):
    op = "ADD"
    main_file = "unused.c.j2"

    def __init__(self, name: str, count: int) -> None:
        self.name = name  # type: ignore[misc]
        self.count = count

    def applies(self, spec: KernelSpec, target: Target) -> bool:
        return True

    def space(self, spec: KernelSpec, target: Target) -> Space:
        s = Space()
        s.add("k", list(range(10)), 0)
        return s

    def suggestions(self, spec: KernelSpec, target: Target) -> list[Point]:
        return [{"k": i + 1} for i in range(self.count)]

    def context(self, spec: KernelSpec, target: Target, params: Point) -> dict[str, Any]:
        return {}


def test_suggestions_alternate_between_templates() -> None:
    target = Target(
        name="t",
        family="f",
        arch="a",
        toolchain=Toolchain("gcc", "gcc"),
        memory=(MemoryRegion("flash", 0, 1 << 16), MemoryRegion("ram", 1 << 20, 1 << 16)),
        runner="r",
        cycle_model="",
    )
    spec = KernelSpec(op="ADD", layer_index=0, dims={"size": 4})
    ctx = StudyContext(target, "fp", "gcc", "r", "")
    templates = [Suggesting("builtin", 3), Suggesting("plugin", 2)]
    search = WorkloadSearch(spec, templates, ctx, db=None, evaluator=None)  # type: ignore[arg-type]
    order = [(name, p["k"]) for name, p in search.suggested()]
    assert order == [("builtin", 1), ("plugin", 1), ("builtin", 2), ("plugin", 2), ("builtin", 3)]
