"""The op and plugin registries fill themselves on import, so an import cycle shows only
when a program happens to import a particular module first (the fuzzer's child imported
the plugins first and died on one). Each module a program or plugin may start from is
imported first into a clean set of autotune modules, then the registries are used."""

from __future__ import annotations

import subprocess
import sys

_SCRIPT = """
import importlib, pkgutil, sys
import autotune.ops
firsts = ["autotune.opdef", "autotune.tune.spec", "autotune.tune.template",
          "autotune.tune.pipeline", "autotune.platform.plugins", "autotune.reference.ops",
          "autotune.reference.executor", "autotune.emit.ops", "autotune.emit.library",
          "autotune.cli.main"]
firsts += [f"autotune.ops.{m.name}" for m in pkgutil.iter_modules(autotune.ops.__path__)]
failed = []
for first in firsts:
    for name in [n for n in sys.modules if n == "autotune" or n.startswith("autotune.")]:
        del sys.modules[name]
    try:
        importlib.import_module(first)
        from autotune.opdef import defined_ops
        from autotune.platform import plugins
        plugins.get_target("cortex-m4")
        for info in pkgutil.iter_modules(autotune.ops.__path__):
            for op in importlib.import_module(f"autotune.ops.{info.name}").OPS:
                assert defined_ops().get(op.name) is op, f"{op.name} is not installed"
    except Exception as exc:
        failed.append(f"{first}: {exc!r}")
print("\\n".join(failed) or "ok")
"""


def test_every_entry_module_can_be_imported_first() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok", done.stdout
