"""The results DB: schema (with Alembic migrations), the trust model for shared rows,
concurrency-safe writes, exchange as JSON lines, and distributed tuning."""

from autotune.db.schema import STATUSES, Artifact, Claim, Trial, Verification
from autotune.db.store import (
    DatabaseError,
    ResultsDB,
    TrialKey,
    canonical_params,
    default_db_url,
)

__all__ = [
    "STATUSES",
    "Artifact",
    "Claim",
    "DatabaseError",
    "ResultsDB",
    "Trial",
    "TrialKey",
    "Verification",
    "canonical_params",
    "default_db_url",
]
