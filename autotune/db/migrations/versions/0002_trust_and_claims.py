"""Machine-sealed verifications and artifacts; claims on variants being measured; 64-bit counts.

The old `verified` rows said "someone verified this" with no way to tell who: they
are dropped, and a verification is now a token only this machine can produce.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("verified")
    op.create_table(
        "verifications",
        sa.Column("token", sa.String(64), primary_key=True),
        sa.Column("created", sa.Float, nullable=False),
    )
    with op.batch_alter_table("artifacts") as batch:
        batch.add_column(sa.Column("token", sa.String(64), nullable=True))
    op.create_table(
        "claims",
        sa.Column("point", sa.String(64), primary_key=True),
        sa.Column("study", sa.String(64), nullable=False, index=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("heartbeat", sa.Float, nullable=False),
    )
    if op.get_bind().dialect.name != "sqlite":  # SQLite's INTEGER is 64-bit already
        for column in ("cycles", "instructions"):
            op.alter_column("trials", column, type_=sa.BigInteger, existing_nullable=True)


def downgrade() -> None:
    op.drop_table("claims")
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_column("token")
    op.drop_table("verifications")
    op.create_table(
        "verified",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("trial_id", sa.Integer, sa.ForeignKey("trials.id"), nullable=False, index=True),
        sa.Column("values_hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("trial_id", "values_hash", name="uq_verified"),
    )
