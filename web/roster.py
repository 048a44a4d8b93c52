"""Serve every campaign from its published roster, and keep every worker of every machine on it.

The roster a campaign serves is the newest version published in the database
(:mod:`matcher.store.rosters`). Each worker holds a matcher per campaign and
the (number, content hash) of the version it was built from. At most every
:data:`CHECK_INTERVAL` seconds a request asks the database for the served
version's stamp (one indexed row); when it changed (a planner published on
this machine or another, or a privacy request rewrote its corrections) the
worker loads the new version and swaps its matcher. Requests already running
keep the matcher they began with.

The index is derived data. Each machine builds it from the version and keeps
it under the instance folder in ``roster-index/<content hash>-<model>/``: a
worker finding that folder reads it (no embedding); otherwise it embeds what
the matcher it serves does not already hold (only edited profiles and new
corrections), writes the index into a temporary folder and renames it into
place, so a half-built index is never read. Two workers building the same
version at once both finish and one rename wins. A machine that starts later
reads the same version from the database, so it serves the same roster.

Before a campaign's first publish its roster folder (``profiles_dir``) is
imported as version 1: the default campaign's on start, another campaign's
on first use.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask

from matcher.encoders import Encoder
from matcher.errors import IndexStateError, MatcherError, ProfileError
from matcher.files import locked
from matcher.index import (
    ProfileIndex,
    StoredIndex,
    build_index,
    profile_hash,
    read_index,
    save_index,
)
from matcher.matching import Matcher
from matcher.store import DEFAULT_SLUG, Campaign, Database
from matcher.store.rosters import RosterVersion, import_folder, published, published_stamp

log = logging.getLogger(__name__)

#: Held while a worker loads a roster, so two loads in one worker never overlap.
REFRESH_LOCK_KEY = "matcher.planner_refresh_lock"
#: This worker's served versions, by campaign slug.
SERVED_KEY = "matcher.served_rosters"
#: Ask the database for the published version at most this often (seconds).
CHECK_INTERVAL = 2.0
#: The folder of built indexes, under the instance folder.
INDEX_CACHE = "roster-index"
#: A cached index not served for this long (seconds) is deleted: it may hold the
#: vectors of a correction a privacy request removed.
CACHE_KEEP = 600.0

Stamp = tuple[int, str]


@dataclass
class Served:
    """What one worker serves for one campaign: the version's stamp and its matcher."""

    stamp: Stamp | None
    matcher: Matcher
    #: The roster folder the campaign named when this was loaded (``profiles_dir``).
    folder: str | None = None
    checked: float = field(default_factory=time.monotonic)

    def due(self) -> bool:
        return time.monotonic() - self.checked >= CHECK_INTERVAL


def served(app: Flask) -> dict[str, Served]:
    found: dict[str, Served] = app.extensions.setdefault(SERVED_KEY, {})
    return found


def refresh_lock(app: Flask) -> threading.Lock:
    lock: threading.Lock = app.extensions.setdefault(REFRESH_LOCK_KEY, threading.Lock())
    return lock


# -- the index of a version -------------------------------------------------------------


def cache_root(app: Flask) -> Path:
    return Path(app.instance_path) / INDEX_CACHE


def cache_name(content_hash: str, model_id: str) -> str:
    """The folder name of a version's index: its content hash and the model's digest."""
    model = hashlib.sha256(model_id.encode("utf-8")).hexdigest()[:12]
    return f"{content_hash[:32]}-{model}"


def held_vectors(index: ProfileIndex | None) -> dict[str, tuple[str, object]]:
    """The vectors a served index holds, keyed as :func:`~matcher.index.build_index` reuses them."""
    if index is None:
        return {}
    held: dict[str, tuple[str, object]] = {}
    for position, profile in enumerate(index.profiles):
        start, count = int(index.starts[position]), int(index.counts[position])
        digest = profile_hash(profile, index.extra_examples.get(profile.id, ()))
        held[profile.id] = (digest, index.vectors[start : start + count])
    return held


