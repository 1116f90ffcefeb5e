"""Create and upgrade a results DB with its Alembic migrations, safely when many processes
open a fresh DB at once: one upgrades under a lock, the others wait and find it done."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
BASE_REVISION = "0001"  # the schema autotune created before it had migrations
_PG_LOCK = 0x6175_746F_7475_6E65 % (2**63)  # "autotune": the advisory lock's number


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@cache
def head() -> str:
    script = ScriptDirectory.from_config(_config())
    revision = script.get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the DB to the newest schema (nothing to do, the common case, costs one query)."""
    with engine.connect() as conn:
        if current(conn) == head():
            return
    with _lock(engine) as conn:
        if current(conn) == head():  # another process did it while this one waited
            return
        tables = set(inspect(conn).get_table_names())
        if "trials" in tables and "alembic_version" not in tables:
            command.stamp(_config(conn), BASE_REVISION)  # a DB from before migrations
        command.upgrade(_config(conn), "head")
        conn.commit()


@contextmanager
def _lock(engine: Engine) -> Iterator[Connection]:
    """A connection holding the DB's migration lock: an advisory lock on PostgreSQL, an
    flock on the SQLite file's folder (SQLite's own locks are per statement)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK})
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK})
                conn.commit()
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        with engine.connect() as conn:
            yield conn
        return
    fd = os.open(Path(database).resolve().parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with engine.connect() as conn:
            yield conn
    finally:
        os.close(fd)  # releases the flock
