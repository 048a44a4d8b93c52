"""Shared results: a pairing's outcome a shopper can reopen or share at a random URL.

A :class:`SharedResult` holds the celebrity, the facets the reasons came from
and the runners-up: never the shopper's text or reference.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete

from .database import Database
from .schema import SharedResultRow, as_utc


@dataclass(frozen=True)
class SharedResult:
    """A result at a random URL: the celebrity and how they were chosen, no shopper text."""

    token: str
    campaign_id: int
    celebrity_id: str
    #: The facets the reasons came from, best first.
    facets: tuple[str, ...]
    #: The fit figure, 0-100, of the celebrity among the roster.
    percent: int
    #: Runners-up as (celebrity id, percent), best first.
    others: tuple[tuple[str, int], ...]
    #: Why the pairing went here under the campaign's limits: best, full or balanced.
    assignment: str
    #: The closest celebrity when the limits chose another.
    first_choice: str | None
    created_at: datetime


def new_share_token() -> str:
    """An unguessable token: 128 random bits."""
    return secrets.token_urlsafe(16)


def create_share(
    db: Database,
    campaign_id: int,
    celebrity_id: str,
    *,
    facets: list[str],
    percent: int,
    others: list[tuple[str, int]],
    assignment: str = "best",
    first_choice: str | None = None,
) -> SharedResult:
    """Store a result to reopen and share; it holds ids and figures, never the shopper's words."""
    details = {
        "facets": list(facets),
        "percent": int(percent),
        "others": [[cid, int(p)] for cid, p in others],
        "assignment": assignment,
        "first_choice": first_choice,
    }
    token = new_share_token()
    with db.write() as session:
        row = SharedResultRow(
            token=token, campaign_id=campaign_id, celebrity_id=celebrity_id, details=details
        )
        session.add(row)
        session.flush()
        created = as_utc(row.created_at)
    return _shared(token, campaign_id, celebrity_id, details, created)


def find_share(db: Database, campaign_id: int, token: str) -> SharedResult | None:
    """The campaign's shared result ``token``, or ``None`` (a token of another campaign too)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", token or ""):
        return None
    with db.read() as session:
        row = session.get(SharedResultRow, token)
        if row is None or row.campaign_id != campaign_id:
            return None
        return _shared(
            row.token, row.campaign_id, row.celebrity_id, row.details, as_utc(row.created_at)
        )


def _shared(
    token: str, campaign_id: int, celebrity_id: str, details: dict[str, Any], created: datetime
) -> SharedResult:
    return SharedResult(
        token=token,
        campaign_id=campaign_id,
        celebrity_id=celebrity_id,
        facets=tuple(details.get("facets") or ()),
        percent=int(details.get("percent") or 0),
        others=tuple((str(c), int(p)) for c, p in details.get("others") or ()),
        assignment=str(details.get("assignment") or "best"),
        first_choice=details.get("first_choice"),
        created_at=created,
    )


def purge_shares(db: Database, campaign_id: int, cutoff: datetime) -> int:
    """Delete a campaign's shared results made before ``cutoff``: their links stop working.

    They hold no shopper data, but a link outliving the pairing it shows would
    outlive what the campaign promised to keep.
    """
    with db.write() as session:
        result = session.execute(
            delete(SharedResultRow).where(
                (SharedResultRow.campaign_id == campaign_id)
                & (SharedResultRow.created_at < as_utc(cutoff))
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)
