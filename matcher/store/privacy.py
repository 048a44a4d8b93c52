"""Shoppers' rights over their data (PIPL, GDPR): see it, erase it, keep it no longer than needed.

- :func:`export_shopper`: everything held on one shopper reference, as JSON.
- :func:`delete_shopper`: their pairings and text gone, then the database
  scrubbed (:meth:`Database.scrub`) so no byte of the text is left in its files.
- :func:`purge_expired`: what is older than each campaign's retention period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from .database import Database, ScrubReport
from .schema import BatchRow, CampaignRow, PairingRow, as_utc, utcnow


def export_shopper(db: Database, shopper_ref: str, now: datetime | None = None) -> dict[str, Any]:
    """Every pairing held on ``shopper_ref``, across campaigns, with the text where kept."""
    query = (
        select(PairingRow, CampaignRow.slug, CampaignRow.name)
        .join(CampaignRow, CampaignRow.id == PairingRow.campaign_id)
        .where(PairingRow.shopper_ref == shopper_ref)
        .order_by(PairingRow.created_at, PairingRow.id)
    )
    with db.read() as session:
        pairings = [
            {
                "campaign": slug,
                "campaign_name": name,
                "celebrity_id": row.celebrity_id,
                "score": row.score,
                "margin": row.margin,
                "reasons": row.reasons,
                "source": row.source,
                "created_at": _iso(row.created_at),
                "consent_version": row.consent_version,
                "text": row.shopper_text,
                "model": row.model_id,
                "index_version": row.index_version,
            }
            for row, slug, name in session.execute(query)
        ]
    return {
        "shopper_ref": shopper_ref,
        "exported_at": _iso(now or utcnow()),
        "pairings": pairings,
    }


@dataclass(frozen=True)
class Deleted:
    pairings: int
    scrub: ScrubReport


def delete_shopper(db: Database, shopper_ref: str) -> Deleted:
    """Delete every pairing of ``shopper_ref`` (text included) and scrub the files."""
    with db.write() as session:
        result = session.execute(delete(PairingRow).where(PairingRow.shopper_ref == shopper_ref))
        count = int(getattr(result, "rowcount", 0) or 0)
    return Deleted(count, db.scrub())


@dataclass(frozen=True)
class Purged:
    per_campaign: dict[str, int] = field(default_factory=dict)
    scrub: ScrubReport | None = None

    @property
    def total(self) -> int:
        return sum(self.per_campaign.values())


def purge_expired(db: Database, now: datetime | None = None, *, dry_run: bool = False) -> Purged:
    """Delete pairings (and emptied batches) older than their campaign's retention period.

    Idempotent and safe to run from cron while the web serves: each campaign
    is one short transaction.
    """
    # SQLite stores times without a zone: compare in UTC, as they were written.
    now = as_utc(now or utcnow())
    with db.read() as session:
        campaigns = [
            (row.id, row.slug, row.retention_days)
            for row in session.scalars(select(CampaignRow).order_by(CampaignRow.id))
        ]
    per_campaign: dict[str, int] = {}
    for campaign_id, slug, days in campaigns:
        cutoff = now - timedelta(days=days)
        old = (PairingRow.campaign_id == campaign_id) & (PairingRow.created_at < cutoff)
        if dry_run:
            with db.read() as session:
                per_campaign[slug] = len(session.scalars(select(PairingRow.id).where(old)).all())
            continue
        with db.write() as session:
            result = session.execute(delete(PairingRow).where(old))
            per_campaign[slug] = int(getattr(result, "rowcount", 0) or 0)
            session.execute(
                delete(BatchRow).where(
                    (BatchRow.campaign_id == campaign_id)
                    & (BatchRow.created_at < cutoff)
                    & ~select(PairingRow.id).where(PairingRow.batch_id == BatchRow.id).exists()
                )
            )
    scrub = None if dry_run or not any(per_campaign.values()) else db.scrub()
    return Purged(per_campaign, scrub)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")
