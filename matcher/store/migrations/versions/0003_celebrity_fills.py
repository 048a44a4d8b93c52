"""Celebrity fills: pairings promised to each celebrity, counted with the pairing itself.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "celebrity_fills",
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), primary_key=True),
        sa.Column("celebrity_id", sa.String(100), primary_key=True),
        sa.Column("assigned", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("pairings", sa.Column("first_choice", sa.String(100), nullable=True))
    op.add_column("pairings", sa.Column("assignment", sa.String(20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pairings") as batch:
        batch.drop_column("assignment")
        batch.drop_column("first_choice")
    op.drop_table("celebrity_fills")
