"""A template's declared parameter space: named choices, a baseline point and constraints.

In the manner of Kernel Tuner: the space is a dict of choices plus restrictions,
so impossible combinations are rejected before anything is compiled.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

Point = dict[str, Any]
Constraint = Callable[[Point], str | None]


@dataclass(frozen=True)
class Param:
    name: str
    choices: tuple[Any, ...]
    baseline: Any
    doc: str = ""

    def __post_init__(self) -> None:
        if self.baseline not in self.choices:
            raise ValueError(f"baseline {self.baseline!r} of {self.name} is not one of its choices")


@dataclass
class Space:
    params: list[Param] = field(default_factory=list)
    constraints: list[Constraint] = field(default_factory=list)

    def add(
        self, name: str, choices: list[Any] | tuple[Any, ...], baseline: Any, doc: str = ""
    ) -> None:
        # Keep order, drop duplicates: a choice list built from shape arithmetic may repeat.
        unique = tuple(dict.fromkeys(choices))
        self.params.append(Param(name, unique, baseline, doc))

    def require(self, constraint: Constraint) -> None:
        self.constraints.append(constraint)

    def baseline(self) -> Point:
        return {p.name: p.baseline for p in self.params}

    def check(self, point: Point) -> str | None:
        """The reason a point is impossible, or None.

        Strict, because points also come from shared DBs: exactly the declared names,
        each value one of its choices with the choice's own type (True is not 1)."""
        names = {p.name for p in self.params}
        unknown = sorted(str(k) for k in point if k not in names)
        if unknown:
            return f"unknown parameter {unknown[0][:60]!r}"
        for p in self.params:
            value = point.get(p.name)
            if not any(type(value) is type(c) and value == c for c in p.choices):
                return f"{p.name}={value!r:.60} is not one of {list(p.choices)}"
        for constraint in self.constraints:
            reason = constraint(point)
            if reason:
                return reason
        return None

    @property
    def size(self) -> int:
        n = 1
        for p in self.params:
            n *= len(p.choices)
        return n

    def points(self) -> Iterator[Point]:
        """Every valid point (for small spaces and tests)."""
        names = [p.name for p in self.params]
        for values in itertools.product(*(p.choices for p in self.params)):
            point = dict(zip(names, values, strict=True))
            if self.check(point) is None:
                yield point
