"""The plugin manager and the registries of targets, ISAs, cycle models, runners and kernels.

Plugins come from three places, loaded in this order:

1. built-in plugins: every public module of the ``autotune.targets`` package (the
   ``targets/`` folder of the repository). They are found by scanning the package rather
   than through installed entry points, so a new file there takes effect without
   re-installing autotune; after that they are handled exactly like external plugins;
2. external plugins: entry points in the ``autotune`` group of any installed
   distribution (``[project.entry-points.autotune]`` in its pyproject.toml);
3. plugins registered in-process with :func:`register_plugin` (tests, notebooks).

``AUTOTUNE_PLUGINS`` (comma-separated plugin names) restricts which built-in and
external plugins load; set to the empty string it loads none. A built-in plugin's name
is its module name (``cortex_m``), an external plugin's name is its entry-point name.

Registries are built on first use by calling each hook with a ``register`` callable
that validates what it receives and remembers which plugin registered it, so a clash
is reported with both plugin names.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from autotune.errors import AutotuneError
from autotune.platform import hookspecs
from autotune.platform.cycles import base as cycles_base
from autotune.platform.cycles.base import CycleModel
from autotune.platform.isa import IsaSupport
from autotune.platform.parts import CORE_ONLY, Part, load_part_file
from autotune.platform.runner import Runner
from autotune.platform.target import Target

ENV_VAR = "AUTOTUNE_PLUGINS"
ENTRY_POINT_GROUP = "autotune"
BUILTIN_PACKAGE = "autotune.targets"


class PluginError(AutotuneError):
    """A plugin that cannot be loaded, or that registers something invalid or clashing."""


class UnknownNameError(AutotuneError):
    """A name that no plugin registered; the message lists the known ones."""

    kind = "name"

    def __init__(self, name: str, known: list[str], suggestion: str | None) -> None:
        self.name = name
        self.known = known
        self.suggestion = suggestion
        if not known:
            msg = f"unknown {self.kind} '{name}': no {self.kind}s are registered"
            if ENV_VAR in os.environ:
                msg += f" ({ENV_VAR}={os.environ[ENV_VAR]!r} restricts which plugins load)"
        else:
            hint = f"; closest match: {suggestion}" if suggestion else ""
            msg = f"unknown {self.kind} '{name}'{hint}; known {self.kind}s: {', '.join(known)}"
        super().__init__(msg)


class UnknownTargetError(UnknownNameError):
    """A target name or alias that no plugin registered."""

    kind = "target"


class UnknownPartError(UnknownNameError):
    """A part or board name that no plugin registered."""

    kind = "part"


class UnknownRunnerError(UnknownNameError):
    """A runner name that no plugin registered."""

    kind = "runner"


class UnknownKernelError(UnknownNameError):
    """A kernel template name that no plugin registered."""

    kind = "kernel template"


class UnknownIsaError(UnknownNameError):
    """An ISA name (``Target.isa``) that no plugin registered."""

    kind = "ISA"


class UnknownCycleModelError(UnknownNameError, cycles_base.UnknownCycleModelError):
    """A cycle model name that no plugin registered."""

    kind = "cycle model"


@dataclass(frozen=True)
class PluginInfo:
    """Where a loaded plugin came from, for `autotune targets` and error messages."""

    name: str
    origin: str  # "builtin", "entry-point" or "registered"
    module: str
    distribution: str = ""


@dataclass
class _Registries:
    """What the hooks registered, with the plugin responsible for each entry."""

    targets: dict[str, Target] = field(default_factory=dict)
    parts: dict[str, Part] = field(default_factory=dict)
    part_aliases: dict[str, str] = field(default_factory=dict)  # part or board -> part
    aliases: dict[str, str] = field(default_factory=dict)  # lower-case alias or name -> name
    runners: dict[str, Runner] = field(default_factory=dict)
    kernels: dict[str, Any] = field(default_factory=dict)  # name -> KernelTemplate
    isas: dict[str, IsaSupport] = field(default_factory=dict)
    cycle_models: dict[str, CycleModel] = field(default_factory=dict)
    ops: dict[str, Any] = field(default_factory=dict)  # name -> autotune.opdef.Op
    owner: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> plugin


class _State:
    """The process-wide plugin manager and its registries, built lazily."""

    def __init__(self) -> None:
        self.pm: pluggy.PluginManager | None = None
        self.infos: dict[str, PluginInfo] = {}
        self.registries: _Registries | None = None


_state = _State()


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _requested() -> set[str] | None:
    """The plugin names AUTOTUNE_PLUGINS allows, or None when it is unset."""
    raw = os.environ.get(ENV_VAR)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _builtin_candidates() -> list[tuple[str, str]]:
    """(plugin name, module name) for every public module of autotune.targets."""
    package = importlib.import_module(BUILTIN_PACKAGE)
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    )
    return [(name, f"{BUILTIN_PACKAGE}.{name}") for name in names]


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _register(pm: pluggy.PluginManager, plugin: object, info: PluginInfo) -> None:
    """Register one plugin object, turning pluggy's errors into one-line PluginErrors."""
    if info.name in _state.infos:
        other = _state.infos[info.name]
        raise PluginError(
            f"two plugins are named '{info.name}': {other.module} ({other.origin}) "
            f"and {info.module} ({info.origin})"
        )
    try:
        pm.register(plugin, name=info.name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin '{info.name}' ({info.module}): {exc}") from exc
    except ValueError as exc:  # the same object registered twice under another name
        raise PluginError(f"plugin '{info.name}' ({info.module}): {exc}") from exc
    _state.infos[info.name] = info


def _load() -> pluggy.PluginManager:
    """Create the manager and load built-in and external plugins (once per process)."""
    if _state.pm is not None:
        return _state.pm
    pm = _new_manager()
    _state.infos = {}
    wanted = _requested()
    builtins = _builtin_candidates()
    entry_points = _entry_points()
    if wanted is not None:
        available = [name for name, _ in builtins] + [ep.name for ep in entry_points]
        missing = sorted(wanted - set(available))
        if missing:
            raise PluginError(
                f"{ENV_VAR} names unknown plugin(s) {', '.join(missing)}; "
                f"available plugins: {', '.join(available) or 'none'}"
            )
    for name, module_name in builtins:
        if wanted is not None and name not in wanted:
            continue
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise PluginError(
                f"built-in plugin '{name}' failed to import: {type(exc).__name__}: {exc}"
            ) from exc
        _register(pm, module, PluginInfo(name, "builtin", module_name))
    for ep in entry_points:
        if wanted is not None and ep.name not in wanted:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(
                f"plugin '{ep.name}' (entry point {ep.value}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        dist = ep.dist.name if ep.dist is not None else ""
        _register(pm, plugin, PluginInfo(ep.name, "entry-point", ep.value, dist))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"a plugin implements an unknown hook: {exc}") from exc
    _state.pm = pm
    return pm


def plugin_manager() -> pluggy.PluginManager:
    """The loaded plugin manager (built-in and external plugins)."""
    return _load()


def plugins() -> list[PluginInfo]:
    """Every loaded plugin, in load order."""
    _load()
    return list(_state.infos.values())


def register_plugin(plugin: object, name: str) -> None:
    """Add a plugin in-process (a module, class or object with hookimpls).

    Registries are rebuilt on next use, so the plugin's targets, runners and kernels
    appear immediately.
    """
    pm = _load()
    module = getattr(plugin, "__module__", None) or getattr(plugin, "__name__", repr(plugin))
    _register(pm, plugin, PluginInfo(name, "registered", str(module)))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(name=name)
        del _state.infos[name]
        raise PluginError(f"plugin '{name}' implements an unknown hook: {exc}") from exc
    _state.registries = None


def unregister_plugin(name: str) -> None:
    """Remove a plugin added by name (for tests); unknown names are an error."""
    pm = _load()
    if name not in _state.infos:
        raise PluginError(f"no plugin named '{name}' is loaded")
    pm.unregister(name=name)
    del _state.infos[name]
    _state.registries = None


def reset() -> None:
    """Forget every plugin and registry; the next use reloads (and re-reads AUTOTUNE_PLUGINS)."""
    _state.pm = None
    _state.infos = {}
    _state.registries = None


def _named(kind: str, obj: object, plugin: str) -> str:
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name.strip():
        raise PluginError(
            f"plugin '{plugin}' registered a {kind} without a non-empty string 'name': {obj!r}"
        )
    return name


def _call_hook(
    pm: pluggy.PluginManager, hook: str, make_register: Callable[[str], Callable[[Any], None]]
) -> None:
    """Call one hook on every plugin, each with a register callable bound to that plugin.

    Plugins are called in load order (pluggy itself would call the last one first),
    so built-in entries come first in every registry.
    """
    for impl in getattr(pm.hook, hook).get_hookimpls():
        register = make_register(impl.plugin_name)
        kwargs = {arg: register for arg in impl.argnames}
        try:
            impl.function(**kwargs)
        except AutotuneError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin '{impl.plugin_name}' failed in {hook}: {type(exc).__name__}: {exc}"
            ) from exc


