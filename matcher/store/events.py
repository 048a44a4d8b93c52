"""Campaign events for the funnel: page views, submissions and call-to-action clicks.

An event is counted, not logged. :func:`record_event` adds one to a counter
keyed by campaign, a quarter of an hour (UTC), the kind of event, where it
came from (form, embed, API, upload), the page's language and, for a click,
the celebrity. Nothing about the shopper is kept: no text, no address, no
cookie, no reference, no exact time. A million views make as many counters
as there are distinct (quarter, kind, source, language, celebrity) keys, so
the dashboard's query reads a few thousand rows, not a million.

Why counters of a quarter of an hour, not one row per event or per day:

- a row per event makes the dashboard scan every view, and keeps exact
  times, which say more about a shopper than the funnel needs;
- a counter per day must pick the day's time zone when it is written, so a
  campaign whose time zone changes (or a report in another zone) would be
  off by hours; every UTC offset in use is a whole number of quarters of an
  hour, so a quarter falls in exactly one local day of any zone, and the
  days are drawn in the campaign's zone when read (:func:`daily_events`).

Correct with many workers and machines on one database: each event is one
``INSERT ... ON CONFLICT DO UPDATE SET count = count + 1``, which SQLite
(under its write lock) and PostgreSQL (under the conflicting row's lock)
both apply atomically, so concurrent writers never lose a count and never
fail on a key another inserted first. On SQLite an event's commit does not
wait for the disk (``synchronous=NORMAL`` for that transaction only): a
counter may lose its last moments to a power cut, never to a crash of the
process, and a page view costs no disk flush.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, delete, func, select, type_coerce
from sqlalchemy.dialects import postgresql, sqlite

from ..errors import InputError
from .database import Database
from .schema import CampaignEventRow, as_utc, utcnow

#: What happened: a shopper page was shown, a text was sent, a call to action was followed.
KINDS = ("view", "submission", "cta_click")
#: Where it happened; the same names as a pairing's source.
SOURCES = ("form", "embed", "api", "upload")
#: The length of one counter's time slot: every UTC offset in use is a multiple of it.
SLOT = timedelta(minutes=15)
#: A language tag as pages use it (``en``, ``zh``, ``zh-Hant``); anything else is refused.
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})?$")
#: Stored for events without a celebrity (views, submissions): keys cannot hold NULL.
NO_CELEBRITY = ""


def slot_of(moment: datetime) -> datetime:
    """The start of the quarter of an hour (UTC) holding ``moment``."""
    moment = as_utc(moment)
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


@functools.cache
def _upsert(backend: str) -> Any:
    """The counter's upsert, built once per backend: a page view does not rebuild it."""
    dialect: Any = sqlite if backend == "sqlite" else postgresql
    statement = dialect.insert(CampaignEventRow)
    return statement.on_conflict_do_update(
        index_elements=[
            CampaignEventRow.campaign_id,
            CampaignEventRow.slot,
            CampaignEventRow.kind,
            CampaignEventRow.source,
            CampaignEventRow.language,
            CampaignEventRow.celebrity_id,
        ],
        set_={"count": CampaignEventRow.count + statement.excluded.count},
    )


def _check(kind: str, source: str, language: str, celebrity_id: str | None) -> None:
    if kind not in KINDS:
        raise InputError(f"event kind: {kind!r} is not one of {', '.join(KINDS)}")
    if source not in SOURCES:
        raise InputError(f"event source: {source!r} is not one of {', '.join(SOURCES)}")
    if not LANGUAGE_PATTERN.match(language):
        raise InputError(f"event language: {language!r} is not a language tag such as en or zh")
    if celebrity_id is not None and not 0 < len(celebrity_id) <= 100:
        raise InputError("event celebrity: give 1 to 100 characters, or none")


def record_event(
    db: Database,
    campaign_id: int,
    kind: str,
    *,
    source: str,
    language: str,
    celebrity_id: str | None = None,
    at: datetime | None = None,
    count: int = 1,
) -> None:
    """Count one event (or ``count`` alike) for a campaign: one short write transaction.

    Args:
        kind: ``view``, ``submission`` or ``cta_click``.
        source: ``form``, ``embed``, ``api`` or ``upload``.
        language: the page's language (``en``, ``zh``).
        celebrity_id: the celebrity a click went to; ``None`` for views and submissions.
        at: when it happened (default: now); only its quarter of an hour is kept.

    Raises:
        InputError: an unknown kind or source, or a malformed language or celebrity.
    """
    _check(kind, source, language, celebrity_id)
    if count < 1:
        raise InputError(f"event count: {count} is not a positive number")
    values = {
        "campaign_id": campaign_id,
        "slot": slot_of(at or utcnow()),
        "kind": kind,
        "source": source,
        "language": language,
        "celebrity_id": celebrity_id or NO_CELEBRITY,
        "count": count,
    }
    statement = _upsert(db.backend)
    if not db.is_sqlite:
        with db.write() as session:
            session.execute(statement, values)
        return
    # A view is not worth a disk flush: with write-ahead logging, synchronous=NORMAL
    # commits without waiting for the disk and loses nothing if the process dies,
    # only the last moments' counts if the machine loses power. Pairings keep FULL.
    with db.engine.connect() as connection:
        # Outside any transaction (SQLite refuses the change within one): on the
        # driver's connection, which SQLAlchemy has not begun a transaction on.
        raw = connection.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA synchronous = NORMAL")
        try:
            with connection.execution_options(matcher_write=True).begin():
                connection.execute(statement, values)
        finally:
            raw.execute("PRAGMA synchronous = FULL")


