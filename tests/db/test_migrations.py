"""The schema comes from the Alembic migrations shipped in the package, on both backends;
the ORM agrees with them; a DB from before migrations is upgraded in place, keeping its trials."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from autotune.db import ResultsDB, TrialKey, migrate
from autotune.db.schema import Base
from autotune.db.store import engine_url

KEY = TrialKey("fp0", "wk0", "conv2d_general", "hash0", "unicorn", "cortex-m4 v1")


def test_a_fresh_db_is_at_the_newest_revision_and_matches_the_orm(db_url: str) -> None:
    db = ResultsDB(db_url)
    with db.engine.connect() as conn:
        assert migrate.current(conn) == migrate.head()
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    if db.dialect == "sqlite":  # INTEGER is 64-bit there: the migration leaves it alone
        diff = [d for d in diff if not (isinstance(d, list) and d[0][0] == "modify_type")]
    # A column added to schema.py without its migration (or the reverse) shows up here.
    assert diff == [], diff


def test_a_db_from_before_migrations_is_upgraded_keeping_its_trials(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    url = f"sqlite:///{path}"
    engine = create_engine(engine_url(url))
    with engine.connect() as conn:  # the 0.1 schema, as create_all made it
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(migrate.MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, migrate.BASE_REVISION)
        conn.exec_driver_sql("DROP TABLE alembic_version")
        conn.exec_driver_sql(
            "INSERT INTO trials (target_fingerprint, workload_key, template, template_hash, "
            "runner, cycle_model, params, target, toolchain, workload, status, reason, cycles, "
            "is_baseline, tool_version, host, created, seconds) VALUES ('fp0', 'wk0', "
            "'conv2d_general', 'hash0', 'unicorn', 'cortex-m4 v1', '{\"block\":1}', 'cortex-m4', "
            "'gcc', '{}', 'ok', '', 123, 0, '0.1.0', 'h', 0, 0)"
        )
        conn.exec_driver_sql("INSERT INTO verified (trial_id, values_hash) VALUES (1, 'v0')")
        conn.commit()
    engine.dispose()
    db = ResultsDB(url)
    assert [t.cycles for t in db.trials(KEY)] == [123]
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "verified" not in tables and {"verifications", "claims"} <= tables
    trial = db.trials(KEY)[0]
    assert not db.is_verified(trial, "v0")  # an unsealed verdict is not carried over


FIRST_USE = """
import sys
from autotune.db import ResultsDB, TrialKey
db = ResultsDB(sys.argv[1])
key = TrialKey("fp", "wk", "t", "h", "r", "c")
for i in range(5):
    db.record(key, {"i": i}, "ok", target="x", toolchain="y", workload="{}", cycles=i)
print(len(db.trials(key)))
"""


def test_concurrent_first_use_of_a_fresh_db(db_url: str) -> None:
    """Four processes open the same fresh DB at once: one creates the schema, all work."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_USE, db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        assert out.strip() == "5"
    assert len(ResultsDB(db_url).trials(TrialKey("fp", "wk", "t", "h", "r", "c"))) == 5
