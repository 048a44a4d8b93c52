"""Shoppers' rights: export what is held on them, delete it without trace, purge what expired."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import update

from matcher.matching import Matcher
from matcher.store import Database, NewPairing, record_pairings
from matcher.store.privacy import delete_shopper, export_shopper, purge_expired
from matcher.store.schema import BatchRow

from .test_store import TEXTS, batches, best, make_campaign, record, rows, set_created

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_export_lists_every_pairing_of_one_shopper(
    database: Database, fake_matcher: Matcher
) -> None:
    keeps = make_campaign(database, store_text=True, consent_version="v2")
    keeps_none = make_campaign(database, "autumn", name="Autumn", store_text=False)
    mine = "薰衣草 sailing surfing swimming at the beach"
    record(database, keeps, fake_matcher, [mine], refs=["ref-1"])
    record(database, keeps_none, fake_matcher, [TEXTS["library"]], refs=["ref-1"])
    record(database, keeps, fake_matcher, ["someone else's secret stage"], refs=["ref-2"])
    record(database, keeps, fake_matcher, [TEXTS["stage"]], refs=["ref-1"], consented=False)
    set_created(database, ["ref-2"], NOW)

    document = export_shopper(database, "ref-1", now=NOW)

    assert document["shopper_ref"] == "ref-1"
    assert document["exported_at"] == "2026-06-01T12:00:00+00:00"
    pairings = document["pairings"]
    assert [(p["campaign"], p["text"], p["consent_version"]) for p in pairings] == [
        ("spring", mine, "v2"),
        ("autumn", None, "1"),
        ("spring", None, None),
    ]
    first, expected = pairings[0], best(fake_matcher, mine)
    assert first["campaign_name"] == "Spring launch"
    assert first["celebrity_id"] == expected.celebrity_id
    assert first["score"] == pytest.approx(expected.score)
    assert [r["facet"] for r in first["reasons"]] == [r.facet for r in expected.reasons]
    assert first["source"] == "form" and first["model"] == "test/hashing"
    assert datetime.fromisoformat(first["created_at"]).tzinfo is not None
    dumped = json.dumps(document, ensure_ascii=False)
    assert "someone else" not in dumped and "ref-2" not in dumped
    assert export_shopper(database, "nobody")["pairings"] == []


def test_delete_removes_one_shopper_only(database: Database, fake_matcher: Matcher) -> None:
    spring = make_campaign(database, store_text=True)
    autumn = make_campaign(database, "autumn", store_text=True)
    record(database, spring, fake_matcher, [TEXTS["ocean"], TEXTS["stage"]], refs=["me", "you"])
    record(database, autumn, fake_matcher, [TEXTS["library"]], refs=["me"], batch=True)

    deleted = delete_shopper(database, "me")

    assert deleted.pairings == 2
    assert deleted.scrub.complete, deleted.scrub.detail
    assert [(row.shopper_ref, row.shopper_text) for row in rows(database)] == [
        ("you", TEXTS["stage"])
    ]
    assert export_shopper(database, "me")["pairings"] == []
    assert delete_shopper(database, "me").pairings == 0


def _file_bytes(folder: Path) -> dict[str, bytes]:
    names = ("matcher.db", "matcher.db-wal", "matcher.db-shm")
    return {name: (folder / name).read_bytes() for name in names if (folder / name).exists()}


def _holding(marker: bytes, folder: Path) -> list[str]:
    return [name for name, data in _file_bytes(folder).items() if marker in data]


@pytest.mark.parametrize("size", ["short", "overflow-pages"])
@pytest.mark.parametrize("where", ["in-wal", "in-database-file"])
@pytest.mark.parametrize("remove", ["delete", "purge"])
def test_deleted_text_leaves_no_bytes_in_the_sqlite_files(
    sqlite_database: Database,
    fake_matcher: Matcher,
    tmp_path: Path,
    size: str,
    where: str,
    remove: str,
) -> None:
    database = sqlite_database
    campaign = make_campaign(database, store_text=True, retention_days=30)
    make_campaign(database, "autumn", store_text=True)
    marker = f"marker-{uuid.uuid4()} 薰衣草{uuid.uuid4()}"
    text = marker if size == "short" else "surfing " * 1500 + marker  # > one 4 KiB page
    ref = f"s-{uuid.uuid4().hex}"
    ocean = best(fake_matcher, TEXTS["ocean"])
    record_pairings(
        database,
        campaign,
        [
            NewPairing(ocean, TEXTS["ocean"], True, "before"),
            NewPairing(ocean, text, True, ref),
            NewPairing(ocean, TEXTS["stage"], True, "after"),
        ],
        model_id="m",
        index_version="v",
        source="form",
    )
    if remove == "purge":
        set_created(database, [ref], datetime.now(UTC) - timedelta(days=31))
    assert export_shopper(database, ref)["pairings"][0]["text"] == text  # read back
    if where == "in-database-file":
        assert database.scrub().complete  # checkpointed: the text is in matcher.db now
    encoded = marker.encode("utf-8")
    held = _holding(encoded, tmp_path)
    # The check can fail: the marker is there before deletion.
    assert held == (["matcher.db-wal"] if where == "in-wal" else ["matcher.db"])

    if remove == "delete":
        deleted = delete_shopper(database, ref)
        assert deleted.pairings == 1 and deleted.scrub.complete
    else:
        purged = purge_expired(database)
        assert purged.per_campaign == {"spring": 1, "autumn": 0}
        assert purged.scrub is not None and purged.scrub.complete

    assert _holding(encoded, tmp_path) == []
    assert _holding("薰衣草".encode(), tmp_path) == []
    assert [row.shopper_ref for row in rows(database)] == ["before", "after"]
    database.dispose()
    assert _holding(encoded, tmp_path) == []


def test_scrub_reports_a_reader_holding_the_log(
    sqlite_database: Database, fake_matcher: Matcher, tmp_path: Path
) -> None:
    database = sqlite_database
    campaign = make_campaign(database, store_text=True)
    marker = f"marker-{uuid.uuid4()}"
    record(database, campaign, fake_matcher, [marker], refs=["me"])
    reader = sqlite3.connect(tmp_path / "matcher.db")
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM pairings").fetchone()  # holds a snapshot
        started = time.monotonic()
        deleted = delete_shopper(database, "me")
        assert time.monotonic() - started < 20  # gives up after a few seconds, not minutes
        assert deleted.pairings == 1
        assert not deleted.scrub.complete
        assert "run the command again" in deleted.scrub.detail
        assert (tmp_path / "matcher.db-scrub-pending").exists()  # the scrub is owed
    finally:
        reader.close()
    assert database.scrub().complete
    assert _holding(marker.encode(), tmp_path) == []
    assert not (tmp_path / "matcher.db-scrub-pending").exists()


@pytest.mark.parametrize("finisher", ["next-write", "next-start", "background"])
def test_an_owed_scrub_finishes_once_the_reader_ends(
    sqlite_database: Database,
    fake_matcher: Matcher,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    finisher: str,
) -> None:
    """Nobody runs the command again: the text still leaves the log after the reader ends."""
    from matcher.store import database as database_module

    if finisher != "background":
        monkeypatch.setattr(database_module, "SCRUB_RETRY_FOR", 0.0)
    database = sqlite_database
    campaign = make_campaign(database, store_text=True)
    marker = f"marker-{uuid.uuid4()}"
    record(database, campaign, fake_matcher, [marker], refs=["me"])
    reader = sqlite3.connect(tmp_path / "matcher.db")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM pairings").fetchone()
    assert not delete_shopper(database, "me").scrub.complete
    assert _holding(marker.encode(), tmp_path) != []  # the reader kept the old pages
    reader.close()
    if finisher == "next-write":
        record(database, campaign, fake_matcher, [TEXTS["ocean"]], refs=["someone"])
    elif finisher == "next-start":
        database.dispose()
        again = Database(f"sqlite:///{tmp_path / 'matcher.db'}")
        again.migrate()
        again.dispose()
    else:
        marker_file = tmp_path / "matcher.db-scrub-pending"
        deadline = time.monotonic() + 30
        while marker_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    assert _holding(marker.encode(), tmp_path) == []
    assert not (tmp_path / "matcher.db-scrub-pending").exists()


def test_database_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    old = tmp_path / "old" / "matcher.db"
    old.parent.mkdir()
    old.write_bytes(b"")
    old.chmod(0o644)  # as earlier versions left it
    for path in (tmp_path / "new" / "matcher.db", old):
        database = Database(f"sqlite:///{path}")
        database.migrate()
        with database.write() as session:
            session.execute(update(BatchRow).values(source="form"))
        modes = {
            p.name: oct(p.stat().st_mode & 0o777) for p in path.parent.glob("matcher.db*")
            if not p.name.endswith("lock")
        }  # fmt: skip
        database.dispose()
        assert {"matcher.db", "matcher.db-wal", "matcher.db-shm"} <= set(modes)
        assert set(modes.values()) == {"0o600"}, modes
    assert oct((tmp_path / "new").stat().st_mode & 0o777) == "0o700"


@pytest.fixture
def aged(database: Database, fake_matcher: Matcher) -> Database:
    """Two campaigns kept 10 and 30 days, with pairings and batches of various ages."""
    short = make_campaign(database, "short", store_text=True, retention_days=10)
    long = make_campaign(database, "long", store_text=True, retention_days=30)
    ages = {
        "short-5d": (short, timedelta(days=5)),
        "short-10d": (short, timedelta(days=10)),  # exactly at the limit: kept
        "short-10d-1s": (short, timedelta(days=10, seconds=1)),
        "short-11d": (short, timedelta(days=11)),
        "long-11d": (long, timedelta(days=11)),
        "long-31d": (long, timedelta(days=31)),
    }
    for ref, (campaign, age) in ages.items():
        text = TEXTS["ocean"]
        stored = record_pairings(
            database,
            campaign,
            [NewPairing(best(fake_matcher, text), text, True, ref)],
            model_id="m",
            index_version="v",
            source="upload",
            batch=True,
        )
        set_created(database, [ref], NOW - age)
        with database.write() as session:
            session.execute(
                update(BatchRow).where(BatchRow.id == stored.batch_id).values(created_at=NOW - age)
            )
    # An empty batch, just made: not old, so kept whatever it holds.
    record_pairings(
        database, short, [], model_id="m", index_version="v", source="upload", batch=True
    )
    return database


def test_purge_removes_what_is_past_each_campaigns_retention(aged: Database) -> None:
    purged = purge_expired(aged, NOW)

    assert purged.per_campaign == {"short": 2, "long": 1}
    assert purged.total == 3
    assert purged.scrub is not None and purged.scrub.complete
    assert sorted(row.shopper_ref for row in rows(aged)) == ["long-11d", "short-10d", "short-5d"]
    remaining = {row.batch_id for row in rows(aged)}
    # Old batches whose pairings all went are gone; the new empty one stays.
    assert {b.id for b in batches(aged) if b.pairings} == remaining
    assert len(batches(aged)) == 4


def test_purge_dry_run_deletes_nothing(aged: Database) -> None:
    before = [row.id for row in rows(aged)]
    batches_before = [b.id for b in batches(aged)]

    purged = purge_expired(aged, NOW, dry_run=True)

    assert purged.per_campaign == {"short": 2, "long": 1}
    assert purged.scrub is None
    assert [row.id for row in rows(aged)] == before
    assert [b.id for b in batches(aged)] == batches_before


def test_purge_is_idempotent(aged: Database) -> None:
    purge_expired(aged, NOW)
    left = [row.id for row in rows(aged)]

    again = purge_expired(aged, NOW)

    assert again.per_campaign == {"short": 0, "long": 0}
    assert again.scrub is None
    assert [row.id for row in rows(aged)] == left


@pytest.mark.parametrize(
    "zone",
    [timezone(timedelta(hours=8)), timezone(timedelta(hours=-5)), UTC],
    ids=["beijing", "new-york", "utc"],
)
def test_purge_cutoff_does_not_depend_on_the_time_zone_of_now(
    aged: Database, zone: timezone
) -> None:
    """``now`` from a planner's clock in Beijing means the same instant as in UTC."""
    assert purge_expired(aged, NOW.astimezone(zone), dry_run=True).per_campaign == {
        "short": 2,
        "long": 1,
    }
    # One second later, the pairing exactly at the limit goes too.
    later = (NOW + timedelta(seconds=1)).astimezone(zone)
    assert purge_expired(aged, later, dry_run=True).per_campaign == {"short": 3, "long": 1}


def test_purge_with_no_campaigns(database: Database) -> None:
    assert purge_expired(database, NOW).per_campaign == {}


def test_a_deleted_shoppers_text_is_not_recorded_with_consent_alone(
    database: Database, fake_matcher: Matcher
) -> None:
    """Campaign without text storage: nothing personal to export beyond the pairing."""
    campaign = make_campaign(database, store_text=False)
    text = "my address is 1 Secret Road"
    record_pairings(
        database,
        campaign,
        [NewPairing(best(fake_matcher, TEXTS["ocean"]), text, True, "me")],
        model_id="m",
        index_version="v",
        source="api",
    )
    assert "Secret Road" not in json.dumps(export_shopper(database, "me"))
