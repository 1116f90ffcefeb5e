"""Kernel templates: a Jinja2 C file plus its declared space, applicability and layout.

This is the contract plugins register through ``register_kernels``.

A template renders one layer (a KernelSpec, with its weights) at one point of its
space into a C function `void fn(inputs..., int8_t *output, void *scratch)`.
Shapes, strides and offsets are constants in the rendered code.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from autotune import __version__
from autotune.codegen import INCLUDE_DIR as INCLUDE_DIR
from autotune.codegen import KERNELS_DIR, environment
from autotune.codegen import c_array as c_array
from autotune.emit.planner import inplace_shift
from autotune.platform.target import Target
from autotune.tune.space import Point, Space
from autotune.tune.spec import KernelSpec


@dataclass(frozen=True)
class Rendered:
    template: str
    function: str
    source: str
    params: Point
    scratch_bytes: int
    inputs: tuple[str, ...] = ("input",)  # names of the runtime inputs, in call order
    notes: tuple[str, ...] = field(default_factory=tuple)
    # 0, or the kernel may be called with its output over its input: the input starting
    # at least in_place_shift bytes after the output, a multiple of in_place bytes.
    in_place: int = 0
    in_place_shift: int = 0


def pack_int16_pairs(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """uint32 words holding lo in bits 0-15 and hi in bits 16-31 (SMLAD operands)."""
    lo16 = lo.astype(np.int64) & 0xFFFF
    hi16 = hi.astype(np.int64) & 0xFFFF
    return (lo16 | (hi16 << 16)).astype(np.uint32)


class KernelTemplate(ABC):
    """One family of kernels for one op. Subclasses declare files, space and context.

    The Jinja files are looked up in ``directory``: by default the folder of the module
    that defines the class, i.e. the package of the plugin that registers it, then in
    autotune's ``kernels/`` for the shared pieces. Headers in that folder's
    ``include/`` are on the include path of every build and ship with the library.
    """

    name: ClassVar[str]
    op: ClassVar[str]
    main_file: ClassVar[str]
    files: ClassVar[tuple[str, ...]] = ()  # every Jinja/C file the template reads
    directory: ClassVar[Path | None] = None  # where its Jinja files are (default: its module's)

    @classmethod
    def template_dir(cls) -> Path:
        """The folder holding this template's Jinja files."""
        if cls.directory is not None:
            return Path(cls.directory)
        return Path(inspect.getfile(sys.modules[cls.__module__])).resolve().parent

    @classmethod
    def include_dirs(cls) -> list[Path]:
        """Header folders its code needs: its own ``include/`` (if any), then autotune's."""
        own = cls.template_dir() / "include"
        return [own, INCLUDE_DIR] if own.is_dir() and own != INCLUDE_DIR else [INCLUDE_DIR]

    @classmethod
    def headers(cls) -> list[Path]:
        """Headers of its own that a library using it must ship (besides autotune's)."""
        return [p for d in cls.include_dirs() if d != INCLUDE_DIR for p in sorted(d.glob("*.h"))]

    @abstractmethod
    def applies(self, spec: KernelSpec, target: Target) -> bool:
        """Whether this template can compute the layer on the target at all."""

    @abstractmethod
    def space(self, spec: KernelSpec, target: Target) -> Space:
        """The tunable parameters for this layer on this target; baseline first."""

    @abstractmethod
    def context(self, spec: KernelSpec, target: Target, params: Point) -> dict[str, Any]:
        """Template variables beyond the common ones (d, s, p, fn, header)."""

    def scratch_bytes(self, spec: KernelSpec, target: Target, params: Point) -> int:
        return 0

    def in_place(self, spec: KernelSpec, target: Target, params: Point) -> int:
        """0, or this point computes correctly with its output over its input: the input
        starting at least planner.inplace_shift bytes after the output and a multiple of
        the returned number of bytes after it (1: anywhere from there). The planner then
        lets them overlap where the input is not read later; the variant is measured and
        verified that way."""
        return 0

    def in_place_shift(self, spec: KernelSpec, target: Target, params: Point) -> int:
        """How far (bytes, a multiple of planner.ALIGN) an in-place point's input must start
        after its output: planner.inplace_shift of the sizes, for a kernel whose output
        unit p reads input unit p. A kernel that reads further ahead (a strided 1x1
        convolution) says how much less or more it needs."""
        return inplace_shift(spec.input_sizes[0], spec.output_size)

    def input_names(self, spec: KernelSpec) -> tuple[str, ...]:
        return ("input",)

    def render(self, spec: KernelSpec, target: Target, params: Point, function: str) -> Rendered:
        header = [
            f"Layer {spec.layer_index}: {spec.op} {spec.describe()}",
            f"Target: {target.name}. Template: {self.name} (hash {self.content_hash()[:12]}).",
            "Parameters: " + ", ".join(f"{k}={v}" for k, v in sorted(params.items())),
        ]
        ctx = {
            "version": __version__,
            "header": header,
            "fn": function,
            "d": spec.dims,
            "s": spec.scalars,
            "f": spec.flags,
            "p": params,
        }
        ctx.update(self.context(spec, target, params))
        source = environment(self.template_dir()).get_template(self.main_file).render(**ctx)
        return Rendered(
            template=self.name,
            function=function,
            source=source,
            params=dict(params),
            scratch_bytes=self.scratch_bytes(spec, target, params),
            inputs=self.input_names(spec),
            in_place=self.in_place(spec, target, params),
            in_place_shift=self.in_place_shift(spec, target, params),
        )

    def content_hash(self) -> str:
        return _content_hash(type(self))


@cache
def _content_hash(cls: type) -> str:
    """Everything that shapes the generated code: the C/Jinja files and the Python class."""
    h = hashlib.sha256()
    own = cls.template_dir()
    for name in sorted({cls.main_file, *cls.files, "include/at_nn.h", "header.j2"}):
        path = own / name if (own / name).is_file() else KERNELS_DIR / name
        h.update(name.encode())
        h.update(path.read_bytes())
    module = sys.modules[cls.__module__]
    h.update(inspect.getsource(module).encode())
    return h.hexdigest()


def per_channel_accessor(name: str, values: np.ndarray, per_channel: bool) -> Callable[[str], str]:
    """C expression for channel `i`'s value: an array lookup, or a constant when uniform."""
    if not per_channel or np.all(values == values[0]):
        const = str(int(values[0]))
        return lambda _i: f"({const})"
    return lambda i: f"{name}[{i}]"
