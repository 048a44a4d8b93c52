"""Campaigns, pairings and batches.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(40), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("brand", sa.String(200), nullable=False),
        sa.Column("profiles_dir", sa.String(1000), nullable=False),
        sa.Column("index_version", sa.String(64), nullable=True),
        sa.Column("embed_origins", sa.JSON(), nullable=False),
        sa.Column("quick_picks", sa.JSON(), nullable=True),
        sa.Column("consent_text", sa.Text(), nullable=False),
        sa.Column("consent_version", sa.String(40), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("store_text", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "batches",
        sa.Column("id", big_id, primary_key=True),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("filename", sa.String(300), nullable=True),
        sa.Column("pairings", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_batches_campaign_id", "batches", ["campaign_id"])
    op.create_table(
        "pairings",
        sa.Column("id", big_id, primary_key=True),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), nullable=False),
        sa.Column("shopper_ref", sa.String(200), nullable=False),
        sa.Column("celebrity_id", sa.String(100), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("margin", sa.Float(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("model_id", sa.String(300), nullable=False),
        sa.Column("index_version", sa.String(64), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column(
            "batch_id",
            big_id,
            sa.ForeignKey("batches.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consent_version", sa.String(40), nullable=True),
        sa.Column("shopper_text", sa.Text(), nullable=True),
    )
    op.create_index("ix_pairings_shopper_ref", "pairings", ["shopper_ref"])
    op.create_index("ix_pairings_batch_id", "pairings", ["batch_id"])
    op.create_index("ix_pairings_campaign_created", "pairings", ["campaign_id", "created_at"])


def downgrade() -> None:
    op.drop_table("pairings")
    op.drop_table("batches")
    op.drop_table("campaigns")
