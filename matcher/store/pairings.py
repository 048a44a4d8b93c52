"""Storing pairings: one transaction each, within the campaign's limits, once per request key.

A pairing is stored before its answer is sent (the write is committed with
``synchronous=FULL`` on SQLite), so an answered shopper is never missing from
the database. A batch is one transaction: stored whole or not at all.

The shopper's text is stored only when they consented *and* the campaign
keeps text; otherwise only the pairing is.

A pairing may carry the client's request key (an ``Idempotency-Key``, or the
form's per-page key): a request stored once under a key is never stored
again. A retry finds the first pairing instead (:class:`Earlier`), also when
two workers store the same retry at once: the database's unique index on
``(campaign_id, request_key)`` lets one of them in, and the other then reads
what it stored.
"""

from __future__ import annotations

import hashlib
import secrets
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..capacity import Limits
from .campaigns import Campaign
from .database import Database
from .fills import add_fill, assign_batch, fills, lock_campaign, reserve
from .schema import BatchRow, PairingRow, utcnow

if TYPE_CHECKING:
    from ..index import ProfileIndex
    from ..matching import Match

#: Where a pairing came from.
SOURCES = ("form", "embed", "api", "upload")
#: Rows per INSERT statement within a batch's single transaction.
CHUNK = 1000
REF_PREFIX = "s-"


_versions: weakref.WeakKeyDictionary[ProfileIndex, str] = weakref.WeakKeyDictionary()


def index_version(index: ProfileIndex) -> str:
    """A short fingerprint of what the index holds (model and vectors), computed once per index."""
    version = _versions.get(index)
    if version is None:
        digest = hashlib.sha256(index.model_id.encode("utf-8"))
        digest.update(index.vectors.tobytes())
        version = _versions[index] = digest.hexdigest()[:16]
    return version


def new_shopper_ref() -> str:
    """A reference for a shopper the microsite did not name; shown to them for privacy requests."""
    return REF_PREFIX + secrets.token_urlsafe(12)


@dataclass(frozen=True)
class NewPairing:
    """One answered shopper: their best match, their text and whether they consented."""

    match: Match
    text: str
    consented: bool
    shopper_ref: str | None = None
    #: The client's key for the request that made this pairing; stored once per key.
    request_key: str | None = None
    #: Every celebrity by fit, best first: under the campaign's quotas and shares
    #: the pairing may go to another than ``match`` (``record_pairings(limits=...)``).
    ranking: tuple[Match, ...] = ()


@dataclass(frozen=True)
class Assigned:
    """Who a shopper was paired with under the limits: ``None`` when no place was left.

    ``why`` is ``best`` (their best fit), ``full`` (the better fits had no
    room) or ``balanced`` (a close fit, chosen to keep the promised shares).
    """

    celebrity_id: str | None
    why: str
    match: Match | None


@dataclass(frozen=True)
class Earlier:
    """A pairing stored before under a request key: what a retry of that request gets back."""

    request_key: str
    shopper_ref: str
    celebrity_id: str
    score: float
    index_version: str
    batch_id: int | None
    text_kept: bool
    #: Why ``celebrity_id`` was chosen under the limits, when there were any.
    assignment: str | None = None
    #: The best fit, when the limits paired the shopper with another celebrity.
    first_choice: str | None = None


@dataclass(frozen=True)
class Stored:
    """What was stored: the batch (if any), the shoppers' references in order, the text kept.

    ``replayed`` means nothing new was stored: every request key given had been
    stored before, and ``earlier`` holds those pairings by key (``refs`` are
    theirs, in the order the keys were given).
    """

    batch_id: int | None
    refs: list[str]
    texts_kept: int
    replayed: bool = False
    earlier: dict[str, Earlier] | None = None
    #: Per pairing given, in order, who it went to (under the limits, when there are any).
    assigned: list[Assigned] | None = None

    @property
    def count(self) -> int:
        """Pairings stored: a shopper no place was left for is not stored."""
        unplaced = sum(a.celebrity_id is None for a in self.assigned or ())
        return len(self.refs) - unplaced


