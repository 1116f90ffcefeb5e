"""What a results DB row may be trusted for.

A row holds parameters and measurements, never code and never a verdict that ships.
Parameters are checked against the template's declared space before anything is
rendered; a verdict ("bit-exact") counts only when this machine sealed it with its own
secret key, so a row copied from elsewhere, or forged in a shared DB, is at most a hint.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.db.schema import METRIC_COLUMNS, STATUSES

if TYPE_CHECKING:
    from autotune.db.schema import Trial
    from autotune.tune.space import Space

log = logging.getLogger("autotune.db")


def data_dir() -> Path:
    """$XDG_DATA_HOME/autotune (~/.local/share/autotune): the user's DB and machine key."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "autotune"


def key_path() -> Path:
    return Path(os.environ.get("AUTOTUNE_MACHINE_KEY") or data_dir() / "machine.key")


@cache
def _machine_key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    for _ in range(100):  # another process may have created it and not written it yet
        key = path.read_text().strip()
        if key:
            return bytes.fromhex(key)
    raise OSError(f"machine key {path} is empty")


def seal(*parts: str) -> str:
    """An HMAC of `parts` with this machine's key: only this machine can produce it."""
    mac = hmac.new(_machine_key(key_path()), digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part.encode())
        mac.update(b"\0")
    return mac.hexdigest()


def parse_params(text: Any) -> dict[str, Any] | None:
    try:
        point = json.loads(text)
    except (TypeError, ValueError):
        return None
    return point if isinstance(point, dict) else None


def row_problem(trial: Trial, space: Space) -> str | None:
    """Why a stored trial cannot be used for this template's space, or None."""
    point = parse_params(trial.params)
    if point is None:
        return "parameters are not a JSON object"
    reason = space.check(point)
    if reason:
        return reason
    if trial.status not in STATUSES:
        return f"unknown status {trial.status!r}"
    for name in METRIC_COLUMNS:
        value = getattr(trial, name)
        if value is not None and (type(value) is not int or value < 0):
            return f"{name}={value!r} is not a count"
    measured = (trial.cycles, trial.instructions, trial.code_bytes)
    if trial.status == "ok" and all(v is None for v in measured):
        return "an ok trial without any measurement"
    return None


_warned: set[tuple[str, int]] = set()


def warn_row(source: str, trial: Trial, problem: str) -> None:
    """Once per row and process: the row is ignored, the run goes on."""
    if (source, trial.id) in _warned:
        return
    _warned.add((source, trial.id))
    log.warning(
        "autotune: warning: results DB %s: trial %s (%s) ignored: %s",
        source,
        trial.id,
        trial.template,
        problem,
    )
