"""The results DB: every measured variant, keyed by everything that changes a result.

SQLite at a per-user path by default; any SQLAlchemy URL with --db (a team points
everyone at one PostgreSQL). Each trial is committed the moment it is measured, so an
interrupted run loses nothing it already measured. Writes are idempotent (a point
measured twice keeps its first row), so any number of processes can share one DB.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Select, create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from autotune import __version__
from autotune.db import migrate
from autotune.db.schema import KEY_COLUMNS, STATUSES, Artifact, Claim, Trial, Verification
from autotune.db.trust import data_dir, seal
from autotune.errors import AutotuneError

log = logging.getLogger("autotune.db")

DEFAULT_TIMEOUT = 15.0  # seconds: connecting, and any one statement


class DatabaseError(AutotuneError):
    """The results DB cannot be opened or written."""


def default_db_url() -> str:
    """AUTOTUNE_DB, else $XDG_DATA_HOME/autotune/results.sqlite (~/.local/share/...)."""
    if os.environ.get("AUTOTUNE_DB"):
        return os.environ["AUTOTUNE_DB"]
    return f"sqlite:///{data_dir() / 'results.sqlite'}"


def db_timeout() -> float:
    """AUTOTUNE_DB_TIMEOUT seconds (default 15) for connecting and for each statement."""
    text = os.environ.get("AUTOTUNE_DB_TIMEOUT", "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        raise DatabaseError(f"AUTOTUNE_DB_TIMEOUT={text!r} is not a number of seconds") from None
    if value <= 0:
        raise DatabaseError(f"AUTOTUNE_DB_TIMEOUT={text!r} must be positive")
    return value


@dataclass(frozen=True)
class TrialKey:
    """The part of a trial's key shared by all points of one study."""

    target_fingerprint: str
    workload_key: str
    template: str
    template_hash: str
    runner: str
    cycle_model: str


def canonical_params(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def trial_identity(trial: Trial) -> tuple[str, ...]:
    """What a trial is, independent of the DB it sits in (ids differ between DBs)."""
    return (*(getattr(trial, k) for k in KEY_COLUMNS), trial.params)


def study_hash(target_fingerprint: str, workload_key: str, runner: str, cycle_model: str) -> str:
    return _digest(target_fingerprint, workload_key, runner, cycle_model)


def point_hash(key: TrialKey, params: str) -> str:
    return _digest(*(getattr(key, k) for k in KEY_COLUMNS), params)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def display_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def engine_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(
            f"results DB {url!r}: not a database URL (sqlite:///PATH or postgresql://USER@HOST/DB)"
        ) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise DatabaseError(
            f"results DB {url!r}: an in-memory database keeps nothing that is measured; "
            "give a file (sqlite:///path/results.sqlite) or a server URL"
        )
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "postgresql+psycopg":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise DatabaseError(
                f"results DB {display_url(url)}: PostgreSQL needs the psycopg driver: "
                "pip install 'autotune[postgres]'"
            ) from None
    return parsed


@cache
def _engine(url: str, timeout: float) -> Engine:
    """One engine (and connection pool) per DB and process; the schema is upgraded once."""
    parsed = engine_url(url)
    args: dict[str, Any] = {}
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        os.makedirs(os.path.dirname(os.path.abspath(str(parsed.database))), exist_ok=True)
        args["timeout"] = timeout
    elif backend == "postgresql":
        ms = int(timeout * 1000)
        args["connect_timeout"] = max(1, round(timeout))
        args["options"] = f"-c statement_timeout={ms} -c lock_timeout={ms}"
    engine = create_engine(parsed, connect_args=args, pool_pre_ping=backend != "sqlite")
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(timeout))
    migrate.upgrade(engine)
    return engine


SHIPPED = "shipped"  # the read-only source name of the results shipped in results_db/


def shipped_enabled() -> bool:
    """AUTOTUNE_SHIPPED=0 leaves the shipped results out (the test suite does, to measure)."""
    return os.environ.get("AUTOTUNE_SHIPPED", "1") not in ("0", "no", "false")


