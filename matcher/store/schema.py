"""Tables: campaigns, the pairings made for them, and the batches that brought pairings in.

Shopper text lives in one nullable column, ``pairings.shopper_text``, filled
only when the shopper consented and the campaign keeps text; every other
column describes the pairing, not the shopper. Times are stored in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: SQLite only auto-increments an ``INTEGER PRIMARY KEY``; PostgreSQL gets 64 bits.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC datetime: SQLite hands times back without a zone."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class CampaignRow(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    brand: Mapped[str] = mapped_column(String(200))
    profiles_dir: Mapped[str] = mapped_column(String(1000))
    #: The index version the campaign's matcher last served (set by the web).
    index_version: Mapped[str | None] = mapped_column(String(64))
    embed_origins: Mapped[list[str]] = mapped_column(JSON)
    quick_picks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    consent_text: Mapped[str] = mapped_column(Text)
    consent_version: Mapped[str] = mapped_column(String(40))
    retention_days: Mapped[int] = mapped_column(Integer)
    store_text: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    #: The IANA time zone the dashboard's days are counted in (revision 0005).
    time_zone: Mapped[str] = mapped_column(String(64), server_default="Asia/Shanghai")


class BatchRow(Base):
    """One stored batch: an API batch call or a planner's upload, kept whole or not at all."""

    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    source: Mapped[str] = mapped_column(String(20))
    filename: Mapped[str | None] = mapped_column(String(300))
    pairings: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PairingRow(Base):
    __tablename__ = "pairings"
    __table_args__ = (
        Index("ix_pairings_campaign_created", "campaign_id", "created_at"),
        Index("uq_pairings_campaign_request", "campaign_id", "request_key", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    shopper_ref: Mapped[str] = mapped_column(String(200), index=True)
    celebrity_id: Mapped[str] = mapped_column(String(100))
    score: Mapped[float] = mapped_column(Float)
    margin: Mapped[float] = mapped_column(Float)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    model_id: Mapped[str] = mapped_column(String(300))
    index_version: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(20))
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: The consent notice version the shopper agreed to; None when they did not consent.
    consent_version: Mapped[str | None] = mapped_column(String(40))
    #: Personal data: only with consent, and only where the campaign keeps text.
    shopper_text: Mapped[str | None] = mapped_column(Text)
    #: The client's ``Idempotency-Key``: a retried request finds its pairing instead of adding one.
    request_key: Mapped[str | None] = mapped_column(String(100))
    #: The best-fitting celebrity, when quotas or shares paired the shopper with another.
    first_choice: Mapped[str | None] = mapped_column(String(100))
    #: Why ``celebrity_id`` was chosen under the campaign's limits: best, full or balanced.
    assignment: Mapped[str | None] = mapped_column(String(20))


class FillRow(Base):
    """Pairings promised to one celebrity of one campaign.

    Updated in the transaction that stores the pairing, so a quota holds
    however many workers race. Deleting a shopper's data does not give the
    place back: the promise was made.
    """

    __tablename__ = "celebrity_fills"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    celebrity_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    assigned: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class LoginFailureRow(Base):
    """One failed planner login, keyed by account or by client address.

    In the database so every worker and every machine counts the same failures.
    """

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_failed", "key", "failed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PlannerSessionRow(Base):
    """A planner's signed-in session: revoked at logout or when the password changes.

    ``id`` is a hash of the token in the cookie, so the table alone cannot sign anyone in.
    """

    __tablename__ = "planner_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(200), index=True)
    #: The token every planner POST must carry; bound to this session only.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CampaignEventRow(Base):
    """How many events of one kind a campaign had in one quarter of an hour (UTC).

    A counter, not a log: no shopper text, address, cookie or reference, and
    no time finer than the quarter (see :mod:`matcher.store.events`).
    """

    __tablename__ = "campaign_events"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    #: The start of the quarter of an hour the events happened in, UTC.
    slot: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    #: view, submission or cta_click.
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    #: form, embed, api or upload.
    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    #: The page's language (en, zh).
    language: Mapped[str] = mapped_column(String(16), primary_key=True)
    #: The celebrity a click went to; "" for views and submissions.
    celebrity_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class RosterVersionRow(Base):
    """One published version of a campaign's roster: every profile and correction it serves.

    Rows are never updated but by a privacy request, which removes a
    shopper's text from ``corrections`` and recomputes ``content_hash``; the
    hash (of profiles and corrections) names the index built from the version.
    """

    __tablename__ = "roster_versions"
    __table_args__ = (
        Index("uq_roster_versions_campaign_number", "campaign_id", "number", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    #: 1, 2, 3... per campaign; the highest is the one served.
    number: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    profiles: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    #: Personal data: a correction filed from the try page may quote a shopper.
    corrections: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    #: What changed since the previous version (celebrity ids and counts, never text).
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RosterDraftRow(Base):
    """A campaign's roster being edited in the planner area, not yet served."""

    __tablename__ = "roster_drafts"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    profiles: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    #: The published version the draft started from.
    base_number: Mapped[int | None] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class InstanceSecretRow(Base):
    """A secret every worker of every machine on this database shares (session signing)."""

    __tablename__ = "instance_secrets"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CampaignBrandingRow(Base):
    """How a campaign's shopper pages look and read: one validated document per campaign.

    ``settings`` is a :class:`matcher.store.branding.Branding` dumped to JSON:
    colours, fonts, copy and consent per language, facet labels and, per
    celebrity, display names, lines and a call-to-action link (revision 0004).
    """

    __tablename__ = "campaign_branding"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class BrandImageRow(Base):
    """A campaign's logo or a celebrity's portrait, decoded, checked and re-encoded when uploaded.

    In the database, so every server answers with the same bytes; ``digest``
    names the version, for the URL and for caching.
    """

    __tablename__ = "brand_images"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    #: ``logo`` or ``portrait:<celebrity id>``.
    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(40))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    digest: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class SharedResultRow(Base):
    """A result a shopper can reopen and share: who they were paired with, never what they wrote.

    ``token`` is random (the URL's only key); ``details`` holds the facets the
    reasons came from, the runners-up and their fit, and why the pairing went
    where it did under the campaign's limits: names and figures, no text.
    """

    __tablename__ = "shared_results"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    celebrity_id: Mapped[str] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BatchJobRow(Base):
    """A planner's batch job: an upload matched in the background, seen by every server.

    The state a job page shows (status, rows done of the total, the first bad
    rows as line and reason, the error) is written by the worker running the
    job, which also touches ``updated_at`` at least every heartbeat: a job
    whose worker died is recognised by its silence, on any machine. No column
    holds shopper text; the upload and the pairings are
    :class:`BatchJobFileRow` chunks.
    """

    __tablename__ = "batch_jobs"
    __table_args__ = (Index("ix_batch_jobs_created", "created_at"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    #: The campaign the upload is for (its retention decides how long the pairings stay).
    campaign: Mapped[str] = mapped_column(String(40), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    #: mapping, queued, running, done, failed or cancelled.
    status: Mapped[str] = mapped_column(String(20))
    #: The file as read: type, encoding, delimiter, columns; the k and columns chosen.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: The heartbeat: the running worker's last word.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When the pairings are deleted: the campaign's retention after the job finished.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The host and pid of the worker running the job, while it holds it.
    host: Mapped[str | None] = mapped_column(String(200))
    pid: Mapped[int | None] = mapped_column(Integer)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    matched: Mapped[int] = mapped_column(Integer, default=0)
    bad: Mapped[int] = mapped_column(Integer, default=0)
    unsure: Mapped[int] = mapped_column(Integer, default=0)
    #: ``[[line, reason], ...]``, the first rows that could not be matched (no text).
    bad_lines: Mapped[list[Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    #: Failed by another server because its worker had stopped.
    abandoned: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Top-1 totals of a done job, for the dashboard.
    totals: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    stored: Mapped[int | None] = mapped_column(Integer)
    batch_id: Mapped[int | None] = mapped_column(BigInteger)
    downloads: Mapped[int] = mapped_column(Integer, default=0)


class BatchJobFileRow(Base):
    """One chunk of a job's file (``upload`` or ``pairings``): personal data, deleted with it.

    Files are cut in chunks so neither a write nor a download holds a whole
    large file in one value; a file is replaced in one transaction.
    """

    __tablename__ = "batch_job_files"

    job_id: Mapped[str] = mapped_column(
        ForeignKey("batch_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
