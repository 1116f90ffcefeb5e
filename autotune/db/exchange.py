"""Results as versioned JSON lines: export, import, merge (docs/db.md has the format).

Only trials travel: parameters and measurements with their key and provenance. Verdicts
(verifications, whole-library records) are sealed per machine and never leave it. Every
incoming line is checked before it is stored; a bad line is skipped with a warning naming
it, and the others go in.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from autotune import __version__
from autotune.db.schema import KEY_COLUMNS, METRIC_COLUMNS, STATUSES, Trial
from autotune.errors import AutotuneError

FORMAT = "autotune-results"
VERSION = 1
log = logging.getLogger("autotune.db")

# Text fields of a trial line and their longest allowed value (the columns' sizes).
TEXT_FIELDS = {
    "target_fingerprint": 64,
    "workload_key": 64,
    "template": 64,
    "template_hash": 64,
    "runner": 32,
    "cycle_model": 64,
    "target": 64,
    "toolchain": 256,
    "tool_version": 32,
    "host": 128,
}


class ExchangeError(AutotuneError):
    """A file that is not autotune results JSON lines at all."""


def header() -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "tool_version": __version__}


def trial_line(t: Trial) -> dict[str, Any]:
    """One trial as a JSON object (params and workload as objects, not strings)."""
    out: dict[str, Any] = {k: getattr(t, k) for k in KEY_COLUMNS}
    out["params"] = json.loads(t.params)
    out["workload"] = json.loads(t.workload) if t.workload else {}
    for k in ("target", "toolchain", "status", "reason", *METRIC_COLUMNS, "is_baseline"):
        out[k] = getattr(t, k)
    for k in ("seconds", "tool_version", "host", "created"):
        out[k] = getattr(t, k)
    return out


def write_lines(trials: Iterable[Trial], out: IO[str]) -> int:
    out.write(json.dumps(header(), sort_keys=True) + "\n")
    n = 0
    for t in trials:
        try:
            line = trial_line(t)
        except (TypeError, ValueError):
            continue  # a row whose JSON is broken is not worth passing on
        out.write(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n")
        n += 1
    return n


def line_problem(obj: Any) -> str | None:
    """Why a trial line cannot be stored, or None (the space is checked when it is used)."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    for name, longest in TEXT_FIELDS.items():
        value = obj.get(name)
        if not isinstance(value, str) or (not value and name in KEY_COLUMNS[:2]):
            return f"{name} missing or not text"
        if len(value) > longest:
            return f"{name} longer than {longest} characters"
    params = obj.get("params")
    if not isinstance(params, dict) or not all(
        isinstance(k, str) and len(k) <= 64 and _scalar(v) for k, v in params.items()
    ):
        return "params is not an object of plain values"
    if obj.get("status") not in STATUSES:
        return f"status {obj.get('status')!r:.40} is not one of {list(STATUSES)}"
    for name in METRIC_COLUMNS:
        value = obj.get(name)
        if value is not None and (type(value) is not int or not 0 <= value < 2**62):
            return f"{name}={value!r:.40} is not a count"
    if not isinstance(obj.get("is_baseline"), bool):
        return "is_baseline is not true or false"
    for name in ("seconds", "created"):
        value = obj.get(name)
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            return f"{name} is not a number"
    if not isinstance(obj.get("reason", ""), str) or not isinstance(obj.get("workload"), dict):
        return "reason or workload malformed"
    return None


def _scalar(v: Any) -> bool:
    if isinstance(v, str):
        return len(v) <= 64
    return v is None or isinstance(v, bool | int) or (isinstance(v, float) and math.isfinite(v))


def row_from_line(obj: dict[str, Any]) -> dict[str, Any]:
    """A validated line as the trials table's columns."""
    row = {k: obj[k] for k in TEXT_FIELDS}
    row["params"] = json.dumps(obj["params"], sort_keys=True, separators=(",", ":"))
    row["workload"] = json.dumps(obj["workload"], sort_keys=True)
    row["reason"] = str(obj.get("reason", ""))[:2000]
    row["status"] = obj["status"]
    for k in METRIC_COLUMNS:
        row[k] = obj.get(k)
    row["is_baseline"] = obj["is_baseline"]
    row["seconds"] = float(obj["seconds"])
    row["created"] = float(obj["created"])
    return row


@dataclass
class ReadResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # "line N: problem"


def read_lines(lines: Iterable[str], source: str) -> ReadResult:
    """Parse and check a JSON-lines export; a bad trial line is skipped with a warning."""
    it = iter(enumerate(lines, 1))
    first = next(((n, s) for n, s in it if s.strip()), None)
    try:
        head = json.loads(first[1]) if first else None
    except ValueError:
        head = None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise ExchangeError(f"{source}: not an autotune results file (no {FORMAT!r} header line)")
    if head.get("version") != VERSION:
        raise ExchangeError(
            f"{source}: results format version {head.get('version')!r}; "
            f"this autotune reads version {VERSION}"
        )
    out = ReadResult()
    for n, text in it:
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except ValueError:
            problem: str | None = "not JSON"
        else:
            problem = line_problem(obj)
        if problem:
            out.rejected.append(f"line {n}: {problem}")
            log.warning("autotune: warning: %s line %d ignored: %s", source, n, problem)
            continue
        out.rows.append(row_from_line(obj))
    return out


def read_file(path: Path) -> ReadResult:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return read_lines(f, str(path))
    except OSError as exc:
        raise ExchangeError(f"{path}: cannot read ({exc.strerror})") from None


def shipped_files() -> Iterator[Path]:
    """The results shipped with autotune (results_db/*.jsonl, installed as autotune.results_db)."""
    from importlib import resources

    try:
        root = resources.files("autotune.results_db")
    except ModuleNotFoundError:
        return
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".jsonl"):
            yield Path(str(entry))
