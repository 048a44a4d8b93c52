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

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..assignment import assign, reasons
from ..capacity import Bounds, Limits
from ..online import Choice, choose
from .database import Database
from .schema import CampaignRow, FillRow, utcnow

if TYPE_CHECKING:
    from .pairings import NewPairing

#: The fit given to a celebrity missing from a shopper's ranking: never worth choosing.
UNRANKED = -2.0


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


def remaining_bounds(
    celebrities: Sequence[str], limits: Mapping[str, Limits], counts: Mapping[str, int], n: int
) -> Bounds:
    """What ``n`` more pairings may give each celebrity, given those counted so far.

    Quotas leave their remaining room; shares are of every pairing once these
    are stored. Minimums already out of reach are asked for as far as ``n`` allows.
    """
    total = sum(counts.values()) + n
    lower = np.zeros(len(celebrities), np.int64)
    upper = np.full(len(celebrities), n, np.int64)
    for j, celebrity in enumerate(celebrities):
        limit = limits.get(celebrity, Limits())
        count = counts.get(celebrity, 0)
        if limit.quota is not None:
            upper[j] = min(upper[j], max(0, limit.quota - count))
        if limit.max_share is not None:
            upper[j] = min(upper[j], max(0, math.floor(limit.max_share * total) - count))
        if limit.min_share is not None:
            lower[j] = min(upper[j], max(0, math.ceil(limit.min_share * total) - count))
    while lower.sum() > n:
        lower[int(np.argmax(lower))] -= 1
    return Bounds(lower, upper, n)


def assign_batch(
    items: Iterable[NewPairing],
    celebrities: Sequence[str],
    limits: Mapping[str, Limits],
    counts: dict[str, int],
) -> list[tuple[str | None, str]]:
    """The exact assignment of a stored batch over the room left: (celebrity or None, why) each.

    ``items`` is read once, keeping only each shopper's fit with each of
    ``celebrities`` (float32), so a long upload costs ``n x m`` numbers here.
    """
    column = {celebrity: j for j, celebrity in enumerate(celebrities)}
    rows: list[np.ndarray] = []
    for item in items:
        row = np.full(len(celebrities), UNRANKED, np.float32)
        for match in item.ranking or (item.match,):
            if match.celebrity_id in column:
                row[column[match.celebrity_id]] = match.score
        rows.append(row)
    if not rows:
        return []
    scores = np.stack(rows)
    bounds = remaining_bounds(celebrities, limits, counts, len(rows))
    result = assign(scores, bounds)
    choices: list[tuple[str | None, str]] = []
    for j, why in zip(result.assigned.tolist(), reasons(scores, bounds, result), strict=True):
        choices.append((celebrities[j] if j >= 0 else None, why))
        if j >= 0:
            counts[celebrities[j]] = counts.get(celebrities[j], 0) + 1
    return choices


def campaign_fills(db: Database, campaign_id: int) -> dict[str, int]:
    """Pairings promised per celebrity of a campaign, for reports."""
    with db.read() as session:
        return fills(session, campaign_id)
