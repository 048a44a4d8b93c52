"""The database layer: migrations, SQLite set-up, campaigns, stored pairings and reports.

Every test that takes ``database`` or ``database_url`` runs on SQLite and, when
``MATCHER_TEST_POSTGRES_URL`` is set, on PostgreSQL too. Pairings are made
from real :class:`~matcher.matching.Match` objects (the ``fake_matcher``), so
what is stored is checked against what the matcher said, not against the
code under test.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, delete, event, func, select, update
from sqlalchemy.exc import IntegrityError

from matcher.errors import ConfigError, InputError
from matcher.matching import Match, Matcher
from matcher.store import (
    Campaign,
    Database,
    NewPairing,
    PairingFilter,
    check_settings,
    create_campaign,
    default_campaign_settings,
    ensure_campaign,
    find_campaign,
    get_campaign,
    index_version,
    list_campaigns,
    record_pairings,
    update_campaign,
)
from matcher.store.migrate import current
from matcher.store.pairings import CHUNK
from matcher.store.reports import (
    EXPORT_COLUMNS,
    celebrity_totals,
    count_pairings,
    daily_counts,
    export_rows,
    score_bins,
    write_csv,
)
from matcher.store.schema import Base, BatchRow, CampaignRow, PairingRow

from .processes import run_together

# Texts the fake (bag-of-words) matcher sends to each tiny-roster celebrity.
TEXTS = {
    "ocean": "sailing surfing swimming at the beach",
    "library": "reading novels in a library with green tea",
    "stage": "dancing at concerts and karaoke with friends",
}


# -- helpers (also used by test_privacy.py and test_store_cli.py) ---------------------


def settings(slug: str = "spring", **values: Any) -> dict[str, Any]:
    return {"slug": slug, "name": "Spring launch", "brand": "Lueur", "profiles_dir": "p", **values}


def make_campaign(db: Database, slug: str = "spring", **values: Any) -> Campaign:
    return create_campaign(db, check_settings(settings(slug, **values)))


def best(matcher: Matcher, text: str) -> Match:
    return matcher.match(text, 1)[0]


def record(
    db: Database,
    campaign: Campaign,
    matcher: Matcher,
    texts: Sequence[str],
    *,
    consented: bool = True,
    refs: Sequence[str | None] | None = None,
    source: str = "form",
    batch: bool = False,
    filename: str | None = None,
) -> list[str]:
    """Match and store ``texts``; returns the shopper references."""
    refs = refs or [None] * len(texts)
    items = [
        NewPairing(best(matcher, text), text, consented, ref)
        for text, ref in zip(texts, refs, strict=True)
    ]
    stored = record_pairings(
        db,
        campaign,
        items,
        model_id=matcher.index.model_id,
        index_version=index_version(matcher.index),
        source=source,
        batch=batch,
        filename=filename,
    )
    return stored.refs


def set_created(db: Database, refs: Sequence[str], when: datetime) -> None:
    """Backdate the pairings of ``refs`` (times are stored in UTC)."""
    with db.write() as session:
        session.execute(
            update(PairingRow).where(PairingRow.shopper_ref.in_(refs)).values(created_at=when)
        )


def rows(db: Database) -> list[PairingRow]:
    with db.read() as session:
        return list(session.scalars(select(PairingRow).order_by(PairingRow.id)))


def batches(db: Database) -> list[BatchRow]:
    with db.read() as session:
        return list(session.scalars(select(BatchRow).order_by(BatchRow.id)))


def total(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count(PairingRow.id))) or 0)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- the database and its migrations ---------------------------------------------------


def test_upgrade_twice_is_a_no_op(database: Database, database_url: str) -> None:
    campaign = make_campaign(database)
    assert current(database) == "0007"

    database.migrate()
    again = Database(database_url)
    again.migrate()

    assert current(again) == "0007"
    assert list_campaigns(again) == [campaign]
    again.dispose()


def test_migrations_match_the_models(database: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    def differences(metadata: MetaData) -> list[Any]:
        with database.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, metadata))

    assert differences(Base.metadata) == []

    # The comparison does notice drift: a model column no migration created.
    drifted = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["pairings"].append_column(Column("drift", Integer))
    assert [d[0] for d in differences(drifted)] == ["add_column"]


def test_sqlite_connections_are_set_up(sqlite_database: Database, sqlite_url: str) -> None:
    # sqlite_database made and migrated the file; a fresh Database opens new connections.
    fresh = Database(sqlite_url)
    with fresh.engine.connect() as connection:

        def pragma(name: str) -> Any:
            return connection.exec_driver_sql(f"PRAGMA {name}").scalar()

        assert pragma("journal_mode") == "wal"
        assert pragma("busy_timeout") == 15_000
        assert pragma("secure_delete") == 1
        assert pragma("foreign_keys") == 1
        assert pragma("synchronous") == 2  # FULL
    fresh.dispose()


def test_sqlite_write_transactions_take_the_write_lock_at_once(
    sqlite_database: Database, sqlite_url: str
) -> None:
    """BEGIN IMMEDIATE: a writer that has only read so far already blocks other writers."""
    database = sqlite_database
    database_url = sqlite_url
    other = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=0)
    other.isolation_level = None
    try:
        with database.write() as session:
            session.execute(select(func.count(CampaignRow.id)))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        # Readers never take it.
        with database.read() as session:
            session.execute(select(func.count(CampaignRow.id)))
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
    finally:
        other.close()


def test_foreign_keys_are_enforced(database: Database) -> None:
    with pytest.raises(IntegrityError):
        with database.write() as session:
            session.add(
                PairingRow(
                    campaign_id=999,
                    shopper_ref="r",
                    celebrity_id="ocean",
                    score=0.5,
                    margin=0.1,
                    reasons=[],
                    model_id="m",
                    index_version="v",
                    source="form",
                )
            )
    assert total(database) == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("sqlite:///:memory:", "not memory", id="sqlite-memory"),
        pytest.param("sqlite://", "not memory", id="sqlite-no-file"),
        pytest.param("mysql://user@host/db", "'mysql' is not supported", id="mysql"),
        pytest.param("not a url", "is not a URL", id="not-a-url"),
    ],
)
def test_unusable_database_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Database(url)


def test_unreachable_postgresql_is_a_config_error(tmp_path: Any) -> None:
    db = Database(f"postgresql://matcher:s3cret@/matcher?host={tmp_path}&port=1")
    assert "s3cret" not in db.describe()
    with pytest.raises(ConfigError, match="cannot reach database") as caught:
        db.migrate()
    assert "s3cret" not in str(caught.value)
    db.dispose()


# -- campaigns ---------------------------------------------------------------------------


def test_create_list_get_and_find_campaigns(database: Database) -> None:
    spring = make_campaign(database, embed_origins=["https://Shop.Example:443"])
    autumn = make_campaign(database, "autumn", store_text=True, retention_days=30)

    assert spring.slug == "spring" and spring.name == "Spring launch"
    assert spring.embed_origins == ["https://shop.example"]
    assert spring.store_text is False and spring.retention_days == 180
    assert autumn.store_text is True and autumn.retention_days == 30
    assert spring.id != autumn.id
    assert list_campaigns(database) == [spring, autumn]
    assert get_campaign(database, "autumn") == autumn
    assert find_campaign(database, "winter") is None
    with pytest.raises(InputError, match="no campaign 'winter'"):
        get_campaign(database, "winter")


def test_a_taken_slug_is_refused(database: Database) -> None:
    make_campaign(database)
    with pytest.raises(InputError, match="slug: a campaign 'spring' already exists"):
        make_campaign(database, name="Other")
    assert len(list_campaigns(database)) == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"slug": "Bad Slug"}, "slug", id="slug-spaces-capitals"),
        pytest.param({"slug": "-lead"}, "slug", id="slug-leading-dash"),
        pytest.param({"slug": "a" * 41}, "slug", id="slug-too-long"),
        pytest.param({"slug": ""}, "slug", id="slug-empty"),
        pytest.param({"retention_days": 0}, "retention_days", id="retention-zero"),
        pytest.param({"retention_days": 3651}, "retention_days", id="retention-ten-years"),
        pytest.param({"retention_days": "soon"}, "retention_days", id="retention-not-a-number"),
        pytest.param({"embed_origins": ["ftp://shop.example"]}, "embed_origins", id="origin-ftp"),
        pytest.param(
            {"embed_origins": ["https://shop.example/page"]}, "embed_origins", id="origin-path"
        ),
        pytest.param({"embed_origins": ["shop.example"]}, "embed_origins", id="origin-no-scheme"),
        pytest.param({"name": ""}, "name", id="name-empty"),
        pytest.param({"name": "   "}, "name", id="name-blank"),
        pytest.param({"brand": "x" * 201}, "brand", id="brand-too-long"),
        pytest.param({"consent_version": ""}, "consent_version", id="consent-version-empty"),
        pytest.param({"colour": "red"}, "colour", id="unknown-field"),
    ],
)
def test_invalid_settings_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as caught:
        check_settings({**settings(), **changes})
    message = str(caught.value)
    assert message.startswith(f"{field}: "), message
    assert "\n" not in message


def test_every_invalid_field_is_named_at_once() -> None:
    with pytest.raises(InputError) as caught:
        check_settings(settings("Bad!", name="", retention_days=0, embed_origins=["nope"]))
    fields = [problem.split(":")[0] for problem in str(caught.value).split("; ")]
    assert sorted(fields) == ["embed_origins", "name", "retention_days", "slug"]


def test_update_changes_settings_and_keeps_the_slug(database: Database) -> None:
    before = make_campaign(database)
    after = update_campaign(
        database,
        "spring",
        {"slug": "renamed", "name": "Spring relaunch", "store_text": True, "retention_days": 7},
    )
    assert after.slug == "spring" and after.id == before.id
    assert (after.name, after.store_text, after.retention_days) == ("Spring relaunch", True, 7)
    assert after.brand == before.brand and after.consent_text == before.consent_text
    assert get_campaign(database, "spring") == after
    assert find_campaign(database, "renamed") is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"retention_days": 0}, "retention_days", id="retention-zero"),
        pytest.param({"embed_origins": ["javascript:alert(1)"]}, "embed_origins", id="origin"),
        pytest.param({"name": ""}, "name", id="name-empty"),
        pytest.param({"id": 7}, "id", id="not-a-setting"),
    ],
)
def test_update_validates_and_stores_nothing_when_invalid(
    database: Database, changes: dict[str, Any], field: str
) -> None:
    before = make_campaign(database)
    with pytest.raises(InputError, match=f"^{field}: "):
        update_campaign(database, "spring", {"brand": "Changed", **changes})
    assert get_campaign(database, "spring") == before


def test_update_of_a_missing_campaign(database: Database) -> None:
    with pytest.raises(InputError, match="no campaign 'winter'"):
        update_campaign(database, "winter", {"name": "x"})


def test_ensure_campaign_is_idempotent(database: Database) -> None:
    first = ensure_campaign(database, default_campaign_settings("profiles"))
    second = ensure_campaign(
        database, default_campaign_settings("elsewhere").model_copy(update={"name": "Other"})
    )
    assert second == first
    assert (first.slug, first.profiles_dir, first.store_text) == ("default", "profiles", True)
    assert list_campaigns(database) == [first]


def test_creating_a_campaign_another_writer_is_creating(database: Database) -> None:
    """Two workers creating one campaign at once: an InputError (never a raw
    IntegrityError), so ``ensure_campaign`` returns the one that won."""
    outcome: dict[str, Any] = {}

    def create() -> None:
        try:
            outcome["created"] = create_campaign(database, check_settings(settings()))
        except Exception as exc:  # noqa: BLE001 - reported to the test thread
            outcome["error"] = exc
        try:
            outcome["ensured"] = ensure_campaign(database, check_settings(settings()))
        except Exception as exc:  # noqa: BLE001
            outcome["ensure_error"] = exc

    with database.write() as session:
        session.add(CampaignRow(**check_settings(settings()).model_dump()))
        session.flush()
        racer = threading.Thread(target=create)
        racer.start()
        time.sleep(0.5)  # the racer checks the slug and waits on our transaction
    racer.join(30)

    assert "created" not in outcome
    assert isinstance(outcome.get("error"), InputError), outcome
    assert "ensure_error" not in outcome, outcome
    assert outcome["ensured"] == get_campaign(database, "spring")
    assert len(list_campaigns(database)) == 1


# -- storing pairings ---------------------------------------------------------------------


@pytest.mark.parametrize("store_text", [True, False], ids=["keeps-text", "keeps-no-text"])
@pytest.mark.parametrize("consented", [True, False], ids=["consented", "no-consent"])
def test_text_is_stored_only_with_consent_where_the_campaign_keeps_it(
    database: Database, fake_matcher: Matcher, store_text: bool, consented: bool
) -> None:
    campaign = make_campaign(database, store_text=store_text, consent_version="v3")
    text = TEXTS["ocean"]
    stored = record_pairings(
        database,
        campaign,
        [NewPairing(best(fake_matcher, text), text, consented)],
        model_id="m",
        index_version="v",
        source="form",
    )

    [row] = rows(database)
    assert row.shopper_text == (text if consented and store_text else None)
    assert row.consent_version == ("v3" if consented else None)
    assert stored.texts_kept == (1 if consented and store_text else 0)


def test_a_pairing_stores_the_match(database: Database, fake_matcher: Matcher) -> None:
    campaign = make_campaign(database)
    matches = {celebrity: best(fake_matcher, text) for celebrity, text in TEXTS.items()}
    assert {m.celebrity_id for m in matches.values()} == set(TEXTS)  # the fake is sane
    refs = record(database, campaign, fake_matcher, list(TEXTS.values()), source="embed")

    stored = rows(database)
    assert [row.shopper_ref for row in stored] == refs
    for row, match in zip(stored, matches.values(), strict=True):
        assert row.campaign_id == campaign.id
        assert row.celebrity_id == match.celebrity_id
        assert row.score == pytest.approx(match.score)
        assert row.margin == pytest.approx(match.margin)
        assert row.reasons == [
            {"facet": r.facet, "score": pytest.approx(r.score, abs=1e-4), "quote": r.quote}
            for r in match.reasons
        ]
        assert row.reasons and all(r["quote"] for r in row.reasons)
        assert row.model_id == "test/hashing"
        assert row.index_version == index_version(fake_matcher.index)
        assert row.source == "embed"
        assert row.batch_id is None
        assert abs(_as_utc(row.created_at) - datetime.now(UTC)) < timedelta(minutes=1)
    assert batches(database) == []


def test_generated_refs_are_unique_and_given_refs_kept(
    database: Database, fake_matcher: Matcher
) -> None:
    campaign = make_campaign(database)
    texts = [TEXTS["stage"]] * 200
    given = ["crm-1", None, "crm-2", ""] * 50
    refs = record(database, campaign, fake_matcher, texts, refs=given)

    assert refs[0::4] == ["crm-1"] * 50 and refs[2::4] == ["crm-2"] * 50
    generated = refs[1::4] + refs[3::4]
    assert len(set(generated)) == 100
    assert all(ref.startswith("s-") and len(ref) >= 16 for ref in generated)
    assert [row.shopper_ref for row in rows(database)] == refs


def test_a_batch_is_recorded_with_its_count(database: Database, fake_matcher: Matcher) -> None:
    campaign = make_campaign(database)
    texts = [TEXTS["library"], TEXTS["ocean"]] * 3
    stored = record_pairings(
        database,
        campaign,
        [NewPairing(best(fake_matcher, t), t, False) for t in texts],
        model_id="m",
        index_version="v",
        source="upload",
        batch=True,
        filename="shoppers.csv",
    )
    record(database, campaign, fake_matcher, [TEXTS["stage"]])  # not a batch

    [row] = batches(database)
    assert stored.batch_id == row.id and stored.count == 6
    assert (row.campaign_id, row.source, row.filename, row.pairings) == (
        campaign.id,
        "upload",
        "shoppers.csv",
        6,
    )
    assert [r.batch_id for r in rows(database)] == [row.id] * 6 + [None]


def test_a_batch_is_stored_whole_or_not_at_all(database: Database, fake_matcher: Matcher) -> None:
    campaign = make_campaign(database, store_text=True)
    make_campaign(database, "other")
    record(database, campaign, fake_matcher, [TEXTS["ocean"]])  # already there before
    match = best(fake_matcher, TEXTS["ocean"])
    failing_after = 2500
    assert failing_after > 2 * CHUNK  # earlier chunks really were sent to the database

    def items() -> Iterator[NewPairing]:
        for n in range(failing_after):
            yield NewPairing(match, f"shopper {n}", True)
        raise RuntimeError("the upload broke off")

    inserts: list[int] = []

    def count_inserts(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO pairings"):
            inserts.append(1)

    event.listen(database.engine, "before_cursor_execute", count_inserts)
    try:
        with pytest.raises(RuntimeError, match="broke off"):
            record_pairings(
                database,
                campaign,
                items(),
                model_id="m",
                index_version="v",
                source="upload",
                batch=True,
            )
    finally:
        event.remove(database.engine, "before_cursor_execute", count_inserts)

    assert inserts  # chunks were inserted before the failure...
    assert total(database) == 1  # ...and rolled back with it
    assert batches(database) == []
    # The database is usable afterwards.
    record(database, campaign, fake_matcher, [TEXTS["stage"]], batch=True)
    assert total(database) == 2 and len(batches(database)) == 1


def test_an_unknown_source_stores_nothing(database: Database, fake_matcher: Matcher) -> None:
    campaign = make_campaign(database)
    with pytest.raises(ValueError, match="unknown pairing source 'fax'"):
        record(database, campaign, fake_matcher, [TEXTS["ocean"]], source="fax", batch=True)
    assert total(database) == 0 and batches(database) == []


def test_index_version_fingerprints_model_and_vectors(
    fake_matcher: Matcher, roster_dir: Any
) -> None:
    from matcher.index import build_index
    from matcher.profiles import load_profiles

    from .fakes import HashingEncoder

    version = index_version(fake_matcher.index)
    assert len(version) == 16 and int(version, 16) >= 0
    assert index_version(fake_matcher.index) == version

    profiles = load_profiles(roster_dir)
    same, _ = build_index(profiles, HashingEncoder())
    other_model, _ = build_index(profiles, HashingEncoder(model_id="test/other"))
    other_vectors, _ = build_index(profiles, HashingEncoder(dimension=32))
    assert index_version(same) == version
    assert index_version(other_model) != version
    assert index_version(other_vectors) != version


# -- reports --------------------------------------------------------------------------------


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def test_celebrity_totals_and_counts(database: Database, fake_matcher: Matcher) -> None:
    spring = make_campaign(database)
    autumn = make_campaign(database, "autumn")
    texts = [TEXTS["ocean"]] * 3 + [TEXTS["library"]] * 2 + [TEXTS["stage"]]
    record(database, spring, fake_matcher, texts)
    record(database, autumn, fake_matcher, [TEXTS["stage"]] * 4)
    expected = Counter(best(fake_matcher, t).celebrity_id for t in texts)

    assert celebrity_totals(database, PairingFilter(spring.id)) == dict(expected)
    assert celebrity_totals(database, PairingFilter(autumn.id)) == {"stage": 4}
    assert celebrity_totals(database, PairingFilter()) == dict(expected + Counter(stage=4))
    assert count_pairings(database, PairingFilter(spring.id)) == 6
    assert count_pairings(database, PairingFilter()) == 10


@pytest.fixture
def dated(database: Database, fake_matcher: Matcher) -> tuple[Database, Campaign, Campaign]:
    """Pairings at chosen moments around 1-3 March 2026 (UTC), in two campaigns."""
    spring = make_campaign(database)
    autumn = make_campaign(database, "autumn")
    moments = {
        "feb-28-last": (spring, "ocean", utc(2026, 2, 28, 23, 59, 59, 999999)),
        "mar-1-first": (spring, "ocean", utc(2026, 3, 1, 0, 0, 0)),
        "mar-1-noon": (spring, "library", utc(2026, 3, 1, 12, 0)),
        "mar-2": (spring, "ocean", utc(2026, 3, 2, 8, 30)),
        "mar-3-last": (spring, "stage", utc(2026, 3, 3, 23, 59, 59, 999999)),
        "mar-4-first": (spring, "stage", utc(2026, 3, 4, 0, 0, 0)),
        "autumn-mar-2": (autumn, "stage", utc(2026, 3, 2, 9, 0)),
    }
    for ref, (campaign, celebrity, when) in moments.items():
        record(database, campaign, fake_matcher, [TEXTS[celebrity]], refs=[ref])
        set_created(database, [ref], when)
    return database, spring, autumn


def test_daily_counts_across_days(dated: tuple[Database, Campaign, Campaign]) -> None:
    database, spring, _ = dated
    assert daily_counts(database, PairingFilter(spring.id)) == [
        (date(2026, 2, 28), "ocean", 1),
        (date(2026, 3, 1), "library", 1),
        (date(2026, 3, 1), "ocean", 1),
        (date(2026, 3, 2), "ocean", 1),
        (date(2026, 3, 3), "stage", 1),
        (date(2026, 3, 4), "stage", 1),
    ]
    assert (date(2026, 3, 2), "stage", 1) in daily_counts(database, PairingFilter())


def test_since_and_until_are_inclusive_days(dated: tuple[Database, Campaign, Campaign]) -> None:
    database, spring, autumn = dated
    march = PairingFilter(spring.id, date(2026, 3, 1), date(2026, 3, 3))

    exported = [row[2] for row in export_rows(database, march)]
    assert exported == ["mar-1-first", "mar-1-noon", "mar-2", "mar-3-last"]
    assert count_pairings(database, march) == 4
    assert celebrity_totals(database, march) == {"ocean": 2, "library": 1, "stage": 1}
    assert [day for day, _, _ in daily_counts(database, march)] == [
        date(2026, 3, 1),
        date(2026, 3, 1),
        date(2026, 3, 2),
        date(2026, 3, 3),
    ]
    one_day = PairingFilter(None, date(2026, 3, 2), date(2026, 3, 2))
    assert sorted(row[2] for row in export_rows(database, one_day)) == ["autumn-mar-2", "mar-2"]
    assert count_pairings(database, PairingFilter(None, since=date(2026, 3, 4))) == 1
    assert count_pairings(database, PairingFilter(None, until=date(2026, 2, 28))) == 1
    assert count_pairings(database, PairingFilter(autumn.id, until=date(2026, 3, 1))) == 0


def test_score_bins(database: Database, fake_matcher: Matcher) -> None:
    campaign = make_campaign(database)
    scores = [0.0, 0.125, 0.25, 0.5, 0.75, 0.99, -0.125]  # exact in binary
    refs = [f"r{n}" for n in range(len(scores))]
    record(database, campaign, fake_matcher, [TEXTS["ocean"]] * len(scores), refs=refs)
    with database.write() as session:
        for ref, score in zip(refs, scores, strict=True):
            session.execute(
                update(PairingRow).where(PairingRow.shopper_ref == ref).values(score=score)
            )
    assert score_bins(database, PairingFilter(campaign.id), 0.25) == Counter(
        {0: 2, 1: 1, 2: 1, 3: 2, -1: 1}
    )
    assert score_bins(database, PairingFilter(campaign.id + 1), 0.25) == Counter()


def test_csv_export(database: Database, fake_matcher: Matcher) -> None:
    campaign = make_campaign(database, store_text=True, consent_version="v2")
    secret = "my secret wardrobe 秘密衣橱 sailing surfing"
    match = best(fake_matcher, secret)
    stored = record_pairings(
        database,
        campaign,
        [
            NewPairing(match, secret, True, "=cmd|' /C calc'!A0"),
            NewPairing(match, secret, False, "+1"),
            NewPairing(match, secret, True, "@SUM(A1)"),
            NewPairing(match, secret, True, "-2"),
            NewPairing(match, secret, True, "plain"),
        ],
        model_id="=model",
        index_version="abc",
        source="upload",
        batch=True,
    )
    set_created(database, stored.refs, utc(2026, 3, 1, 10, 30, 15, 500))
    assert rows(database)[0].shopper_text == secret  # stored, yet never exported

    handle = io.StringIO()
    written = write_csv(database, PairingFilter(campaign.id), handle)
    output = handle.getvalue()

    assert written == 5
    assert "secret" not in output and "秘密" not in output
    lines = list(csv.reader(io.StringIO(output)))
    assert (
        tuple(lines[0])
        == EXPORT_COLUMNS
        == (
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
    )
    exported = [dict(zip(lines[0], line, strict=True)) for line in lines[1:]]
    assert [row["shopper_ref"] for row in exported] == [
        "'=cmd|' /C calc'!A0",
        "'+1",
        "'@SUM(A1)",
        "'-2",
        "plain",
    ]
    first = exported[0]
    assert first == {
        "created_at": "2026-03-01T10:30:15+00:00",
        "campaign": "spring",
        "shopper_ref": "'=cmd|' /C calc'!A0",
        "celebrity_id": match.celebrity_id,
        "score": f"{match.score:.4f}",
        "margin": f"{match.margin:.4f}",
        "source": "upload",
        "batch_id": str(stored.batch_id),
        "consent_version": "v2",
        "model": "'=model",
        "index_version": "abc",
    }
    assert exported[1]["consent_version"] == ""


def test_export_is_oldest_first(database: Database, fake_matcher: Matcher) -> None:
    campaign = make_campaign(database)
    refs = record(database, campaign, fake_matcher, [TEXTS["ocean"]] * 3, refs=["a", "b", "c"])
    set_created(database, ["a"], utc(2026, 3, 3))
    set_created(database, ["b"], utc(2026, 3, 1))
    set_created(database, ["c"], utc(2026, 3, 2))
    assert [row[2] for row in export_rows(database, PairingFilter())] == ["b", "c", "a"]
    assert refs == ["a", "b", "c"]


# -- several processes writing at once ----------------------------------------------------

WORKERS = 4
SINGLES = 60
BATCH = 300


def _worker(url: str, matches: list[Match], worker: int) -> None:  # pragma: no cover - a child
    db = Database(url)
    # What a web worker does when it starts: migrate, make sure of its campaign.
    db.migrate()
    campaign = ensure_campaign(db, check_settings(settings(store_text=True)))
    for n in range(SINGLES):
        match = matches[n % len(matches)]
        record_pairings(
            db,
            campaign,
            [NewPairing(match, f"worker {worker} shopper {n}", True, f"w{worker}-{n}")],
            model_id="m",
            index_version="v",
            source="form",
        )
        if n % 10 == 0:
            count_pairings(db, PairingFilter(campaign.id))
    record_pairings(
        db,
        campaign,
        (NewPairing(matches[n % len(matches)], "batch", False) for n in range(BATCH)),
        model_id="m",
        index_version="v",
        source="upload",
        batch=True,
    )
    db.dispose()


def test_several_processes_write_at_once(database_url: str, fake_matcher: Matcher) -> None:
    """Web workers starting together on a fresh database, then writing: no lock errors."""
    matches = [best(fake_matcher, text) for text in TEXTS.values()]
    outcomes = run_together(_worker, [(database_url, matches, n) for n in range(WORKERS)])
    assert outcomes == {n: "ok" for n in range(WORKERS)}, "\n".join(outcomes.values())

    db = Database(database_url)
    [campaign] = list_campaigns(db)
    assert count_pairings(db, PairingFilter(campaign.id)) == WORKERS * (SINGLES + BATCH)
    assert sorted(b.pairings for b in batches(db)) == [BATCH] * WORKERS
    refs = {row.shopper_ref for row in rows(db) if row.source == "form"}
    assert refs == {f"w{w}-{n}" for w in range(WORKERS) for n in range(SINGLES)}
    with db.write() as session:  # and the file is still writable
        session.execute(delete(PairingRow))
    db.dispose()