class ResultsDB:
    """The read-write DB, with any read-only sources layered under it (searched in order:
    this DB first, then each source; a point found earlier hides the same point later).

    A read-only source is a DB URL, a `.jsonl` export (or a folder of them), or
    `shipped` (results_db/). Measurements, verdicts and claims go to the read-write DB only;
    a read-only source that cannot be read is skipped with a warning, never an error."""

    def __init__(self, url: str | None = None, readonly: Sequence[str] = ()) -> None:
        self.url = url or default_db_url()
        self.name = display_url(self.url)
        self.readonly = tuple(readonly)
        self._layers: list[_Layer] | None = None
        try:
            self.engine: Engine = _engine(self.url, db_timeout())
        except (SQLAlchemyError, OSError) as exc:
            raise DatabaseError(f"results DB {self.name}: {_first_line(exc)}") from None
        self.dialect = self.engine.dialect.name
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        try:
            with self._sessions() as s, s.begin():
                yield s
        except (SQLAlchemyError, OSError) as exc:
            raise DatabaseError(f"results DB {self.name}: {_first_line(exc)}") from None

    def _insert_ignore(self, s: Session, table: Any, rows: list[dict[str, Any]]) -> int:
        """INSERT ... ON CONFLICT DO NOTHING; the number of rows inserted."""
        if not rows:
            return 0
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        elif self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:  # pragma: no cover - other dialects: one row at a time
            n = 0
            for row in rows:
                try:
                    with s.begin_nested():
                        s.connection().execute(insert(table.__table__), row)
                    n += 1
                except IntegrityError:
                    pass
            return n
        # RETURNING says whether a row went in (rowcount does not, through every driver).
        table_ = table.__table__
        pk = next(iter(table_.primary_key.columns))
        conn = s.connection()
        n = 0
        for row in rows:
            stmt = dialect_insert(table_).values(row).on_conflict_do_nothing().returning(pk)
            n += len(conn.execute(stmt).all())
        return n

    def record(
        self,
        key: TrialKey,
        params: dict[str, Any],
        status: str,
        *,
        target: str,
        toolchain: str,
        workload: str,
        reason: str = "",
        cycles: int | None = None,
        instructions: int | None = None,
        code_bytes: int | None = None,
        rodata_bytes: int | None = None,
        stack_bytes: int | None = None,
        is_baseline: bool = False,
        seconds: float = 0.0,
        values_hash: str | None = None,
    ) -> Trial:
        """Store one trial and commit; a point already stored keeps its row (returned)."""
        if status not in STATUSES:
            raise ValueError(f"unknown trial status {status}")
        p = canonical_params(params)
        row = dict(
            **vars(key),
            params=p,
            target=target,
            toolchain=toolchain,
            workload=workload,
            status=status,
            reason=reason,
            cycles=cycles,
            instructions=instructions,
            code_bytes=code_bytes,
            rodata_bytes=rodata_bytes,
            stack_bytes=stack_bytes,
            is_baseline=is_baseline,
            tool_version=__version__,
            host=platform.node(),
            created=time.time(),
            seconds=seconds,
        )
        with self.session() as s:
            self._insert_ignore(s, Trial, [row])
            trial = s.scalars(self._point(key, p)).one()
        if values_hash and status == "ok" and trial.status == "ok":
            self.mark_verified(trial, values_hash)
        return trial

    def insert_trials(self, rows: list[dict[str, Any]]) -> int:
        """Add trials (exchange rows, already validated); existing points are kept."""
        with self.session() as s:
            return self._insert_ignore(s, Trial, rows)

    # Verdicts: sealed with this machine's key, so only this machine's own runs count.

    @staticmethod
    def _verification(trial: Trial, values_hash: str) -> str:
        return seal("layer-verified", *trial_identity(trial), values_hash)

    def mark_verified(self, trial: Trial, values_hash: str) -> None:
        token = self._verification(trial, values_hash)
        with self.session() as s:
            self._insert_ignore(s, Verification, [{"token": token, "created": time.time()}])

    def is_verified(self, trial: Trial, values_hash: str) -> bool:
        with self.session() as s:
            return s.get(Verification, self._verification(trial, values_hash)) is not None

    def artifact(self, key: str) -> dict[str, Any] | None:
        """A stored result, only if this machine made it (else None: make it again)."""
        with self.session() as s:
            row = s.get(Artifact, key)
            if row is None or row.token != seal("artifact", key, row.kind, row.value):
                return None
            return json.loads(row.value)

    def store_artifact(self, key: str, kind: str, value: dict[str, Any]) -> None:
        text = json.dumps(value, sort_keys=True)
        row = {
            "key": key,
            "kind": kind,
            "value": text,
            "tool_version": __version__,
            "created": time.time(),
            "token": seal("artifact", key, kind, text),
        }
        with self.session() as s:
            s.execute(delete(Artifact).where(Artifact.key == key))
            self._insert_ignore(s, Artifact, [row])

    # Reading and forgetting trials.

    @staticmethod
    def _where(key: TrialKey) -> list[Any]:
        return [getattr(Trial, k) == v for k, v in vars(key).items()]

    def _point(self, key: TrialKey, params: str) -> Select[tuple[Trial]]:
        return select(Trial).where(*self._where(key), Trial.params == params)

    def own_trials(self, key: TrialKey) -> list[Trial]:
        """This DB's trials of a study, without the read-only sources."""
        with self.session() as s:
            q = select(Trial).where(*self._where(key)).order_by(Trial.id)
            return list(s.scalars(q))

    def trials(self, key: TrialKey) -> list[Trial]:
        out = self.own_trials(key)
        seen = {t.params for t in out}
        for layer in self.layers():
            for t in layer.trials(key):
                if t.params not in seen:
                    seen.add(t.params)
                    out.append(t)
        return out

    def all_trials(self) -> list[Trial]:
        with self.session() as s:
            return list(s.scalars(select(Trial).order_by(Trial.id)))

    def layers(self) -> list[_Layer]:
        if self._layers is None:
            self._layers = [layer for src in self.readonly if (layer := _open_layer(src))]
        return self._layers

    def trial(self, key: TrialKey, params: dict[str, Any]) -> Trial | None:
        """The point's row in this DB (the read-write one)."""
        with self.session() as s:
            return s.scalars(self._point(key, canonical_params(params))).first()

    def drop(self, key: TrialKey) -> int:
        """Forget every trial of a study (--retune)."""
        with self.session() as s:
            result = s.execute(delete(Trial).where(*self._where(key)))
            return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]

    # Claims: a variant being measured by some process, so that others do not measure it too.

    def claim(self, point: str, study: str, owner: str, stale: float) -> bool:
        """Take `point` for `owner`; False while another live owner holds it."""
        now = time.time()
        row = {"point": point, "study": study, "owner": owner, "heartbeat": now}
        with self.session() as s:
            if self._insert_ignore(s, Claim, [row]):
                return True
        with self.session() as s:  # held by someone: take it over only if they went silent
            result = s.execute(
                update(Claim)
                .where(Claim.point == point, Claim.heartbeat < now - stale)
                .values(owner=owner, heartbeat=now)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def heartbeat(self, owner: str) -> None:
        with self.session() as s:
            s.execute(update(Claim).where(Claim.owner == owner).values(heartbeat=time.time()))

    def release(self, point: str, owner: str) -> None:
        with self.session() as s:
            s.execute(delete(Claim).where(Claim.point == point, Claim.owner == owner))

    def live_claims(self, study: str, stale: float, exclude_owner: str = "") -> int:
        with self.session() as s:
            q = select(func.count()).where(
                Claim.study == study,
                Claim.heartbeat >= time.time() - stale,
                Claim.owner != exclude_owner,
            )
            return int(s.scalar(q) or 0)


class _Layer:
    """A read-only source's trials, by study key."""

    def __init__(self, name: str, trials: list[Trial]) -> None:
        self.name = name
        self.by_key: dict[tuple[str, ...], list[Trial]] = {}
        for t in trials:
            self.by_key.setdefault(tuple(getattr(t, k) for k in KEY_COLUMNS), []).append(t)

    def trials(self, key: TrialKey) -> list[Trial]:
        return self.by_key.get(tuple(getattr(key, k) for k in KEY_COLUMNS), [])


class _DBLayer(_Layer):
    """A read-only DB (a team's): queried per study, so it is never copied whole."""

    def __init__(self, db: ResultsDB) -> None:
        self.name = db.name
        self.db = db
        self.failed = False

    def trials(self, key: TrialKey) -> list[Trial]:
        if self.failed:
            return []
        try:
            return self.db.own_trials(key)
        except DatabaseError as exc:
            self.failed = True
            log.warning("autotune: warning: read-only results DB skipped: %s", exc)
            return []


def _open_layer(source: str) -> _Layer | None:
    from pathlib import Path

    from autotune.db.exchange import ExchangeError, read_file, shipped_files

    try:
        if source == SHIPPED:
            files = list(shipped_files())
        elif source.endswith(".jsonl") or Path(source).is_dir():
            path = Path(source)
            files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        else:
            return _DBLayer(ResultsDB(source))
        trials = []
        for f in files:
            for row in read_file(f).rows:
                trials.append(Trial(id=-(len(trials) + 1), **row))
        return _Layer(source, trials)
    except (DatabaseError, ExchangeError) as exc:
        log.warning("autotune: warning: read-only results source skipped: %s", exc)
        return None


def _sqlite_pragmas(timeout: float) -> Any:
    def connect(dbapi_conn: Any, _record: Any) -> None:
        # WAL lets parallel tuning workers write while others read; wait instead of failing.
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cur.close()

    return connect


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
