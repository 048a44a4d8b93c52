"""Published rosters: every version of a campaign's profiles and corrections, in the database.

A campaign serves the highest-numbered version of its roster. Publishing is
one transaction that adds a version, so every worker of every machine on the
database sees the same roster: a worker polls :func:`published_stamp` (one
indexed row) every few seconds and reloads when the number or the content
hash changed. The index is derived data, built by each machine from the
version it serves and cached under the content hash (``web/roster.py``).

Corrections are part of the version, not a table beside it. Filing one
publishes a new version (same profiles, one more correction), so a version
number says exactly what a shopper was matched against, the content hash
covers everything the index embeds, and history shows when each correction
came in. Corrections can quote a shopper: :class:`RosterCopies` is the
privacy copy that erases them from every stored version and expires them
with the campaign's retention (recomputing the hash, so servers reload).

A draft (:func:`save_draft`) is the roster a planner is editing: in the
database too, so a planner's next request may land on another machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..capacity import InfeasibleLimits, check_limits, limits_of
from ..errors import InputError, Problem, ProfileError
from ..feedback import Correction, correction_expired, holds_any
from ..profiles import Profile, Roster, load_profiles
from .database import Database
from .schema import CampaignRow, RosterDraftRow, RosterVersionRow, as_utc, utcnow

log = logging.getLogger(__name__)

#: Who published a version imported from a roster folder.
IMPORT_AUTHOR = "import"
#: How many times publishing retries when another publisher took the number first.
PUBLISH_ATTEMPTS = 5


@dataclass(frozen=True)
class RosterVersion:
    """One published version of a campaign's roster."""

    campaign_id: int
    number: int
    content_hash: str
    profiles: tuple[Profile, ...]
    corrections: tuple[Correction, ...]
    author: str
    note: str
    published_at: datetime
    #: ``added``, ``edited``, ``deactivated``, ``activated``, ``removed`` (celebrity ids),
    #: ``corrections_added`` and ``corrections_removed`` (counts), against the version before.
    changes: dict[str, Any] = field(default_factory=dict)

    def roster(self, folder: str | Path = ".") -> Roster:
        """The version as a :class:`~matcher.profiles.Roster` (``folder`` is only a label)."""
        return Roster(Path(folder), self.profiles, self.corrections)

    @property
    def active_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.profiles if p.active)


def profile_record(profile: Profile) -> dict[str, Any]:
    """A profile as stored: what the planner set, nothing that is only a default."""
    return profile.model_dump(mode="json", exclude_defaults=True)


