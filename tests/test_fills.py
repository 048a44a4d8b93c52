"""Quotas online: counted with the pairing, never exceeded however many processes race."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from matcher.capacity import Limits
from matcher.matching import Match
from matcher.store import Database, NewPairing
from matcher.store.fills import fills
from matcher.store.pairings import record_pairings
from matcher.store.schema import PairingRow

from .processes import run_together
from .test_store import make_campaign

#: Ocean well ahead: no price short of a full quota makes library better.
RANKING = (
    Match("ocean", "Ocean", "海", 0.90, 0.40, 1, ()),
    Match("library", "Library", "书", 0.50, 0.20, 2, ()),
    Match("stage", "Stage", "台", 0.30, 0.0, 3, ()),
)
#: A close second: as ocean fills, its price passes the 0.02 between them.
CLOSE = (
    Match("ocean", "Ocean", "海", 0.80, 0.02, 1, ()),
    Match("library", "Library", "书", 0.78, 0.28, 2, ()),
    Match("stage", "Stage", "台", 0.50, 0.0, 3, ()),
)


def shopper(n: int, ranking: tuple[Match, ...] = RANKING) -> NewPairing:
    return NewPairing(ranking[0], f"text {n}", False, f"ref-{n}", ranking=ranking)


def store(db: Database, campaign: Any, items: list[NewPairing], **options: Any) -> Any:
    return record_pairings(
        db, campaign, items, model_id="m", index_version="v", source="api", **options
    )


def stored_celebrities(db: Database) -> dict[str, int]:
    with db.read() as session:
        rows = session.execute(
            select(PairingRow.celebrity_id, func.count()).group_by(PairingRow.celebrity_id)
        )
        return {celebrity: int(count) for celebrity, count in rows}


def test_a_full_celebrity_sends_the_next_shopper_to_the_best_with_room(database: Database) -> None:
    campaign = make_campaign(database)
    limits = {"ocean": Limits(quota=2)}
    answers = [store(database, campaign, [shopper(n)], limits=limits) for n in range(4)]
    assigned = [a.assigned[0] for a in answers]
    assert [a.celebrity_id for a in assigned] == ["ocean", "ocean", "library", "library"]
    assert [a.why for a in assigned] == ["best", "best", "full", "full"]
    with database.read() as session:
        rows = session.execute(
            select(
                PairingRow.celebrity_id, PairingRow.first_choice, PairingRow.assignment
            ).order_by(PairingRow.id)
        ).all()
        assert [tuple(r) for r in rows][2] == ("library", "ocean", "full")
        assert fills(session, campaign.id) == {"ocean": 2, "library": 2}


def test_a_close_second_takes_shoppers_before_the_first_is_full(database: Database) -> None:
    """Early shoppers do not use up a popular face when another fits them almost as well."""
    campaign = make_campaign(database)
    limits = {"ocean": Limits(quota=10)}
    answers = [store(database, campaign, [shopper(n, CLOSE)], limits=limits) for n in range(10)]
    assigned = [a.assigned[0] for a in answers]
    ocean = sum(a.celebrity_id == "ocean" for a in assigned)
    assert 0 < ocean < 10
    assert {a.why for a in assigned if a.celebrity_id == "library"} == {"balanced"}


def test_when_every_place_is_taken_nothing_is_stored(database: Database) -> None:
    campaign = make_campaign(database)
    limits = {"ocean": Limits(quota=1), "library": Limits(quota=0), "stage": Limits(quota=0)}
    first = store(database, campaign, [shopper(1)], limits=limits)
    second = store(database, campaign, [shopper(2)], limits=limits)
    assert first.assigned[0].celebrity_id == "ocean" and first.count == 1
    assert second.assigned[0].celebrity_id is None and second.count == 0
    assert stored_celebrities(database) == {"ocean": 1}


def test_a_stored_batch_is_assigned_exactly_over_the_room_left(database: Database) -> None:
    campaign = make_campaign(database)
    limits = {"ocean": Limits(quota=3)}
    store(database, campaign, [shopper(0)], limits=limits)  # one place taken online
    # Two shoppers lose little by moving to library, two lose a lot.
    close = CLOSE
    far = (
        Match("ocean", "Ocean", "海", 0.9, 0.5, 1, ()),
        Match("library", "Library", "书", 0.4, 0.1, 2, ()),
        Match("stage", "Stage", "台", 0.3, 0.0, 3, ()),
    )
    batch = [shopper(1, close), shopper(2, far), shopper(3, close), shopper(4, far)]
    result = store(database, campaign, batch, limits=limits, batch=True)
    assert [a.celebrity_id for a in result.assigned] == ["library", "ocean", "library", "ocean"]
    with database.read() as session:
        assert fills(session, campaign.id) == {"ocean": 3, "library": 2}


WORKERS = 4
EACH = 15
QUOTA = 17


def _racer(url: str, slug: str, worker: int) -> None:  # pragma: no cover - a child process
    from matcher.store.campaigns import get_campaign

    db = Database(url)
    campaign = get_campaign(db, slug)
    for n in range(EACH):
        store(db, campaign, [shopper(worker * 100 + n)], limits={"ocean": Limits(quota=QUOTA)})
    db.dispose()


def test_processes_racing_for_the_last_places_never_exceed_the_quota(database_url: str) -> None:
    db = Database(database_url)
    db.migrate()
    campaign = make_campaign(db)
    outcomes = run_together(_racer, [(database_url, campaign.slug, n) for n in range(WORKERS)])
    assert outcomes == {n: "ok" for n in range(WORKERS)}, "\n".join(outcomes.values())
    totals = stored_celebrities(db)
    assert totals["ocean"] == QUOTA
    assert sum(totals.values()) == WORKERS * EACH
    with db.read() as session:
        assert fills(session, campaign.id)["ocean"] == QUOTA
    db.dispose()
