"""Reading stored pairings back for the planner's reports: counts, days, scores, exports.

Every report takes a :class:`PairingFilter` (one campaign or all, between two
days of a time zone, some sources, one celebrity); exports leave the
shopper's text out and escape formula cells. The funnel's other steps
(views, submissions, clicks) are counted in :mod:`matcher.store.events`.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import IO, Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select

from ..batch_output import escape_cell
from .database import Database
from .schema import CampaignRow, PairingRow

Query = TypeVar("Query", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class PairingFilter:
    """Which pairings a report covers: one campaign (or all), between two days inclusive.

    The days are those of ``time_zone`` (UTC unless given); ``sources`` keeps
    the pairings from those sources only, ``celebrity_id`` one celebrity's.
    """

    campaign_id: int | None = None
    since: date | None = None
    until: date | None = None
    time_zone: str = "UTC"
    sources: tuple[str, ...] | None = None
    celebrity_id: str | None = None

    def apply(self, query: Query) -> Query:
        if self.campaign_id is not None:
            query = query.where(PairingRow.campaign_id == self.campaign_id)
        if self.since is not None:
            query = query.where(PairingRow.created_at >= self._start_of(self.since))
        # The last day a date can be (9999-12-31) has no day after it: no upper bound.
        if self.until is not None and self.until < date.max:
            query = query.where(
                PairingRow.created_at < self._start_of(self.until + timedelta(days=1))
            )
        if self.sources is not None:
            query = query.where(PairingRow.source.in_(self.sources))
        if self.celebrity_id is not None:
            query = query.where(PairingRow.celebrity_id == self.celebrity_id)
        return query

    def _start_of(self, day: date) -> datetime:
        """The UTC time ``day`` begins at in the filter's time zone."""
        start = datetime.combine(day, time.min, tzinfo=ZoneInfo(self.time_zone))
        return start.astimezone(UTC)


def count_pairings(db: Database, where: PairingFilter) -> int:
    with db.read() as session:
        return int(session.scalar(where.apply(select(func.count(PairingRow.id)))) or 0)


def celebrity_totals(db: Database, where: PairingFilter) -> dict[str, int]:
    query = where.apply(
        select(PairingRow.celebrity_id, func.count(PairingRow.id)).group_by(PairingRow.celebrity_id)
    )
    with db.read() as session:
        return {celebrity: int(n) for celebrity, n in session.execute(query)}


def daily_counts(db: Database, where: PairingFilter) -> list[tuple[date, str, int]]:
    """Pairings per day (of the filter's time zone) and celebrity, oldest first."""
    counts: Counter[tuple[date, str]] = Counter()
    for day, _source, celebrity, n in daily_sources(db, where):
        counts[(day, celebrity)] += n
    return [(day, celebrity, n) for (day, celebrity), n in sorted(counts.items())]


def daily_sources(db: Database, where: PairingFilter) -> list[tuple[date, str, str, int]]:
    """Pairings per day (of the filter's time zone), source and celebrity, oldest first.

    Days are taken in Python from the stored times rather than by a SQL date
    function, whose name, result type and time-zone rules differ between SQLite
    and PostgreSQL; only three small columns are read, streamed.
    """
    zone = ZoneInfo(where.time_zone)
    counts: Counter[tuple[date, str, str]] = Counter()
    query = where.apply(select(PairingRow.created_at, PairingRow.source, PairingRow.celebrity_id))
    with db.read() as session:
        for created, source, celebrity in session.execute(query.execution_options(yield_per=5000)):
            counts[(_utc(created).astimezone(zone).date(), source, celebrity)] += 1
    return [(day, source, celebrity, n) for (day, source, celebrity), n in sorted(counts.items())]


def score_bins(db: Database, where: PairingFilter, width: float) -> Counter[int]:
    """How many pairings scored in each band ``[i * width, (i + 1) * width)``."""
    bins: Counter[int] = Counter()
    query = where.apply(select(PairingRow.score))
    with db.read() as session:
        for score in session.scalars(query.execution_options(yield_per=5000)):
            # Rounding the quotient first keeps a score exactly on an edge (0.5500)
            # in the band it starts, despite float noise.
            bins[math.floor(round(score / width, 6))] += 1
    return bins


def _utc(moment: datetime) -> datetime:
    """SQLite hands times back without a zone; they were stored in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


EXPORT_COLUMNS = (
    "created_at",
    "campaign",
    "shopper_ref",
    "celebrity_id",
    "score",
    "margin",
    "source",
    "batch_id",
    "consent_version",
    "model",
    "index_version",
)


def export_rows(db: Database, where: PairingFilter) -> Iterator[list[str]]:
    """Rows of the planner's CSV export, oldest first; shopper text is never part of it."""
    query = where.apply(
        select(PairingRow, CampaignRow.slug)
        .join(CampaignRow, CampaignRow.id == PairingRow.campaign_id)
        .order_by(PairingRow.created_at, PairingRow.id)
    )
    with db.read() as session:
        for pairing, slug in session.execute(query.execution_options(yield_per=2000)):
            yield [
                _utc(pairing.created_at).isoformat(timespec="seconds"),
                slug,
                pairing.shopper_ref,
                pairing.celebrity_id,
                f"{pairing.score:.4f}",
                f"{pairing.margin:.4f}",
                pairing.source,
                "" if pairing.batch_id is None else str(pairing.batch_id),
                pairing.consent_version or "",
                pairing.model_id,
                pairing.index_version,
            ]


def write_csv(db: Database, where: PairingFilter, handle: IO[str]) -> int:
    """Write the export to ``handle``; every cell escaped against spreadsheet formulas."""
    writer = csv.writer(handle)
    writer.writerow(EXPORT_COLUMNS)
    written = 0
    for row in export_rows(db, where):
        writer.writerow([escape_cell(cell) for cell in row])
        written += 1
    return written
