"""Alembic migrations of the results DB, run by autotune itself when a DB is opened."""
