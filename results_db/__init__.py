"""Tuning results shipped with autotune (JSON lines, docs/db.md): a read-only layer under
every user's results DB, so that a first run of the reference models measures nothing."""
