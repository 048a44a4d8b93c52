"""Campaign events: page views, submissions and call-to-action clicks, for the funnel.

Counters per quarter of an hour (see :mod:`matcher.store.events`), and the
time zone a campaign's dashboard counts its days in.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_events",
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("celebrity_id", sa.String(100), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "campaign_id", "slot", "kind", "source", "language", "celebrity_id"
        ),
    )
    op.add_column(
        "campaigns",
        sa.Column("time_zone", sa.String(64), nullable=False, server_default="Asia/Shanghai"),
    )


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("time_zone")
    op.drop_table("campaign_events")