def find_requests(db: Database, campaign: Campaign, keys: Sequence[str]) -> dict[str, Earlier]:
    """The campaign's pairings stored under any of ``keys``, by key."""
    found: dict[str, Earlier] = {}
    with db.read() as session:
        for start in range(0, len(keys), CHUNK):
            query = select(PairingRow).where(
                PairingRow.campaign_id == campaign.id,
                PairingRow.request_key.in_(list(keys[start : start + CHUNK])),
            )
            for row in session.scalars(query):
                assert row.request_key is not None
                found[row.request_key] = Earlier(
                    request_key=row.request_key,
                    shopper_ref=row.shopper_ref,
                    celebrity_id=row.celebrity_id,
                    score=row.score,
                    index_version=row.index_version,
                    batch_id=row.batch_id,
                    text_kept=row.shopper_text is not None,
                    assignment=row.assignment,
                    first_choice=row.first_choice,
                )
    return found


def _replay(found: dict[str, Earlier], keys: Sequence[str]) -> Stored:
    earlier = [found[key] for key in keys if key in found]
    return Stored(
        batch_id=earlier[0].batch_id,
        refs=[e.shopper_ref for e in earlier],
        texts_kept=sum(e.text_kept for e in earlier),
        replayed=True,
        earlier=found,
    )


def record_pairings(
    db: Database,
    campaign: Campaign,
    items: Iterable[NewPairing],
    *,
    model_id: str,
    index_version: str,
    source: str,
    batch: bool = False,
    filename: str | None = None,
    limits: Mapping[str, Limits] | None = None,
) -> Stored:
    """Store pairings in one transaction (all of them, or none when anything fails).

    With ``limits`` (the roster's quotas and shares), each pairing goes to the
    celebrity the limits allow, chosen from its ``ranking`` while the
    campaign's fills are locked (``fills.py``): one shopper at a time by the
    price rule, or, for a list stored as a batch, all at once by the exact
    assignment over the room left. A shopper no place is left for is not stored.

    When ``items`` is a list whose pairings carry request keys, a request
    already stored under any of those keys is not stored again: the answer is
    what was stored then (``Stored.replayed``). A stream of pairings (an
    upload) is stored as it comes.

    Args:
        batch: also store a batch record, so the pairings can be told apart as one upload.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown pairing source {source!r}")
    if isinstance(items, Sequence) and any(item.request_key for item in items):
        keys = [item.request_key for item in items if item.request_key]
        for attempt in range(2):
            found = find_requests(db, campaign, keys)
            if found:
                return _replay(found, keys)
            try:
                return _insert(
                    db, campaign, items, model_id, index_version, source, batch, filename, limits
                )
            except IntegrityError:
                # The same request, stored by another worker since we looked: read
                # it. A second failure is something else, and is raised.
                if attempt:
                    raise
    return _insert(db, campaign, items, model_id, index_version, source, batch, filename, limits)


def _insert(
    db: Database,
    campaign: Campaign,
    items: Iterable[NewPairing],
    model_id: str,
    index_version: str,
    source: str,
    batch: bool,
    filename: str | None,
    limits: Mapping[str, Limits] | None = None,
) -> Stored:
    refs: list[str] = []
    kept = 0
    placed: list[Assigned] = []
    with db.write() as session:
        rows: Iterable[_Row] = (
            _placed(session, campaign, items, limits, batch, placed)
            if limits
            else _unlimited(items, placed)
        )
        batch_id: int | None = None
        if batch:
            row = BatchRow(campaign_id=campaign.id, source=source, filename=filename, pairings=0)
            session.add(row)
            session.flush()
            batch_id = row.id
        now = utcnow()
        chunk: list[dict[str, Any]] = []
        for item in rows:
            ref = item.shopper_ref or new_shopper_ref()
            refs.append(ref)
            if item.match is None:
                continue  # no place left for this shopper: answered, not stored
            keep = item.consented and campaign.store_text
            kept += keep
            chunk.append(
                {
                    "campaign_id": campaign.id,
                    "shopper_ref": ref,
                    "celebrity_id": item.match.celebrity_id,
                    "score": item.match.score,
                    "margin": item.match.margin,
                    "reasons": [
                        {"facet": r.facet, "score": round(r.score, 4), "quote": r.quote}
                        for r in item.match.reasons
                    ],
                    "model_id": model_id,
                    "index_version": index_version,
                    "source": source,
                    "batch_id": batch_id,
                    "created_at": now,
                    "consent_version": campaign.consent_version if item.consented else None,
                    "shopper_text": item.text if keep else None,
                    "request_key": item.request_key,
                    "first_choice": item.first_choice,
                    "assignment": item.assignment,
                }
            )
            if len(chunk) >= CHUNK:
                session.execute(insert(PairingRow), chunk)
                chunk = []
        if chunk:
            session.execute(insert(PairingRow), chunk)
        if batch_id is not None:
            session.get_one(BatchRow, batch_id).pairings = len(refs) - sum(
                a.celebrity_id is None for a in placed
            )
    return Stored(batch_id, refs, kept, assigned=placed)


@dataclass(frozen=True)
class _Row:
    """A pairing as it is inserted: the match it went to, and why, under the limits."""

    match: Match | None
    text: str
    consented: bool
    shopper_ref: str | None
    request_key: str | None
    first_choice: str | None = None
    assignment: str | None = None


class Replayable(Iterable["NewPairing"]):
    """Pairings that can be read more than once (a spool on disk).

    A stored batch of them is assigned exactly: read once for every shopper's
    fits, solved, then read again to store (``record_pairings(limits=...)``).
    """

    def __init__(self, read: Callable[[], Iterator[NewPairing]]) -> None:
        self._read = read

    def __iter__(self) -> Iterator[NewPairing]:
        return self._read()


def _unlimited(items: Iterable[NewPairing], placed: list[Assigned]) -> Iterator[_Row]:
    """Without limits every pairing is the shopper's best fit."""
    for item in items:
        placed.append(Assigned(item.match.celebrity_id, "best", item.match))
        yield _Row(item.match, item.text, item.consented, item.shopper_ref, item.request_key)


