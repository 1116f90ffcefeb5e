"""DB tests run against SQLite and against a real PostgreSQL server started for the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.db.pgserver import PostgresServer, server_binaries


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = server_binaries()
    if bindir is None:
        pytest.skip("PostgreSQL server not installed (Debian package postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg not installed (pip install 'autotune[postgres]')")
    server = PostgresServer(bindir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty results DB on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.sqlite'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()