def content_hash(profiles: Sequence[Profile], corrections: Sequence[Correction]) -> str:
    """The digest of everything a version serves, in order: it names the version's index."""
    payload = json.dumps(
        {
            "profiles": [profile_record(p) for p in profiles],
            "corrections": [asdict(c) for c in corrections],
        },
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def check_roster(
    profiles: Iterable[Profile | Mapping[str, Any]],
    corrections: Iterable[Correction | Mapping[str, Any]] = (),
    *,
    source: str = "roster",
) -> tuple[tuple[Profile, ...], tuple[Correction, ...]]:
    """Validate a whole roster as ``matcher profiles check`` does a folder.

    Profiles given as mappings are validated by the same model as profile
    files; then ids must be unique, one profile at least active, the limits
    feasible, and each correction must name a celebrity of the roster.

    Raises:
        ProfileError: every problem found, each naming the profile (or
            ``source``) and the field.
    """
    problems: list[Problem] = []
    checked: list[Profile] = []
    seen: set[str] = set()
    for position, item in enumerate(profiles, start=1):
        label = item.id if isinstance(item, Profile) else f"profile {position}"
        if not isinstance(item, Profile):
            try:
                item = Profile.model_validate(dict(item))
            except ValidationError as exc:
                problems.extend(
                    Problem(label, ".".join(str(p) for p in error["loc"]), error["msg"])
                    for error in exc.errors()
                )
                continue
            label = item.id
        if item.id in seen:
            problems.append(Problem(label, "id", "the same id as another profile"))
            continue
        seen.add(item.id)
        checked.append(item)
    fixed: list[Correction] = []
    for number, correction in enumerate(corrections, start=1):
        if not isinstance(correction, Correction):
            values = dict(correction)
            correction = Correction(
                str(values.get("text", "")),
                str(values.get("right", "")),
                values.get("wrong") or None,
                str(values.get("created", "")),
            )
        if correction.right not in seen:
            problems.append(
                Problem("corrections", "right", "is not the id of a profile in this roster", number)
            )
            continue
        if not correction.text.strip():
            problems.append(Problem("corrections", "text", "is empty", number))
            continue
        fixed.append(correction)
    if problems:
        raise ProfileError(problems)
    if not checked:
        raise ProfileError([Problem(source, "", "no profiles")])
    active = [p for p in checked if p.active]
    if not active:
        raise ProfileError([Problem(source, "active", "no profile is active")])
    limits = limits_of(active)
    try:
        check_limits(limits, complete=len(limits) == len(active))
    except InfeasibleLimits as exc:
        raise ProfileError([Problem(source, "quota, min_share, max_share", str(exc))]) from None
    return tuple(checked), tuple(fixed)


def _version(row: RosterVersionRow) -> RosterVersion:
    return RosterVersion(
        campaign_id=row.campaign_id,
        number=row.number,
        content_hash=row.content_hash,
        profiles=tuple(Profile.model_validate(p) for p in row.profiles),
        corrections=tuple(Correction(**c) for c in row.corrections),
        author=row.author,
        note=row.note,
        published_at=as_utc(row.published_at),
        changes=dict(row.changes or {}),
    )


def changes_between(
    before: RosterVersion | None,
    profiles: Sequence[Profile],
    corrections: Sequence[Correction],
) -> dict[str, Any]:
    """What a new version changes against ``before``: celebrity ids and counts, never text."""
    old = {p.id: p for p in before.profiles} if before else {}
    new = {p.id: p for p in profiles}
    old_corrections = set(before.corrections) if before else set()
    new_corrections = set(corrections)
    return {
        "added": [i for i in new if i not in old],
        "removed": [i for i in old if i not in new],
        "edited": [
            i
            for i in new
            if i in old
            and profile_record(new[i]) != profile_record(old[i])
            and old[i].active == new[i].active
        ],
        "deactivated": [i for i in new if i in old and old[i].active and not new[i].active],
        "activated": [i for i in new if i in old and not old[i].active and new[i].active],
        "corrections_added": len(new_corrections - old_corrections),
        "corrections_removed": len(old_corrections - new_corrections),
    }


def publish(
    db: Database,
    campaign_id: int,
    profiles: Iterable[Profile | Mapping[str, Any]],
    *,
    corrections: Iterable[Correction | Mapping[str, Any]] | None = None,
    author: str,
    note: str = "",
) -> RosterVersion:
    """Make ``profiles`` the campaign's roster: a new version, served from now on.

    Args:
        profiles: the whole roster, in order (profiles or their fields as mappings).
        corrections: the version's corrections; ``None`` keeps the current
            version's corrections of celebrities still in the roster.
        author: who published (a planner's account, ``import``...).
        note: why, for the history.

    Returns:
        The new version.

    Raises:
        ProfileError: the roster is not valid (:func:`check_roster`).
        InputError: there is no such campaign.
    """
    checked, given = check_roster(profiles, corrections or ())
    for attempt in range(PUBLISH_ATTEMPTS):
        try:
            with db.write() as session:
                campaign = session.scalars(
                    select(CampaignRow).where(CampaignRow.id == campaign_id).with_for_update()
                ).first()
                if campaign is None:
                    raise InputError(f"there is no campaign with id {campaign_id}")
                previous_row = session.scalars(
                    select(RosterVersionRow)
                    .where(RosterVersionRow.campaign_id == campaign_id)
                    .order_by(RosterVersionRow.number.desc())
                    .limit(1)
                ).first()
                previous = _version(previous_row) if previous_row is not None else None
                if corrections is None:
                    ids = {p.id for p in checked}
                    kept = (
                        tuple(c for c in previous.corrections if c.right in ids) if previous else ()
                    )
                else:
                    kept = given
                row = RosterVersionRow(
                    campaign_id=campaign_id,
                    number=(previous.number if previous else 0) + 1,
                    content_hash=content_hash(checked, kept),
                    profiles=[profile_record(p) for p in checked],
                    corrections=[asdict(c) for c in kept],
                    changes=changes_between(previous, checked, kept),
                    author=author[:200],
                    note=note[:4000],
                    published_at=utcnow(),
                )
                session.add(row)
                session.flush()
                version = _version(row)
            log.info(
                "campaign %s: roster version %d published by %s",
                campaign_id,
                version.number,
                version.author,
            )
            return version
        except IntegrityError:
            # Another publisher took the number between our read and write.
            if attempt + 1 == PUBLISH_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def published(db: Database, campaign_id: int) -> RosterVersion | None:
    """The version the campaign serves (its highest), or ``None`` before the first publish."""
    with db.read() as session:
        row = session.scalars(
            select(RosterVersionRow)
            .where(RosterVersionRow.campaign_id == campaign_id)
            .order_by(RosterVersionRow.number.desc())
            .limit(1)
        ).first()
        return _version(row) if row is not None else None


def published_stamp(db: Database, campaign_id: int) -> tuple[int, str] | None:
    """The served version's number and content hash: the cheap question a worker polls."""
    with db.read() as session:
        found = session.execute(
            select(RosterVersionRow.number, RosterVersionRow.content_hash)
            .where(RosterVersionRow.campaign_id == campaign_id)
            .order_by(RosterVersionRow.number.desc())
            .limit(1)
        ).first()
        return (int(found[0]), str(found[1])) if found is not None else None


def history(db: Database, campaign_id: int) -> list[RosterVersion]:
    """Every published version of the campaign, newest first."""
    with db.read() as session:
        rows = session.scalars(
            select(RosterVersionRow)
            .where(RosterVersionRow.campaign_id == campaign_id)
            .order_by(RosterVersionRow.number.desc())
        ).all()
        return [_version(row) for row in rows]


def version(db: Database, campaign_id: int, number: int) -> RosterVersion | None:
    """Version ``number`` of the campaign's roster, or ``None``."""
    with db.read() as session:
        row = session.scalars(
            select(RosterVersionRow).where(
                (RosterVersionRow.campaign_id == campaign_id) & (RosterVersionRow.number == number)
            )
        ).first()
        return _version(row) if row is not None else None


def import_folder(
    db: Database,
    campaign_id: int,
    folder: str | Path,
    *,
    author: str = IMPORT_AUTHOR,
    note: str | None = None,
    within: str | Path | None = None,
    only_if_none: bool = False,
) -> RosterVersion | None:
    """Publish a roster folder (profiles and ``corrections.jsonl``) as the campaign's roster.

    Nothing is published when the folder holds exactly what the campaign
    serves, or with ``only_if_none`` when the campaign has a version already
    (several workers starting together import once).

    Returns:
        The new version, or ``None`` when nothing was published.

    Raises:
        ProfileError: the folder does not load (``matcher profiles check``'s problems).
    """
    current = published_stamp(db, campaign_id)
    if only_if_none and current is not None:
        return None
    roster = load_profiles(folder, within=within)
    digest = content_hash(roster.profiles, roster.corrections)
    if current is not None and current[1] == digest:
        return None
    if only_if_none:
        # Take the number 1 or nothing: another worker importing the same folder meanwhile wins.
        try:
            with db.write() as session:
                row = RosterVersionRow(
                    campaign_id=campaign_id,
                    number=1,
                    content_hash=digest,
                    profiles=[profile_record(p) for p in roster.profiles],
                    corrections=[asdict(c) for c in roster.corrections],
                    changes=changes_between(None, roster.profiles, roster.corrections),
                    author=author,
                    note=note if note is not None else f"imported from {Path(folder).name}/",
                    published_at=utcnow(),
                )
                session.add(row)
                session.flush()
                return _version(row)
        except IntegrityError:
            return None
    return publish(
        db,
        campaign_id,
        roster.profiles,
        corrections=roster.corrections,
        author=author,
        note=note if note is not None else f"imported from {Path(folder).name}/",
    )


# -- drafts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    """A roster being edited: profiles as mappings, valid one by one, not yet published."""

    campaign_id: int
    profiles: tuple[Profile, ...]
    base_number: int | None
    author: str
    updated_at: datetime


def draft(db: Database, campaign_id: int) -> Draft | None:
    """The campaign's draft, or ``None`` when nobody is editing its roster."""
    with db.read() as session:
        row = session.get(RosterDraftRow, campaign_id)
        if row is None:
            return None
        return Draft(
            campaign_id,
            tuple(Profile.model_validate(p) for p in row.profiles),
            row.base_number,
            row.author,
            as_utc(row.updated_at),
        )


def save_draft(
    db: Database,
    campaign_id: int,
    profiles: Sequence[Profile],
    *,
    author: str,
    base_number: int | None,
) -> Draft:
    """Keep ``profiles`` as the campaign's draft (replacing any earlier one)."""
    records = [profile_record(p) for p in profiles]
    with db.write() as session:
        row = session.get(RosterDraftRow, campaign_id)
        if row is None:
            row = RosterDraftRow(campaign_id=campaign_id)
            session.add(row)
        row.profiles = records
        row.base_number = base_number
        row.author = author[:200]
        row.updated_at = utcnow()
        session.flush()
        return Draft(campaign_id, tuple(profiles), base_number, row.author, as_utc(row.updated_at))


def discard_draft(db: Database, campaign_id: int) -> None:
    with db.write() as session:
        session.execute(delete(RosterDraftRow).where(RosterDraftRow.campaign_id == campaign_id))


def publish_draft(db: Database, campaign_id: int, *, author: str, note: str = "") -> RosterVersion:
    """Publish the campaign's draft (keeping the served corrections) and discard it.

    Raises:
        InputError: there is no draft.
        ProfileError: the draft, as a whole, is not a valid roster.
    """
    current = draft(db, campaign_id)
    if current is None:
        raise InputError("there is no draft to publish")
    published_version = publish(db, campaign_id, current.profiles, author=author, note=note)
    with db.write() as session:
        row = session.get(RosterDraftRow, campaign_id)
        # A draft saved again after this publish began is a newer edit: it stays.
        if row is not None and as_utc(row.updated_at) == current.updated_at:
            session.delete(row)
    return published_version


# -- privacy ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RosterCopies:
    """The corrections kept in every published roster version, as a privacy copy.

    Erasing rewrites each version holding the shopper's text (its content hash
    too, so every server reloads the served one); expiring removes the
    corrections older than the campaign's retention from every version.
    """

    db: Database
    name: str = "published rosters"

    def erase(self, shopper_ref: str, texts: Sequence[str]) -> int:
        needles = [t.strip() for t in texts if t and t.strip()]
        if not needles:
            return 0
        return self._rewrite(lambda _days, c: holds_any(c.text, needles))

    def expire(self, now: datetime) -> int:
        return self._rewrite(
            lambda days, c: correction_expired(c.created, as_utc(now) - timedelta(days=days))
        )

    def _rewrite(self, drop: Any) -> int:
        removed = 0
        with self.db.write() as session:
            rows = session.execute(
                select(RosterVersionRow, CampaignRow.retention_days).join(
                    CampaignRow, CampaignRow.id == RosterVersionRow.campaign_id
                )
            ).all()
            for row, days in rows:
                corrections = [Correction(**c) for c in row.corrections]
                kept = [c for c in corrections if not drop(days, c)]
                if len(kept) == len(corrections):
                    continue
                removed += len(corrections) - len(kept)
                profiles = tuple(Profile.model_validate(p) for p in row.profiles)
                row.corrections = [asdict(c) for c in kept]
                row.content_hash = content_hash(profiles, kept)
        return removed
