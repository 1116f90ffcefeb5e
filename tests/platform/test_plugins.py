"""The plugin seam: hooks, loading (built-in, entry points, AUTOTUNE_PLUGINS) and registries."""

from __future__ import annotations

import dataclasses
import inspect
import re
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autotune.errors import AutotuneError
from autotune.opdef import Op, defined_ops
from autotune.platform import hookspecs, plugins
from autotune.platform.cycles.base import BlockCost, CycleModel, ModelInfo
from autotune.platform.hookspecs import hookimpl
from autotune.platform.isa import IsaSupport
from autotune.platform.runner import Runner, RunnerCapabilities
from autotune.platform.target import MemoryRegion, Target, Toolchain
from autotune.tune.space import Space
from autotune.tune.template import KernelTemplate

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test loads plugins from scratch, and leaves no state behind."""
    monkeypatch.delenv(plugins.ENV_VAR, raising=False)
    plugins.reset()
    yield
    plugins.reset()


def tiny_target(name: str = "tiny-core", aliases: tuple[str, ...] = ("tiny",)) -> Target:
    return Target(
        name=name,
        aliases=aliases,
        family="tiny",
        arch="tiny1",
        toolchain=Toolchain("gcc-tiny-elf", "tiny-elf-gcc", ("-mcpu=tiny",), size="tiny-elf-size"),
        memory=(MemoryRegion("flash", 0, 1 << 20), MemoryRegion("ram", 1 << 28, 1 << 19)),
        isa="tiny-isa",
        runner="tiny-runner",
        cycle_model="tiny v1",
        features=frozenset({"mul"}),
        description="a core that exists only in this test",
    )


@dataclasses.dataclass(frozen=True)
class Named:
    name: str


class TinyRunner(Runner):
    name = "tiny-runner"
    capabilities = RunnerCapabilities(executes=True, counts_instructions=True)

    def run(self, elf_path, target, inputs=None, outputs=None, budget=1, profile=False):
        raise NotImplementedError


class TinyIsa(IsaSupport):
    name = "tiny-isa"
    elf_machine = "EM_TINY"
    startup = Path("start_tiny.S")


class TinyModel(CycleModel):
    info = ModelInfo("tiny", 1)

    def block_cost(self, insns):
        return BlockCost(len(insns), len(insns))


TINY_OP = Op("TINY_IDENTITY", kernel=lambda ctx, args: [args[0]], description="for tests")


class TinyDot(KernelTemplate):
    name = "tiny-dot"
    op = "TINY"
    main_file = "tiny.c.j2"

    def applies(self, spec, target):
        return False

    def space(self, spec, target):
        return Space([])

    def context(self, spec, target, params):
        return {}


class TinyPlugin:
    """Implements every hookspec; records which hooks autotune called."""

    def __init__(self) -> None:
        self.called: list[str] = []

    @hookimpl
    def register_targets(self, register: Callable[[Any], None]) -> None:
        self.called.append("register_targets")
        register(tiny_target())

    @hookimpl
    def register_runners(self, register: Callable[[Any], None]) -> None:
        self.called.append("register_runners")
        register(TinyRunner())

    @hookimpl
    def register_kernels(self, register: Callable[[Any], None]) -> None:
        self.called.append("register_kernels")
        register(TinyDot())

    @hookimpl
    def register_isas(self, register: Callable[[Any], None]) -> None:
        self.called.append("register_isas")
        register(TinyIsa())

    @hookimpl
    def register_cycle_models(self, register: Callable[[Any], None]) -> None:
        self.called.append("register_cycle_models")
        register(TinyModel())

    @hookimpl
    def register_ops(self, register: Callable[[Any], None]) -> None:
        self.called.append("register_ops")
        register(TINY_OP)


def hookspec_names() -> list[str]:
    return sorted(
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, f"{hookspecs.PROJECT}_spec")
    )


def test_every_hookspec_is_exercised_by_the_test_plugin() -> None:
    implemented = sorted(
        name for name, fn in inspect.getmembers(TinyPlugin) if hasattr(fn, "autotune_impl")
    )
    assert implemented == hookspec_names()
    plugin = TinyPlugin()
    plugins.register_plugin(plugin, "tiny")
    assert plugins.get_target("tiny").name == "tiny-core"
    assert plugins.get_runner("tiny-runner").name == "tiny-runner"
    assert plugins.get_kernels()["tiny-dot"].name == "tiny-dot"
    assert plugins.get_kernel("tiny-dot").name == "tiny-dot"
    assert plugins.isa_of(plugins.get_target("tiny")).elf_machine == "EM_TINY"
    assert plugins.get_cycle_model("tiny").name == "tiny v1"
    assert plugins.get_ops()["TINY_IDENTITY"] is TINY_OP
    assert defined_ops()["TINY_IDENTITY"] is TINY_OP  # installed for reference and emit
    assert plugins.metric_label(plugins.get_target("tiny")) == "instructions (exact)"
    assert sorted(set(plugin.called)) == hookspec_names()
    assert plugins.target_plugin("tiny") == "tiny"


def test_every_hookspec_is_documented_with_its_arguments() -> None:
    text = DOCS.read_text()
    for name in hookspec_names():
        fn = getattr(hookspecs, name)
        assert fn.__doc__ and "register" in fn.__doc__, name
        args = ", ".join(inspect.signature(fn).parameters)
        assert re.search(rf"^#+ `?{name}\({args}\)`?", text, re.MULTILINE), (
            f"docs/plugins.md has no heading for {name}({args})"
        )
    assert "[project.entry-points.autotune]" in text
    assert plugins.ENV_VAR in text


def test_builtin_plugins_load_from_the_targets_package() -> None:
    infos = {p.name: p for p in plugins.plugins()}
    for name in ("cortex_m", "cortex_a", "riscv", "arc"):
        assert infos[name].origin == "builtin"
        assert infos[name].module == f"autotune.targets.{name}"
    assert plugins.target_plugin("m4") == "cortex_m"
    assert plugins.target_plugin("rv32imc") == "riscv"


def test_lookup_by_name_alias_and_case() -> None:
    assert plugins.get_target("cortex-m4") is plugins.get_target("m4")
    assert plugins.get_target(" M4 ").name == "cortex-m4"
    assert plugins.get_target("m0+").name == "cortex-m0plus"
    assert plugins.get_target("riscv").name == "rv32imc"
    assert plugins.get_target("em4_dmips").name == "arc-em"


def test_unknown_target_lists_known_and_closest() -> None:
    with pytest.raises(plugins.UnknownTargetError) as info:
        plugins.get_target("cortex-m44")
    err = info.value
    assert isinstance(err, AutotuneError)
    message = str(err)
    assert "\n" not in message
    assert "unknown target 'cortex-m44'" in message
    assert "closest match: cortex-m4" in message
    for name in plugins.get_targets():
        assert name in message
    assert err.suggestion == "cortex-m4"


def test_unknown_runner_and_kernel_are_autotune_errors() -> None:
    plugins.register_plugin(TinyPlugin(), "tiny")
    with pytest.raises(plugins.UnknownRunnerError, match="closest match: tiny-runner"):
        plugins.get_runner("tiny-runer")
    with pytest.raises(plugins.UnknownKernelError, match=r"known kernel templates: .*tiny-dot"):
        plugins.get_kernel("conv")


def test_alias_clash_names_both_plugins() -> None:
    class Clash:
        @hookimpl
        def register_targets(self, register: Callable[[Any], None]) -> None:
            register(tiny_target("my-m4", aliases=("m4",)))

    plugins.register_plugin(Clash(), "clash")
    with pytest.raises(plugins.PluginError) as info:
        plugins.get_targets()
    message = str(info.value)
    assert "'clash'" in message and "cortex-m4" in message and "'cortex_m'" in message


def test_duplicate_runner_names_both_plugins() -> None:
    plugins.register_plugin(TinyPlugin(), "first")

    class Second:
        @hookimpl
        def register_runners(self, register: Callable[[Any], None]) -> None:
            register(TinyRunner())

    plugins.register_plugin(Second(), "second")
    with pytest.raises(
        plugins.PluginError, match=r"'second'.*already registered by plugin 'first'"
    ):
        plugins.get_runners()


@pytest.mark.parametrize(
    ("hook", "thing", "message"),
    [
        ("register_targets", Named("not-a-target"), "not an autotune.platform.target.Target"),
        ("register_runners", Named("r"), "Named.* not an instance of .*runner.Runner"),
        ("register_runners", TinyRunner, "class TinyRunner \\(register an instance\\)"),
        ("register_kernels", Named("k"), "not an instance of .*template.KernelTemplate"),
        ("register_isas", object(), "not an instance of .*isa.IsaSupport"),
        ("register_ops", Named("o"), "not an instance of autotune.opdef.Op"),
        ("register_cycle_models", TinyModel, "class TinyModel.*cycles.base.CycleModel"),
        ("register_runners", type("Nameless", (TinyRunner,), {"name": ""})(), "non-empty"),
    ],
)
def test_invalid_registrations_are_rejected(hook: str, thing: object, message: str) -> None:
    def impl(register: Callable[[Any], None]) -> None:
        register(thing)

    impl.__name__ = hook
    plugin = type("Bad", (), {hook: staticmethod(hookimpl(impl))})
    plugins.register_plugin(plugin, "bad")
    with pytest.raises(plugins.PluginError, match=f"plugin 'bad'.*{message}"):
        plugins.get_targets()


def test_a_failing_hook_is_reported_with_the_plugin_name() -> None:
    class Broken:
        @hookimpl
        def register_targets(self, register: Callable[[Any], None]) -> None:
            raise RuntimeError("boom")

    plugins.register_plugin(Broken(), "broken")
    with pytest.raises(plugins.PluginError, match="plugin 'broken' failed in register_targets"):
        plugins.get_targets()


def test_unknown_hook_and_wrong_arguments_are_rejected() -> None:
    class Typo:
        @hookimpl
        def register_target(self, register: Callable[[Any], None]) -> None:
            register(tiny_target())

    with pytest.raises(plugins.PluginError, match="unknown hook"):
        plugins.register_plugin(Typo(), "typo")
    assert "typo" not in {p.name for p in plugins.plugins()}

    class WrongArgs:
        @hookimpl
        def register_targets(self, add: Callable[[Any], None]) -> None:
            add(tiny_target())

    with pytest.raises(plugins.PluginError, match="'wrong'"):
        plugins.register_plugin(WrongArgs(), "wrong")


def test_unregister_removes_the_plugins_entries() -> None:
    plugins.register_plugin(TinyPlugin(), "tiny")
    assert "tiny-core" in plugins.get_targets()
    plugins.unregister_plugin("tiny")
    assert "tiny-core" not in plugins.get_targets()
    with pytest.raises(plugins.PluginError, match="no plugin named 'tiny'"):
        plugins.unregister_plugin("tiny")


def test_env_var_restricts_which_plugins_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.ENV_VAR, "riscv, cortex_a")
    plugins.reset()
    assert {p.name for p in plugins.plugins()} == {"riscv", "cortex_a"}
    families = {t.family for t in plugins.get_targets().values()}
    assert families == {"riscv", "cortex-a"}
    with pytest.raises(plugins.UnknownTargetError, match=r"known targets: .*rv32imc"):
        plugins.get_target("m4")


def test_env_var_empty_loads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.ENV_VAR, "")
    plugins.reset()
    assert plugins.plugins() == []
    with pytest.raises(
        plugins.UnknownTargetError, match=r"no targets are registered.*AUTOTUNE_PLUGINS"
    ):
        plugins.get_target("m4")


def test_env_var_with_unknown_plugin_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.ENV_VAR, "riscv,cortex_m5")
    plugins.reset()
    with pytest.raises(
        plugins.PluginError, match=r"unknown plugin.*cortex_m5.*available.*cortex_m"
    ):
        plugins.get_targets()


@pytest.fixture
def installed_external_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real distribution on sys.path with an `autotune` entry point, as pip would leave it."""
    (tmp_path / "autotune_tiny_plugin.py").write_text(
        textwrap.dedent(
            """
            from autotune.platform.hookspecs import hookimpl
            from autotune.platform.target import MemoryRegion, Target, Toolchain

            @hookimpl
            def register_targets(register):
                register(Target(
                    name="tiny-ext", aliases=("tx",), family="tiny", arch="tiny1",
                    toolchain=Toolchain("gcc-tiny-elf", "tiny-elf-gcc", ("-mcpu=tiny",)),
                    memory=(MemoryRegion("flash", 0, 1 << 20),),
                    runner="unicorn", cycle_model="",
                ))
            """
        )
    )
    dist = tmp_path / "autotune_tiny_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: autotune-tiny-plugin\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text("[autotune]\ntiny = autotune_tiny_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reset()
    return "tiny"


def test_external_plugin_loads_from_its_entry_point(
    installed_external_plugin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = {p.name: p for p in plugins.plugins()}[installed_external_plugin]
    assert info.origin == "entry-point"
    assert info.distribution == "autotune-tiny-plugin"
    assert plugins.get_target("tx").name == "tiny-ext"
    assert plugins.target_plugin("tiny-ext") == "tiny"
    # Built-ins come first in the registry, external plugins after them.
    assert list(plugins.get_targets())[-1] == "tiny-ext"

    monkeypatch.setenv(plugins.ENV_VAR, installed_external_plugin)
    plugins.reset()
    assert list(plugins.get_targets()) == ["tiny-ext"]


def test_metric_labels_never_pass_an_estimate_off_as_a_measurement() -> None:
    m4 = plugins.get_target("m4")
    assert plugins.metric_label(m4) == "cycles (model cortex-m4 v3)"
    counted = dataclasses.replace(m4, cycle_model="")
    assert plugins.metric_label(counted) == "instructions (exact)"
    arc = plugins.get_target("arc-em")
    assert plugins.metric_label(dataclasses.replace(arc, runner="size-only")) == "code size only"
    assert plugins.metric_label(dataclasses.replace(arc, runner="nsim")) == "cycles (nSIM)"