def _placed(
    session: Session,
    campaign: Campaign,
    items: Iterable[NewPairing],
    limits: Mapping[str, Limits],
    batch: bool,
    placed: list[Assigned],
) -> Iterator[_Row]:
    """The items as rows, each sent to the celebrity the limits allow (:func:`record_pairings`)."""
    lock_campaign(session, campaign.id)
    counts = fills(session, campaign.id)
    readable_twice = isinstance(items, Sequence | Replayable)
    first = next(iter(items), None) if readable_twice else None
    if batch and first is not None and not (isinstance(items, Sequence) and len(items) < 2):
        ranking = first.ranking or (first.match,)
        celebrities = sorted({m.celebrity_id for m in ranking} | set(limits))
        choices = assign_batch(items, celebrities, limits, counts)
        for celebrity in {c for c, _ in choices if c is not None}:
            add_fill(session, campaign.id, celebrity, sum(1 for c, _ in choices if c == celebrity))
    else:
        choices = None
    for position, item in enumerate(items):
        ranking = item.ranking or (item.match,)
        if choices is not None:
            chosen, why = choices[position]
            index = next((i for i, m in enumerate(ranking) if m.celebrity_id == chosen), -1)
        else:
            choice = reserve(
                session, campaign.id, [(m.celebrity_id, m.score) for m in ranking], limits, counts
            )
            index, why = choice.index, choice.why
        match = ranking[index] if index >= 0 else None
        placed.append(Assigned(match.celebrity_id if match else None, why, match))
        yield _Row(
            match,
            item.text,
            item.consented,
            item.shopper_ref,
            item.request_key,
            first_choice=ranking[0].celebrity_id if match and index > 0 else None,
            assignment=why,
        )