def _build() -> _Registries:
    if _state.registries is not None:
        return _state.registries
    pm = _load()
    reg = _Registries()

    def target_register(plugin: str) -> Callable[[Any], None]:
        def register(target: Any) -> None:
            if isinstance(target, Part):  # the parts a core comes in
                register_part(plugin, target)
                return
            if not isinstance(target, Target):
                raise PluginError(
                    f"plugin '{plugin}' registered {type(target).__name__}, "
                    "not an autotune.platform.target.Target"
                )
            name = _named("target", target, plugin)
            for key in (name, *target.aliases):
                low = key.strip().lower()
                if not low:
                    raise PluginError(f"plugin '{plugin}': target '{name}' has an empty alias")
                if low in reg.aliases:
                    other = reg.aliases[low]
                    raise PluginError(
                        f"plugin '{plugin}': target '{name}' claims '{key}', already used by "
                        f"target '{other}' from plugin '{reg.owner['target', other]}'"
                    )
            reg.targets[name] = target
            reg.owner["target", name] = plugin
            for key in (name, *target.aliases):
                reg.aliases[key.strip().lower()] = name

        return register

    def register_part(plugin: str, part: Part) -> None:
        problems = part.check()
        if problems:
            raise PluginError(f"plugin '{plugin}': part '{part.name}': {'; '.join(problems)}")
        for key in (part.name, *part.boards):
            low = key.strip().lower()
            if low in reg.part_aliases:
                other = reg.part_aliases[low]
                raise PluginError(
                    f"plugin '{plugin}': part '{part.name}' claims '{key}', already used by "
                    f"part '{other}' from plugin '{reg.owner['part', other]}'"
                )
        reg.parts[part.name] = part
        reg.owner["part", part.name] = plugin
        for key in (part.name, *part.boards):
            reg.part_aliases[key.strip().lower()] = part.name

    register_part("autotune", CORE_ONLY)

    def named_register(
        kind: str, store: dict[str, Any], contract: type, key: Callable[[Any], str] | None = None
    ) -> Callable[[str], Callable[[Any], None]]:
        def make(plugin: str) -> Callable[[Any], None]:
            def register(obj: Any) -> None:
                if not isinstance(obj, contract):
                    what = (
                        f"the class {obj.__name__} (register an instance)"
                        if isinstance(obj, type) and issubclass(obj, contract)
                        else f"{type(obj).__name__} {obj!r}"
                    )
                    raise PluginError(
                        f"plugin '{plugin}' registered {what} as a {kind}, "
                        f"not an instance of {contract.__module__}.{contract.__qualname__}"
                    )
                name = key(obj) if key is not None else _named(kind, obj, plugin)
                if name in store:
                    raise PluginError(
                        f"plugin '{plugin}': {kind} '{name}' is already registered by "
                        f"plugin '{reg.owner[kind, name]}'"
                    )
                store[name] = obj
                reg.owner[kind, name] = plugin

            return register

        return make

    from autotune.opdef import Op, install
    from autotune.tune.template import KernelTemplate  # the kernel layer owns that contract

    _call_hook(pm, "register_targets", target_register)
    _call_hook(pm, "register_isas", named_register("ISA", reg.isas, IsaSupport))
    _call_hook(
        pm,
        "register_cycle_models",
        named_register("cycle model", reg.cycle_models, CycleModel, key=lambda m: m.name),
    )
    _call_hook(pm, "register_runners", named_register("runner", reg.runners, Runner))
    _call_hook(pm, "register_kernels", named_register("kernel", reg.kernels, KernelTemplate))
    _call_hook(pm, "register_ops", named_register("op", reg.ops, Op))
    for name, op in reg.ops.items():
        try:
            install(op, f"plugin '{reg.owner['op', name]}'")
        except AutotuneError as exc:
            raise PluginError(str(exc)) from exc
    _state.registries = reg
    return reg