def version_index(
    version: RosterVersion, encoder: Encoder, root: Path, held: ProfileIndex | None = None
) -> ProfileIndex:
    """The index of ``version``: read from its cache folder, or built and cached.

    Args:
        held: an index this worker already serves; its vectors of unchanged
            profiles are reused, so only what changed is embedded.
    """
    roster = version.roster(root)
    folder = root / cache_name(version.content_hash, encoder.model_id)
    root.mkdir(parents=True, exist_ok=True)
    # The workers of one machine take turns: the second reads what the first built.
    with locked(root / f".{folder.name}.lock"):
        stored = _readable(folder, encoder)
        if stored is not None:
            index, report = build_index(roster, encoder, stored.by_profile)
            if not report.embedded:
                _touch(folder)
                return index
            log.warning("index cache %s did not hold the whole roster: rebuilt", folder.name)
        index, _ = build_index(roster, encoder, held_vectors(held))  # type: ignore[arg-type]
        building = root / f".building-{folder.name}-{os.getpid()}-{secrets.token_hex(4)}"
        save_index(index, building)
        try:
            if folder.is_dir():
                # Unusable (checked above): moved aside first, a rename cannot replace a folder.
                aside = root / f".stale-{folder.name}-{secrets.token_hex(4)}"
                os.rename(folder, aside)
                shutil.rmtree(aside, ignore_errors=True)
            os.rename(building, folder)
        except OSError:
            # Another machine sharing the folder renamed its build into place first.
            shutil.rmtree(building, ignore_errors=True)
    _sweep(root, keep=folder.name)
    return index


def _readable(folder: Path, encoder: Encoder) -> StoredIndex | None:
    """The cached index in ``folder``, or ``None`` when there is none or it is unusable."""
    if not folder.is_dir():
        return None
    try:
        return read_index(folder, encoder)
    except IndexStateError as exc:
        log.warning("index cache %s is unusable (%s): rebuilt", folder.name, exc)
        return None


def _touch(folder: Path) -> None:
    try:
        os.utime(folder)
    except OSError:
        pass


def _sweep(root: Path, keep: str) -> None:
    """Delete cached indexes (and abandoned builds) not used for :data:`CACHE_KEEP` seconds."""
    cutoff = time.time() - CACHE_KEEP
    for entry in root.iterdir():
        if entry.name in (keep, f".{keep}.lock"):
            continue
        try:
            if entry.stat().st_mtime >= cutoff:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.endswith(".lock"):
                entry.unlink(missing_ok=True)
        except OSError:
            continue


def with_index(base: Matcher, index: ProfileIndex) -> Matcher:
    """A matcher like ``base`` (its encoder and settings) over another index."""
    return Matcher(
        base.encoder,
        index,
        scoring=base.scoring,
        example_weight=base.example_weight,
        profile_weight=base.profile_weight,
        correction_threshold=base.correction_threshold,
        confidence=base.confidence,
        reasons=base.reasons,
        max_chars=base.max_chars,
    )


def version_matcher(app: Flask, version: RosterVersion, base: Matcher) -> Matcher:
    """A matcher serving ``version``, with ``base``'s encoder and settings."""
    return with_index(base, version_index(version, base.encoder, cache_root(app), base.index))


# -- what a worker serves ---------------------------------------------------------------


def load_served(
    app: Flask,
    db: Database,
    campaign: Campaign,
    base: Matcher,
    *,
    folder: str | Path | None = None,
    within: str | Path | None = None,
) -> Served:
    """Load the campaign's published roster (importing ``folder`` first if none is).

    Raises:
        MatcherError: nothing is published and the folder does not load, or
            the version cannot be indexed.
    """
    version = published(db, campaign.id)
    if version is None:
        if folder is None:
            raise MatcherError(f"campaign {campaign.slug} has no published roster")
        import_folder(db, campaign.id, folder, within=within, only_if_none=True)
        version = published(db, campaign.id)
        assert version is not None, "a version was just imported"
    matcher = version_matcher(app, version, base)
    return Served((version.number, version.content_hash), matcher, campaign.profiles_dir)


