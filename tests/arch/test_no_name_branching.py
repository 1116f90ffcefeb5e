"""Core (``autotune/``) never branches on a plugin's names: what varies per runner, ISA,
ELF machine, family, core or compiler is data the plugin provides.

Every string literal compared with ``==``/``!=``/``in``/``not in`` (also inside a tuple,
list or set compared with ``in``) is checked against the names the loaded plugins
register: runners, ISAs, their ELF machines, target names, aliases, families and
architectures, timing models, compilers; every literal dict key against the same names
but the runners' (a runner keys its own ``extra`` metadata, e.g. ``{"qemu": argv}``).
A plugin defining its own name (``name = "gdb"``) is an assignment, not a comparison,
and is not flagged; nor is a default value (``--target cortex-m4``). A tuple, list or
set literal holding two or more of the names is flagged wherever it is (a name list
such as a display order by family).
"""

from __future__ import annotations

import ast
from pathlib import Path

from autotune.platform import plugins

CORE = Path(__file__).resolve().parents[2] / "autotune"
COMPILERS = {"gcc", "clang", "armcc", "armclang", "iar"}


def plugin_names() -> set[str]:
    """Every name a loaded plugin registers but runners', and compilers' names."""
    names = set(plugins.get_cycle_models()) | COMPILERS
    for isa in plugins.get_isas().values():
        names |= {isa.name, isa.elf_machine}
    for target in plugins.get_targets().values():
        names |= {target.name, target.family, target.arch, *target.aliases}
        names.add(Path(target.toolchain.cc).name)
    return {n for n in names if n}


def _literals(node: ast.AST) -> list[ast.Constant]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [c for elt in node.elts for c in _literals(elt)]
    return []


def name_branches(
    source: str, names: set[str], runners: set[str], filename: str = "<src>"
) -> list[str]:
    """``file:line: 'literal'`` for each plugin name compared (``names`` and ``runners``)
    or used as a dict key (``names``); any ``EM_*`` machine name counts."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Compare):
            flagged = names | runners
            candidates = [c for side in (node.left, *node.comparators) for c in _literals(side)]
        elif isinstance(node, ast.Dict):
            flagged = names
            candidates = [c for key in node.keys if key is not None for c in _literals(key)]
        elif isinstance(node, ast.Tuple | ast.List | ast.Set):
            flagged = names | runners
            candidates = [c for c in _literals(node) if c.value in flagged]
            if len(candidates) < 2:
                continue
        else:
            continue
        for const in candidates:
            if const.value in flagged or const.value.startswith("EM_"):
                found.append(f"{filename}:{const.lineno}: {const.value!r}")
    return list(dict.fromkeys(found))


def test_the_check_catches_name_branching() -> None:
    names, runners = {"thumb-m", "cortex-m"}, {"unicorn"}
    source = (
        'if target.isa != "thumb-m": pass\n'
        'if runner.name in ("size-only", "unicorn"): pass\n'
        'ORDER = {"cortex-m": 0}\n'
        'ok = image.machine == "EM_ARM"\n'
        'RUNNER_NAME = "unicorn"\n'  # a plugin naming itself: fine
        'default = "cortex-m"\n'
        'extra = {"unicorn": 1}\n'  # a runner's own metadata key: fine
        '_ORDER = ("cortex-m", "thumb-m")\n'
    )
    assert name_branches(source, names, runners) == [
        "<src>:1: 'thumb-m'",
        "<src>:2: 'unicorn'",
        "<src>:3: 'cortex-m'",
        "<src>:4: 'EM_ARM'",
        "<src>:8: 'cortex-m'",
        "<src>:8: 'thumb-m'",
    ]


def test_core_never_branches_on_a_plugin_name() -> None:
    names, runners = plugin_names(), set(plugins.get_runners())
    assert {"thumb-m", "EM_ARM", "cortex-m", "cortex-m4", "armv6-m"} <= names  # sanity
    assert {"unicorn", "size-only", "gdb"} <= runners
    found = []
    for path in sorted(CORE.rglob("*.py")):
        label = str(path.relative_to(CORE.parent))
        found += name_branches(path.read_text(), names, runners, label)
    assert not found, "core branches on plugin names:\n" + "\n".join(found)