@dataclass(frozen=True)
class EventFilter:
    """Which events a report covers; every field left ``None`` means all.

    ``since`` and ``until`` are days (both included) in ``time_zone``.
    """

    campaign_id: int | None = None
    since: date | None = None
    until: date | None = None
    time_zone: str = "UTC"
    sources: tuple[str, ...] | None = None
    language: str | None = None
    celebrity_id: str | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """The UTC times the days start and end at (``until``'s next midnight), as far as set."""
        zone = self.zone
        start = end = None
        if self.since is not None:
            start = as_utc(datetime.combine(self.since, time.min, tzinfo=zone))
        if self.until is not None and self.until < date.max:
            end = as_utc(datetime.combine(self.until + timedelta(days=1), time.min, tzinfo=zone))
        return start, end


@dataclass(frozen=True)
class EventCount:
    """Events of one kind on one local day, by source, language and celebrity."""

    day: date
    kind: str
    source: str
    language: str
    celebrity_id: str | None
    count: int


def daily_events(db: Database, where: EventFilter) -> list[EventCount]:
    """Events per day of ``where.time_zone``, kind, source, language and celebrity, oldest first.

    The counters are read as they are (a counter is already one key's sum for its
    quarter of an hour) and each quarter is placed in its local day here, once:
    time-zone rules differ between SQLite and PostgreSQL, and SQLite has none.
    SQLite's times are read as the text it stores, parsed once per quarter.
    """
    slot: Any = CampaignEventRow.slot
    if db.is_sqlite:
        slot = type_coerce(CampaignEventRow.slot, String())
    query = select(
        slot,
        CampaignEventRow.kind,
        CampaignEventRow.source,
        CampaignEventRow.language,
        CampaignEventRow.celebrity_id,
        CampaignEventRow.count,
    )
    if where.campaign_id is not None:
        query = query.where(CampaignEventRow.campaign_id == where.campaign_id)
    start, end = where.bounds()
    if start is not None:
        query = query.where(CampaignEventRow.slot >= start)
    if end is not None:
        query = query.where(CampaignEventRow.slot < end)
    if where.sources is not None:
        query = query.where(CampaignEventRow.source.in_(where.sources))
    if where.language is not None:
        query = query.where(CampaignEventRow.language == where.language)
    if where.celebrity_id is not None:
        # A view or a submission has no celebrity: it is kept, the funnel starts before the choice.
        query = query.where(CampaignEventRow.celebrity_id.in_((where.celebrity_id, NO_CELEBRITY)))
    zone = where.zone
    totals: Counter[tuple[date, str, str, str, str]] = Counter()
    days: dict[Any, date] = {}
    with db.read() as session:
        rows = session.execute(query.execution_options(yield_per=10_000))
        for moment, kind, source, language, celebrity, total in rows:
            day = days.get(moment)
            if day is None:
                when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
                day = days[moment] = as_utc(when).astimezone(zone).date()
            totals[(day, kind, source, language, celebrity)] += int(total)
    return [
        EventCount(day, kind, source, language, celebrity or None, n)
        for (day, kind, source, language, celebrity), n in sorted(totals.items())
    ]


def total_events(counts: Iterable[EventCount], kind: str) -> int:
    """How many events of ``kind`` the counts hold."""
    return sum(one.count for one in counts if one.kind == kind)


def purge_events(db: Database, campaign_id: int, cutoff: datetime, *, dry_run: bool = False) -> int:
    """Delete (or, on a dry run, count) a campaign's counters of slots that began before ``cutoff``.

    Returns:
        How many events those counters held.
    """
    old = (CampaignEventRow.campaign_id == campaign_id) & (CampaignEventRow.slot < as_utc(cutoff))
    if dry_run:
        with db.read() as session:
            return int(session.scalar(select(func.sum(CampaignEventRow.count)).where(old)) or 0)
    with db.write() as session:
        held = int(session.scalar(select(func.sum(CampaignEventRow.count)).where(old)) or 0)
        session.execute(delete(CampaignEventRow).where(old))
        return held
