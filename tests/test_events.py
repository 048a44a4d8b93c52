"""Funnel events: counted per quarter of an hour, read per day of the campaign's time zone."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from matcher.errors import InputError
from matcher.matching import Matcher
from matcher.store import Database
from matcher.store.events import (
    EventCount,
    EventFilter,
    daily_events,
    purge_events,
    record_event,
    slot_of,
    total_events,
)
from matcher.store.privacy import purge_expired
from matcher.store.schema import CampaignEventRow

from .conftest import make_app
from .processes import run_together
from .test_store import make_campaign

TEXT = "Slow mornings with oolong tea, a book of essays and ten minutes of meditation."


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_events_are_counted_per_key_with_nothing_about_the_shopper(database: Database) -> None:
    campaign = make_campaign(database)
    for _ in range(3):
        record_event(
            database, campaign.id, "view", source="form", language="zh", at=at("2026-03-01T04:01")
        )
    record_event(
        database, campaign.id, "view", source="embed", language="en", at=at("2026-03-01T04:14")
    )
    record_event(
        database,
        campaign.id,
        "cta_click",
        source="form",
        language="zh",
        celebrity_id="ocean",
        at=at("2026-03-01T04:59:59"),
    )
    with database.read() as session:
        rows = session.execute(
            select(
                CampaignEventRow.slot,
                CampaignEventRow.kind,
                CampaignEventRow.source,
                CampaignEventRow.language,
                CampaignEventRow.celebrity_id,
                CampaignEventRow.count,
            ).order_by(CampaignEventRow.kind, CampaignEventRow.source)
        ).all()
    # Three zh form views share one counter; a time is kept to its quarter of an hour only.
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
        ("cta_click", "form", "zh", "ocean", 1),
        ("view", "embed", "en", "", 1),
        ("view", "form", "zh", "", 3),
    ]
    slots = sorted({r[0].replace(tzinfo=UTC) if r[0].tzinfo is None else r[0] for r in rows})
    assert slots == [at("2026-03-01T04:00"), at("2026-03-01T04:45")]
    # The table holds nothing that could name a shopper.
    assert set(CampaignEventRow.__table__.columns.keys()) == {
        "campaign_id",
        "slot",
        "kind",
        "source",
        "language",
        "celebrity_id",
        "count",
    }


@pytest.mark.parametrize(
    ("kind", "source", "language", "celebrity", "message"),
    [
        pytest.param("click", "form", "en", None, "event kind", id="unknown-kind"),
        pytest.param("view", "email", "en", None, "event source", id="unknown-source"),
        pytest.param("view", "form", "<b>", None, "event language", id="bad-language"),
        pytest.param("cta_click", "form", "en", "x" * 101, "event celebrity", id="long-celebrity"),
    ],
)
def test_bad_events_are_refused_by_name(
    database: Database, kind: str, source: str, language: str, celebrity: str | None, message: str
) -> None:
    campaign = make_campaign(database)
    with pytest.raises(InputError, match=message):
        record_event(
            database, campaign.id, kind, source=source, language=language, celebrity_id=celebrity
        )


def test_slots_are_quarters_of_an_hour() -> None:
    assert slot_of(at("2026-03-01T23:59:59.9")) == at("2026-03-01T23:45")
    assert slot_of(at("2026-03-01T00:15")) == at("2026-03-01T00:15")
    # An aware time in another zone is the same instant.
    shanghai = datetime.fromisoformat("2026-03-02T08:07+08:00")
    assert slot_of(shanghai) == at("2026-03-02T00:00")


def test_days_are_counted_in_the_campaigns_time_zone_across_midnight_utc(
    database: Database,
) -> None:
    campaign = make_campaign(database)
    # 15:30 UTC on 1 March is 23:30 in Shanghai; 16:00 UTC is already 2 March there.
    for moment, n in (("2026-03-01T15:30", 2), ("2026-03-01T16:00", 5), ("2026-03-01T23:50", 1)):
        for _ in range(n):
            record_event(database, campaign.id, "view", source="form", language="zh", at=at(moment))
    shanghai = daily_events(database, EventFilter(campaign.id, time_zone="Asia/Shanghai"))
    assert [(c.day, c.count) for c in shanghai] == [(date(2026, 3, 1), 2), (date(2026, 3, 2), 6)]
    utc = daily_events(database, EventFilter(campaign.id, time_zone="UTC"))
    assert [(c.day, c.count) for c in utc] == [(date(2026, 3, 1), 8)]
    # A half-hour zone: 15:30 UTC is 21:00 in Kolkata, 23:50 UTC is 05:20 next day.
    kolkata = daily_events(database, EventFilter(campaign.id, time_zone="Asia/Kolkata"))
    assert [(c.day, c.count) for c in kolkata] == [(date(2026, 3, 1), 7), (date(2026, 3, 2), 1)]
    # Local days bound the filter: only 2 March in Shanghai.
    one_day = daily_events(
        database,
        EventFilter(
            campaign.id, since=date(2026, 3, 2), until=date(2026, 3, 2), time_zone="Asia/Shanghai"
        ),
    )
    assert [(c.day, c.count) for c in one_day] == [(date(2026, 3, 2), 6)]


def test_filters_combine(database: Database) -> None:
    campaign = make_campaign(database)
    other = make_campaign(database, "autumn")
    moment = at("2026-03-01T10:00")

    def add(
        kind: str, source: str, language: str, celebrity: str | None = None, n: int = 1
    ) -> None:
        record_event(
            database,
            campaign.id,
            kind,
            source=source,
            language=language,
            celebrity_id=celebrity,
            at=moment,
            count=n,
        )

    add("view", "form", "zh", n=10)
    add("view", "embed", "en", n=4)
    add("view", "upload", "zh", n=20000)
    add("cta_click", "form", "zh", "ocean", n=3)
    add("cta_click", "form", "en", "library", n=2)
    record_event(database, other.id, "view", source="form", language="zh", at=moment, count=99)

    def totals(**where: object) -> dict[str, int]:
        counts = daily_events(database, EventFilter(campaign.id, **where))  # type: ignore[arg-type]
        return {kind: total_events(counts, kind) for kind in ("view", "cta_click")}

    assert totals() == {"view": 20014, "cta_click": 5}
    assert totals(sources=("form", "embed")) == {"view": 14, "cta_click": 5}
    assert totals(sources=("form",), language="zh") == {"view": 10, "cta_click": 3}
    # A celebrity keeps the views (made before any choice) and its own clicks.
    assert totals(sources=("form",), celebrity_id="library") == {"view": 10, "cta_click": 2}
    everywhere = daily_events(database, EventFilter(None, sources=("form",)))
    assert total_events(everywhere, "view") == 109
    assert all(isinstance(c, EventCount) for c in everywhere)


WRITERS = 4
EACH = 60


def _writer(url: str, campaign_id: int) -> None:  # pragma: no cover - a child process
    db = Database(url)
    for n in range(EACH):
        # Everyone hits the same counter, the worst case for a lost update.
        record_event(
            db, campaign_id, "view", source="embed", language="zh", at=at("2026-03-01T10:00")
        )
        if n % 3 == 0:
            record_event(
                db, campaign_id, "cta_click", source="embed", language="zh", celebrity_id="ocean"
            )
    db.dispose()


def test_several_writers_lose_no_event(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    campaign = make_campaign(db)
    outcomes = run_together(_writer, [(database_url, campaign.id)] * WRITERS)
    assert outcomes == {n: "ok" for n in range(WRITERS)}, "\n".join(outcomes.values())
    counts = daily_events(db, EventFilter(campaign.id))
    assert total_events(counts, "view") == WRITERS * EACH
    assert total_events(counts, "cta_click") == WRITERS * (EACH // 3)
    with db.read() as session:
        views = session.scalar(
            select(func.count())
            .select_from(CampaignEventRow)
            .where(CampaignEventRow.kind == "view")
        )
    assert views == 1  # one counter, not one row per view
    db.dispose()


def test_events_go_with_the_campaigns_retention(database: Database) -> None:
    short = make_campaign(database, "short", retention_days=30)
    long = make_campaign(database, "long", retention_days=365)
    now = at("2026-06-01T12:00")
    for campaign in (short, long):
        record_event(
            database,
            campaign.id,
            "view",
            source="form",
            language="en",
            at=now - timedelta(days=40),
            count=7,
        )
        record_event(
            database,
            campaign.id,
            "view",
            source="form",
            language="en",
            at=now - timedelta(days=2),
            count=3,
        )
    trial = purge_expired(database, now, dry_run=True)
    assert trial.events["short"] == 7
    assert trial.events["long"] == 0
    assert total_events(daily_events(database, EventFilter(short.id)), "view") == 10
    done = purge_expired(database, now)
    assert done.events == {"short": 7, "long": 0}
    assert total_events(daily_events(database, EventFilter(short.id)), "view") == 3
    assert total_events(daily_events(database, EventFilter(long.id)), "view") == 10
    assert purge_events(database, short.id, now) == 3
    assert daily_events(database, EventFilter(short.id)) == []


def test_a_campaign_starts_in_shanghai_time_and_takes_only_real_zones(database: Database) -> None:
    campaign = make_campaign(database)
    assert campaign.time_zone == "Asia/Shanghai"
    from matcher.store.campaigns import update_campaign

    assert (
        update_campaign(database, campaign.slug, {"time_zone": "Europe/Paris"}).time_zone
        == "Europe/Paris"
    )
    with pytest.raises(InputError, match="time_zone: 'Mars/Olympus' is not a time zone"):
        update_campaign(database, campaign.slug, {"time_zone": "Mars/Olympus"})


# -- counted by the web as requests end ---------------------------------------------------


def counted(db: Database) -> dict[tuple[str, str, str], int]:
    """Every event counted so far, by (kind, source, language)."""
    totals: dict[tuple[str, str, str], int] = {}
    for one in daily_events(db, EventFilter(None)):
        key = (one.kind, one.source, one.language)
        totals[key] = totals.get(key, 0) + one.count
    return totals


def test_pages_and_api_calls_count_views_and_submissions(db_app: Flask, db: Database) -> None:
    client = db_app.test_client()
    page = client.get("/?lang=zh").get_data(as_text=True)
    client.get("/embed?lang=en")
    client.get("/embed?lang=en")
    client.get("/healthz")  # not a shopper page
    client.get("/r/not-a-result")  # an unknown result is not a view
    token = re.search(r'name="token" value="([^"]+)"', page)
    assert token
    sent = client.post("/", data={"token": token.group(1), "text": TEXT, "lang": "zh"})
    assert sent.status_code < 400
    refused = client.post("/", data={"token": "forged", "text": TEXT})
    assert refused.status_code == 403  # refused: not a submission
    assert client.post("/api/v1/match", json={"text": TEXT}).status_code == 200
    items = [{"text": TEXT}, {"text": "Karaoke with friends until sunrise."}]
    batch = client.post("/api/v1/match/batch", json={"items": items})
    assert batch.status_code == 200, batch.get_data(as_text=True)
    keyed = {"Idempotency-Key": "retry-1"}
    client.post("/api/v1/match", json={"text": TEXT}, headers=keyed)
    replay = client.post("/api/v1/match", json={"text": TEXT}, headers=keyed)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert client.post("/api/v1/match", json={"text": ""}).status_code == 400
    assert counted(db) == {
        ("view", "form", "zh"): 1,
        ("view", "embed", "en"): 2,
        ("submission", "form", "zh"): 1,
        ("submission", "api", "en"): 4,  # one, two in a batch, one keyed; the replay is not new
    }


def test_counting_can_be_turned_off(tmp_path: Path, sample_matcher: Matcher) -> None:
    app = make_app(tmp_path, sample_matcher, MATCHER_COUNT_EVENTS=False)
    app.test_client().get("/")
    assert counted(app.extensions["matcher.db"]) == {}
