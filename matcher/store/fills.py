"""How many shoppers each celebrity has been promised, counted with the pairing itself.

A quota is a promise to the celebrity (signed bottles, places at a
meet-and-greet), so it must hold however many workers and machines pair
shoppers at once. The count lives in ``celebrity_fills`` and is read,
decided on and raised inside the transaction that stores the pairing: on
SQLite every write transaction already holds the database's write lock
(``BEGIN IMMEDIATE``); on PostgreSQL the campaign's row is locked
(``SELECT ... FOR UPDATE``) first, so one campaign's limited pairings queue
for a few milliseconds each while other campaigns' do not wait.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..capacity import Limits
from ..online import Choice, choose
from .schema import CampaignRow, FillRow, utcnow


def lock_campaign(session: Session, campaign_id: int) -> None:
    """Hold the campaign's fills until the transaction ends (PostgreSQL; SQLite holds the file)."""
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        session.execute(
            select(CampaignRow.id).where(CampaignRow.id == campaign_id).with_for_update()
        )


def fills(session: Session, campaign_id: int) -> dict[str, int]:
    """Pairings promised per celebrity so far."""
    rows = session.execute(
        select(FillRow.celebrity_id, FillRow.assigned).where(FillRow.campaign_id == campaign_id)
    )
    return {celebrity: int(count) for celebrity, count in rows}


def add_fill(session: Session, campaign_id: int, celebrity_id: str, count: int = 1) -> None:
    """Count ``count`` more pairings for a celebrity (under :func:`lock_campaign`)."""
    updated = session.execute(
        update(FillRow)
        .where(FillRow.campaign_id == campaign_id, FillRow.celebrity_id == celebrity_id)
        .values(assigned=FillRow.assigned + count, updated_at=utcnow())
    )
    if not updated.rowcount:  # type: ignore[attr-defined]
        session.add(FillRow(campaign_id=campaign_id, celebrity_id=celebrity_id, assigned=count))
        session.flush()


def reserve(
    session: Session,
    campaign_id: int,
    ranked: Sequence[tuple[str, float]],
    limits: Mapping[str, Limits],
    counts: dict[str, int],
) -> Choice:
    """Choose a celebrity for one shopper under the limits and count them in ``counts`` too.

    The caller locks the campaign and reads ``counts`` once per transaction
    (:func:`lock_campaign`, :func:`fills`); a batch of pairings then reserves
    one after another against the same running counts.
    """
    choice = choose(ranked, limits, counts)
    if choice.index >= 0:
        celebrity = ranked[choice.index][0]
        add_fill(session, campaign_id, celebrity)
        counts[celebrity] = counts.get(celebrity, 0) + 1
    return choice
