"""Shoppers' rights over their data (PIPL, GDPR): see it, erase it, keep it no longer than needed.

- :func:`export_shopper`: everything held on one shopper reference, as JSON.
- :func:`delete_shopper`: their pairings and text gone, then the database
  scrubbed (:meth:`Database.scrub`) so no byte of the text is left in its files.
- :func:`purge_expired`: what is older than each campaign's retention period.

The database is not the only place a shopper's data reaches: the roster
folders' corrections (a text filed from the try box) and the web's batch
files (uploads, pairings waiting to be downloaded) hold copies. Each such
place is a :class:`Copies`, and delete and purge go through all of those
:func:`instance_copies` finds, so the CLI and the planner page reach the same
ones. Copies outside this package register under the ``matcher.copies``
entry point: a callable taking the instance folder and returning a
:class:`Copies` (the web's batch jobs do), so the core never imports them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import delete, select

from ..feedback import erase_corrections, expire_corrections
from .database import Database, ScrubReport
from .events import purge_events
from .rosters import RosterCopies
from .schema import BatchRow, CampaignRow, PairingRow, as_utc, utcnow
from .shares import purge_shares

log = logging.getLogger(__name__)

#: Entry-point group of the places outside the database that hold shopper data.
COPIES_GROUP = "matcher.copies"


class Copies(Protocol):
    """Somewhere outside the database that may hold a copy of shoppers' data."""

    @property
    def name(self) -> str:
        """Named in reports ("corrections", "batch files")."""
        ...

    def erase(self, shopper_ref: str, texts: Sequence[str]) -> int:
        """Remove what is held on ``shopper_ref`` or holds one of ``texts``; how many items."""
        ...

    def expire(self, now: datetime) -> int:
        """Remove what is past its retention at ``now``; how many items."""
        ...


@dataclass(frozen=True)
class Corrections:
    """The corrections files of the campaigns' roster folders, each with its retention.

    A folder shared by campaigns keeps corrections for the shortest of their
    retention periods.
    """

    retention: dict[Path, int]
    name: str = "corrections"

    def erase(self, shopper_ref: str, texts: Sequence[str]) -> int:
        return sum(erase_corrections(folder, texts) for folder in self.retention)

    def expire(self, now: datetime) -> int:
        return sum(
            expire_corrections(folder, now - timedelta(days=days))
            for folder, days in self.retention.items()
        )


def campaign_corrections(
    db: Database, resolve: Callable[[str, str], Path | None] | None = None
) -> Corrections:
    """The corrections of every campaign's roster folder.

    Args:
        resolve: turns a campaign's (slug, roster folder) into the folder to
            use, or ``None`` to skip it (the web confines folders to its
            rosters root); by default the folder as stored.
    """
    with db.read() as session:
        campaigns = [
            (row.slug, row.profiles_dir, row.retention_days)
            for row in session.scalars(select(CampaignRow))
        ]
    retention: dict[Path, int] = {}
    for slug, folder, days in campaigns:
        try:
            path = resolve(slug, folder) if resolve else Path(folder)
        except Exception as exc:  # a folder the resolver refuses holds nothing of ours
            log.warning("campaign %s: roster folder skipped (%s)", slug, type(exc).__name__)
            continue
        if path is not None:
            key = Path(path).resolve()
            retention[key] = min(days, retention.get(key, days))
    return Corrections(retention)


def instance_copies(
    db: Database,
    instance_dir: str | Path,
    *,
    resolve: Callable[[str, str], Path | None] | None = None,
    extra: Iterable[Copies] = (),
) -> list[Copies]:
    """Every place besides the pairings holding shopper data: corrections (in the roster
    folders and in the published roster versions), then the registered copies of the
    instance folder (``matcher.copies``), then ``extra``."""
    copies: list[Copies] = [campaign_corrections(db, resolve), RosterCopies(db)]
    for entry in entry_points(group=COPIES_GROUP):
        # Called with the database too: a copy may live in it (the web's stored batch jobs).
        copies.append(entry.load()(Path(instance_dir), db))
    copies.extend(extra)
    return copies


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
    #: Items removed from each place outside the database, by its name.
    copies: dict[str, int] = field(default_factory=dict)


def delete_shopper(
    db: Database,
    shopper_ref: str,
    *,
    texts: Sequence[str] = (),
    copies: Sequence[Copies] = (),
) -> Deleted:
    """Delete every pairing of ``shopper_ref`` (text included), its copies, and scrub the files.

    The copies go first: a batch still matching is stopped before the
    database is cleared, so it cannot store the shopper again afterwards.

    Args:
        texts: texts the shopper says they wrote, erased from the copies too
            (the texts stored with their pairings always are).
        copies: places besides the database (see :func:`instance_copies`).
    """
    with db.read() as session:
        stored = session.scalars(
            select(PairingRow.shopper_text).where(
                (PairingRow.shopper_ref == shopper_ref) & PairingRow.shopper_text.is_not(None)
            )
        ).all()
    wanted = sorted({*(t for t in stored if t), *(t.strip() for t in texts if t.strip())})
    removed = {copy.name: copy.erase(shopper_ref, wanted) for copy in copies}
    with db.write() as session:
        result = session.execute(delete(PairingRow).where(PairingRow.shopper_ref == shopper_ref))
        count = int(getattr(result, "rowcount", 0) or 0)
        for text in texts:
            if text.strip():
                # A text the shopper quotes goes wherever it was stored, under any reference.
                result = session.execute(
                    delete(PairingRow).where(PairingRow.shopper_text == text.strip())
                )
                count += int(getattr(result, "rowcount", 0) or 0)
    return Deleted(count, db.scrub(), removed)


@dataclass(frozen=True)
class Purged:
    per_campaign: dict[str, int] = field(default_factory=dict)
    scrub: ScrubReport | None = None
    #: Items removed from each place outside the database, by its name.
    copies: dict[str, int] = field(default_factory=dict)
    #: Funnel events (views, submissions, clicks) past retention, per campaign slug.
    events: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.per_campaign.values())


def purge_expired(
    db: Database,
    now: datetime | None = None,
    *,
    dry_run: bool = False,
    copies: Sequence[Copies] = (),
) -> Purged:
    """Delete pairings (and emptied batches) older than their campaign's retention period,
    and what ``copies`` hold past theirs (not on a dry run).

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
    events: dict[str, int] = {}
    for campaign_id, slug, days in campaigns:
        cutoff = now - timedelta(days=days)
        # Funnel counters go with the pairings they count, at the same age.
        events[slug] = purge_events(db, campaign_id, cutoff, dry_run=dry_run)
        old = (PairingRow.campaign_id == campaign_id) & (PairingRow.created_at < cutoff)
        if dry_run:
            with db.read() as session:
                per_campaign[slug] = len(session.scalars(select(PairingRow.id).where(old)).all())
            continue
        # Shared result links go at the same age as the pairings they show.
        purge_shares(db, campaign_id, cutoff)
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
    removed = {} if dry_run else {copy.name: copy.expire(now) for copy in copies}
    scrub = None if dry_run or not any(per_campaign.values()) else db.scrub()
    return Purged(per_campaign, scrub, removed, events)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")
