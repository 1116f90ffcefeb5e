"""The op registry: one definition per op gives its reference kernel and checks, its
untuned C emitter, its spec builder (which makes it tunable) and, through the kernel
registry, its templates.

An op defined here is installed into the tables each stage reads (the reference's
kernels, emit's C generators, tune's spec builders), so adding an op is one module:
built-in ops live in ``autotune/ops/`` (every public module's
``OPS``); a plugin contributes more through the ``register_ops`` hook. The op's kernel
templates are the registered templates whose ``op`` is its name.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autotune.emit.layer_code import EMITTERS, Emitter
from autotune.errors import AutotuneError
from autotune.reference.registry import REGISTRY, Check, Kernel, OpContext, OpSpec

#: Builds the KernelSpec of a layer (None when the templates leave it to the emitter).
SpecBuilder = Callable[[OpContext], Any]

#: op name -> spec builder, read by tune/spec.py (the built-in tunable ops are there).
SPEC_BUILDERS: dict[str, SpecBuilder] = {}


class OpDefinitionError(AutotuneError):
    """An op defined twice, or a definition that is not an Op."""


@dataclass(frozen=True)
class Op:
    """Everything autotune knows about one TFLite builtin op."""

    name: str  # the builtin op name: "LEAKY_RELU"
    kernel: Kernel  # the reference: TFLM's int8 arithmetic, the meaning of "correct"
    check: Check | None = None  # why a layer cannot run (before anything runs), or None
    emitter: Emitter | None = None  # untuned C: (graph, layer, function) -> LayerCode
    spec: SpecBuilder | None = None  # KernelSpec builder: set for ops templates can tune
    description: str = ""


_installed: dict[str, Op] = {}


def install(op: Op, origin: str = "") -> None:
    """Put ``op``'s parts into the reference, emit and tune tables (once per op)."""
    if not isinstance(op, Op):
        raise OpDefinitionError(f"{origin or 'a plugin'} defined {type(op).__name__}, not an Op")
    if _installed.get(op.name) is op:
        return
    if op.name in _installed or op.name in REGISTRY:
        raise OpDefinitionError(f"op {op.name} is defined twice ({origin or 'plugin'})")
    REGISTRY[op.name] = OpSpec(op=op.name, kernel=op.kernel, check=op.check)
    if op.emitter is not None:
        EMITTERS[op.name] = op.emitter
    if op.spec is not None:
        SPEC_BUILDERS[op.name] = op.spec
    _installed[op.name] = op


def defined_ops() -> dict[str, Op]:
    """Every op installed through this registry, by name."""
    return dict(_installed)


def install_builtin() -> None:
    """Install the ``OPS`` of every public module of ``autotune.ops``."""
    package = importlib.import_module("autotune.ops")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"autotune.ops.{info.name}")
        for op in getattr(module, "OPS", ()):
            install(op, module.__name__)
