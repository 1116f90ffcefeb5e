"""The schema autotune 0.1 created without migrations: trials, verified, artifacts.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trials",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("target_fingerprint", sa.String(64), nullable=False, index=True),
        sa.Column("workload_key", sa.String(64), nullable=False, index=True),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("template_hash", sa.String(64), nullable=False),
        sa.Column("runner", sa.String(32), nullable=False),
        sa.Column("cycle_model", sa.String(64), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("toolchain", sa.String(256), nullable=False),
        sa.Column("workload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("cycles", sa.Integer, nullable=True),
        sa.Column("instructions", sa.Integer, nullable=True),
        sa.Column("code_bytes", sa.Integer, nullable=True),
        sa.Column("rodata_bytes", sa.Integer, nullable=True),
        sa.Column("stack_bytes", sa.Integer, nullable=True),
        sa.Column("is_baseline", sa.Boolean, nullable=False),
        sa.Column("tool_version", sa.String(32), nullable=False),
        sa.Column("host", sa.String(128), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.UniqueConstraint(
            "target_fingerprint",
            "workload_key",
            "template",
            "template_hash",
            "runner",
            "cycle_model",
            "params",
            name="uq_trial",
        ),
    )
    op.create_table(
        "verified",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("trial_id", sa.Integer, sa.ForeignKey("trials.id"), nullable=False, index=True),
        sa.Column("values_hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("trial_id", "values_hash", name="uq_verified"),
    )
    op.create_table(
        "artifacts",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("tool_version", sa.String(32), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("artifacts")
    op.drop_table("verified")
    op.drop_table("trials")
