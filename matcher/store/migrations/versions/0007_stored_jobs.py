"""Stored batch jobs: planner uploads, their progress and their files, shared by every server.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_jobs",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("campaign", sa.String(40), nullable=False),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("host", sa.String(200), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("total_rows", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("bad", sa.Integer(), nullable=False),
        sa.Column("unsure", sa.Integer(), nullable=False),
        sa.Column("bad_lines", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("abandoned", sa.Boolean(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=True),
        sa.Column("stored", sa.Integer(), nullable=True),
        sa.Column("batch_id", sa.BigInteger(), nullable=True),
        sa.Column("downloads", sa.Integer(), nullable=False),
    )
    op.create_index("ix_batch_jobs_campaign", "batch_jobs", ["campaign"])
    op.create_index("ix_batch_jobs_created", "batch_jobs", ["created_at"])
    op.create_table(
        "batch_job_files",
        sa.Column(
            "job_id",
            sa.String(16),
            sa.ForeignKey("batch_jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("batch_job_files")
    op.drop_index("ix_batch_jobs_created", table_name="batch_jobs")
    op.drop_index("ix_batch_jobs_campaign", table_name="batch_jobs")
    op.drop_table("batch_jobs")