def initial_matcher(app: Flask, db: Database, campaign: Campaign) -> Matcher:
    """The matcher a server starts with, before :func:`start_serving` brings it to the
    published version: loaded from ``MATCHER_PROFILES`` (reusing the index kept there, so
    an unchanged roster embeds nothing). A folder that no longer loads does not stop a
    server whose campaign has a published version: the encoder is loaded alone.

    Raises:
        MatcherError: the folder does not load and nothing is published, or the model.
    """
    from matcher.encoders import load_encoder
    from matcher.matching import MODELS_DIR, default_index_dir, load_matcher

    folder = app.config["MATCHER_PROFILES"]
    index_dir = app.config["MATCHER_INDEX_DIR"]
    try:
        matcher, _ = load_matcher(folder, model=app.config["MATCHER_MODEL"], index_dir=index_dir)
        return matcher
    except ProfileError as exc:
        version = published(db, campaign.id)
        if version is None:
            raise
        log.warning("the roster folder does not load; serving the published roster: %s", exc)
    cache = Path(index_dir) if index_dir else default_index_dir(folder)
    encoder = load_encoder(app.config["MATCHER_MODEL"], cache_dir=cache / MODELS_DIR)
    return Matcher(encoder, version_index(version, encoder, cache_root(app)))


def start_serving(
    app: Flask, db: Database, campaign: Campaign, matcher: Matcher, *, owned: bool
) -> None:
    """At start: publish the default campaign's folder if need be, and serve its version.

    A matcher handed to the app (``owned`` false: tests, embedding apps) is
    taken to serve the published version as it is; a folder that does not load
    then leaves it serving, unwatched until something is published.
    """
    folder = str(app.config["MATCHER_PROFILES"])
    moved = campaign.profiles_dir != folder
    try:
        if moved or published_stamp(db, campaign.id) is None:
            # The first start (workers starting together import once), or a server
            # started on another folder: that folder is the roster now.
            import_folder(db, campaign.id, folder, only_if_none=not moved)
    except MatcherError as exc:
        if owned:
            raise
        log.warning("the roster folder was not imported: %s", exc)
    stamp = published_stamp(db, campaign.id)
    if owned and stamp is not None:
        version = published(db, campaign.id)
        assert version is not None
        matcher = version_matcher(app, version, matcher)
    served(app)[campaign.slug] = Served(stamp, matcher, folder)
    app.extensions["matcher"] = matcher


def refresh_if_changed(app: Flask, db: Database, campaign: Campaign) -> Served | None:
    """The campaign's served roster, reloaded first when a newer version was published.

    Asks the database at most every :data:`CHECK_INTERVAL` seconds. A version
    that cannot be loaded, or a database that cannot be reached, leaves the
    current matcher serving; the problem is logged (never any shopper text).

    Returns:
        What this worker serves, or ``None`` when it serves nothing yet.
    """
    current = served(app).get(campaign.slug)
    if current is None or not current.due():
        return current
    current.checked = time.monotonic()
    try:
        stamp = published_stamp(db, campaign.id)
    except Exception as exc:  # noqa: BLE001 - an unreachable database must not stop matching
        log.warning("campaign %s: cannot ask for the published roster: %s", campaign.slug, exc)
        return current
    if stamp is None or stamp == current.stamp:
        return current
    try:
        return refresh(app, db, campaign)
    except MatcherError as exc:
        current.stamp = stamp
        log.warning(
            "campaign %s: roster version %d cannot be loaded; still serving the previous one: %s",
            campaign.slug,
            stamp[0],
            exc,
        )
        return current


def refresh(app: Flask, db: Database, campaign: Campaign) -> Served:
    """Load the campaign's published version now, in this worker (after a publish here).

    Raises:
        MatcherError: the version cannot be loaded; the campaign keeps its matcher.
    """
    with refresh_lock(app):
        current = served(app).get(campaign.slug)
        base: Matcher = current.matcher if current is not None else app.extensions["matcher"]
        version = published(db, campaign.id)
        if version is None:
            raise MatcherError(f"campaign {campaign.slug} has no published roster")
        if current is not None and current.stamp == (version.number, version.content_hash):
            current.checked = time.monotonic()
            return current
        stamp = (version.number, version.content_hash)
        folder = current.folder if current is not None else campaign.profiles_dir
        fresh = Served(stamp, version_matcher(app, version, base), folder)
        served(app)[campaign.slug] = fresh
        if campaign.slug == DEFAULT_SLUG:
            app.extensions["matcher"] = fresh.matcher
        return fresh