def _closest(name: str, candidates: Iterable[str], describe: Mapping[str, str]) -> str | None:
    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    if not found:
        return None
    return describe.get(found[0], found[0])


def get_targets() -> dict[str, Target]:
    """Every registered target by canonical name, built-in plugins first."""
    return dict(_build().targets)


def get_target(name_or_alias: str) -> Target:
    """The target with this name or alias (case-insensitive); UnknownTargetError otherwise."""
    reg = _build()
    key = name_or_alias.strip().lower()
    if key in reg.aliases:
        return reg.targets[reg.aliases[key]]
    known = [
        f"{t.name} ({', '.join(t.aliases)})" if t.aliases else t.name for t in reg.targets.values()
    ]
    describe = {k: (k if k == v else f"{k} ({v})") for k, v in reg.aliases.items()}
    raise UnknownTargetError(name_or_alias, known, _closest(key, reg.aliases, describe))


def target_plugin(name: str) -> str:
    """The name of the plugin that registered a target (name or alias)."""
    target = get_target(name)
    return _build().owner["target", target.name]


def metric_label(target: Target) -> str:
    """What a measurement on ``target`` counts, as reports must label it (its runner says)."""
    return get_runner(target.runner).metric_label(target)


def get_runners() -> dict[str, Runner]:
    """Every registered runner by name."""
    return dict(_build().runners)


