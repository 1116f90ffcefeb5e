"""The hooks a plugin implements to teach autotune a new core, kernel or way to measure.

Every hook receives a single ``register`` callable and calls it once per thing it
contributes, in the style of llm and datasette: a plugin never builds or mutates a
registry itself, so the plugin manager can attribute each registration to the plugin
that made it and reject clashes with a one-line error naming both plugins.

Plugins mark their implementations with :data:`hookimpl`::

    from autotune.platform.hookspecs import hookimpl

    @hookimpl
    def register_targets(register):
        register(my_target)

docs/plugins.md documents each hook for plugin authors; a test checks that every
hookspec defined here appears there and is exercised by a test plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "autotune"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_targets(register: Callable[[Any], None]) -> None:
    """Contribute targets: call ``register(target)`` once per core this plugin supports.

    ``target`` is an :class:`autotune.platform.target.Target`. Its ``name`` and every
    alias must be unique across all loaded plugins; its ``isa`` names an ISA support
    registered through :func:`register_isas`, its ``runner`` a runner registered through
    :func:`register_runners`, its ``cycle_model`` (if any) a model registered through
    :func:`register_cycle_models`, and its ``toolchain`` the Debian package that
    provides the compiler.
    """


@hookspec
def register_isas(register: Callable[[Any], None]) -> None:
    """Contribute instruction sets: call ``register(isa)`` once per ISA this plugin brings.

    ``isa`` is an instance of a subclass of :class:`autotune.platform.isa.IsaSupport`:
    the harness startup code and linker-script details, the emulator's architecture,
    CPU model and register conventions, the instruction decoder used by timing models,
    the qemu-user binary and CPU, and how to read ISA features from the compiler.
    """


@hookspec
def register_cycle_models(register: Callable[[Any], None]) -> None:
    """Contribute timing models: call ``register(model)`` once per model.

    ``model`` is an instance of a subclass of
    :class:`autotune.platform.cycles.base.CycleModel`; targets refer to it by its
    versioned name (``"cortex-m4 v1"``), which must be unique across plugins.
    """


@hookspec
def register_kernels(register: Callable[[Any], None]) -> None:
    """Contribute kernel templates: call ``register(template)`` once per template.

    ``template`` is an instance of a subclass of
    :class:`autotune.tune.template.KernelTemplate` with a unique ``name``.
    """


@hookspec
def register_ops(register: Callable[[Any], None]) -> None:
    """Contribute ops: call ``register(op)`` once per TFLite builtin op this plugin brings.

    ``op`` is an :class:`autotune.opdef.Op`: the reference kernel and its check, the
    untuned C emitter and, for an op templates can tune, the spec builder. Its
    templates are the kernels registered with ``op`` equal to its name.
    """


@hookspec
def register_runners(register: Callable[[Any], None]) -> None:
    """Contribute runners: call ``register(runner)`` once per way of executing an ELF.

    ``runner`` is an instance of a subclass of :class:`autotune.platform.runner.Runner`
    with a unique ``name``; targets refer to runners by that name, and core code asks
    a runner only for its ``capabilities``.
    """
