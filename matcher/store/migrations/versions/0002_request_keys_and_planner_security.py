"""Request keys on pairings; planner sessions and failed logins shared by all workers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # NULLs are distinct in a unique index on both databases: only pairings
    # made with a key are held to one per key.
    op.add_column("pairings", sa.Column("request_key", sa.String(100), nullable=True))
    op.create_index(
        "uq_pairings_campaign_request", "pairings", ["campaign_id", "request_key"], unique=True
    )
    op.create_table(
        "login_failures",
        sa.Column("id", big_id, primary_key=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_login_failures_key_failed", "login_failures", ["key", "failed_at"])
    op.create_table(
        "planner_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("account", sa.String(200), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_planner_sessions_account", "planner_sessions", ["account"])


def downgrade() -> None:
    op.drop_table("planner_sessions")
    op.drop_table("login_failures")
    op.drop_index("uq_pairings_campaign_request", table_name="pairings")
    with op.batch_alter_table("pairings") as batch:
        batch.drop_column("request_key")
