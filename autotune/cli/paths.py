"""Checks on where a command will write, made before any work starts.

A run that can only fail at its end (an unwritable --out, a missing folder for
`reference -o`, an in-memory results DB that keeps nothing) fails at once instead,
with one line naming the path.
"""

from __future__ import annotations

import os
from pathlib import Path

from autotune.errors import AutotuneError


def writable_dir(path: Path, option: str) -> Path:
    """Create `path` (and its parents) if needed; it must end up a writable folder."""
    if path.exists() and not path.is_dir():
        raise AutotuneError(f"{option} {path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AutotuneError(f"{option} {path}: cannot create the folder ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise AutotuneError(f"{option} {path}: the folder is not writable")
    return path


def writable_file(path: Path, option: str) -> Path:
    """`path` can be created or replaced: its folder exists and is writable, it is no folder."""
    if path.is_dir():
        raise AutotuneError(f"{option} {path}: is a folder, not a file")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise AutotuneError(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise AutotuneError(f"{option} {path}: not writable")
    return path


def persistent_db(url: str | None) -> str | None:
    """Refuse a results DB that lives only in memory (it would keep nothing measured, and
    `--jobs` workers could not share it) or is no URL at all, before any work starts."""
    if url is not None:
        from autotune.db.store import engine_url

        engine_url(url)
    return url
