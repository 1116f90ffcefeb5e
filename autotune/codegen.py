"""Rendering C from Jinja files: one environment per template folder, and C literals.

Shared by the kernel templates (tune) and the C generators of untuned ops (emit), so
neither reaches into the other. The built-in Jinja files live in ``kernels/``
(``autotune.kernels``); a plugin's templates live in its own package, and its
environment falls back to ``kernels/`` for the shared pieces (``header.j2``,
``include/at_nn.h``).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path

import jinja2

KERNELS_DIR = Path(str(resources.files("autotune.kernels"))).resolve()
INCLUDE_DIR = KERNELS_DIR / "include"


@cache
def environment(directory: Path | None = None) -> jinja2.Environment:
    """The Jinja environment for templates in ``directory`` (default: ``kernels/``)."""
    folders = [str(KERNELS_DIR)]
    if directory is not None and Path(directory) != KERNELS_DIR:
        folders.insert(0, str(directory))
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folders),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )


def c_array(ctype: str, name: str, values: Iterable[int], per_line: int = 16) -> str:
    """A static const C array, wrapped for reading."""
    vals = [int(v) for v in values]
    if not vals:
        vals = [0]  # C has no empty arrays; nothing reads this element
    lines = []
    for i in range(0, len(vals), per_line):
        lines.append("    " + ", ".join(str(v) for v in vals[i : i + per_line]) + ",")
    align = " __attribute__((aligned(4)))"
    return f"static const {ctype} {name}[{len(vals)}]{align} = {{\n" + "\n".join(lines) + "\n};"
