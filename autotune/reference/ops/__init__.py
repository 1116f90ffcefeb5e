"""Reference kernels. Importing this package registers every module in it, then the ops
defined in one place each (autotune/ops/, see autotune/opdef.py)."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

from autotune.opdef import install_builtin  # noqa: E402  (after the modules above)

install_builtin()