def get_runner(name: str) -> Runner:
    """The runner with this name; UnknownRunnerError lists the registered ones."""
    runners = _build().runners
    if name in runners:
        return runners[name]
    raise UnknownRunnerError(name, list(runners), _closest(name, runners, {}))


def get_kernels() -> dict[str, Any]:
    """Every registered kernel template by name."""
    return dict(_build().kernels)


def get_kernel(name: str) -> Any:
    """The kernel template with this name; UnknownKernelError lists the registered ones."""
    kernels = _build().kernels
    if name in kernels:
        return kernels[name]
    raise UnknownKernelError(name, list(kernels), _closest(name, kernels, {}))


def get_ops() -> dict[str, Any]:
    """Every op registered by a plugin (``register_ops``), by name; built-in ones from the
    ops/ folder are in ``autotune.opdef.defined_ops()``."""
    return dict(_build().ops)


def get_isas() -> dict[str, IsaSupport]:
    """Every registered ISA support by name."""
    return dict(_build().isas)


def get_isa(name: str) -> IsaSupport:
    """The ISA support with this name (``Target.isa``); UnknownIsaError lists the known ones."""
    isas = _build().isas
    if name in isas:
        return isas[name]
    raise UnknownIsaError(name, list(isas), _closest(name, isas, {}))


def function_address_mask(elf_machine: str) -> int:
    """What to mask a function symbol's value with for its code address in an ELF of
    this ``e_machine`` (pyelftools' name): the ISAs registered for that machine say."""
    mask = ~0
    for isa in _build().isas.values():
        if isa.elf_machine == elf_machine:
            mask &= isa.function_address_mask
    return mask


def isa_of(target: Target) -> IsaSupport:
    """The ISA support of a target, with an error naming the target when it has none."""
    if not target.isa:
        raise PluginError(
            f"target {target.name} names no ISA support (set Target.isa to a name "
            f"registered through register_isas; known: {', '.join(get_isas()) or 'none'})"
        )
    try:
        return get_isa(target.isa)
    except UnknownIsaError as exc:
        raise UnknownIsaError(target.isa, exc.known, exc.suggestion) from None


def get_parts() -> dict[str, Part]:
    """Every registered part by name."""
    return dict(_build().parts)


def get_part(name_or_board: str) -> Part:
    """A part by name or board name (case-insensitive), or a calibrated preset file
    (``*.json``, see :func:`autotune.platform.parts.load_part_file`)."""
    reg = _build()
    if name_or_board.endswith(".json"):
        return load_part_file(name_or_board, reg.parts)
    key = name_or_board.strip().lower()
    if key in reg.part_aliases:
        return reg.parts[reg.part_aliases[key]]
    known = [
        f"{p.name} ({', '.join(p.boards)})" if p.boards else p.name for p in reg.parts.values()
    ]
    raise UnknownPartError(name_or_board, known, _closest(key, reg.part_aliases, {}))


def get_cycle_models() -> dict[str, CycleModel]:
    """Every registered cycle model by versioned name (``"cortex-m4 v1"``)."""
    return dict(_build().cycle_models)


def get_cycle_model(name: str) -> CycleModel:
    """The model called ``name``; a bare core name (``"cortex-m4"``) means its latest version.

    A part may follow a comma (``"cortex-m4 v3, stm32l4r5 v1 @120 MHz"``): the core model
    is what precedes it (the emulator adds the part's memory system itself)."""
    name = name.split(",", 1)[0].strip()
    models = _build().cycle_models
    if name in models:
        return models[name]
    versions = [m for m in models.values() if m.info.name == name]
    if versions:
        return max(versions, key=lambda m: m.info.version)
    raise UnknownCycleModelError(name, sorted(models), _closest(name, models, {}))
