"""Campaigns in the web layer: which campaign a request is for, its settings, its matcher.

Pages of the default campaign live at ``/`` and ``/embed``; another
campaign's at ``/c/<slug>/`` and ``/c/<slug>/embed``; the API takes
``"campaign": "<slug>"`` in the body (or ``?campaign=`` on a GET); the
planner area takes ``?campaign=``. Every worker caches a campaign's row for
:data:`CAMPAIGN_TTL` seconds, so a planner's change reaches all workers within
that time without a database read per request.

Every campaign serves its published roster (``roster.py``): the newest
version in the database, which every worker of every machine polls. Before
its first publish a campaign's roster folder is imported as version 1: the
default campaign's (the configured ``MATCHER_PROFILES``, its matcher also in
``app.extensions["matcher"]``) at start, another campaign's on first use.
Every other campaign's folder is inside ``MATCHER_ROSTERS_DIR`` (default
``INSTANCE/rosters``), checked again each time it is read, links followed: a
planner names a roster, never an arbitrary folder on the server. Other
campaigns' matchers are loaded with the same encoder, so one copy of the
model weights serves every campaign.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g
from flask_babel import gettext

from matcher.capacity import limits_of
from matcher.errors import MatcherError
from matcher.matching import Match, Matcher
from matcher.origins import parse_origins
from matcher.profiles import confined_folder
from matcher.store import (
    DEFAULT_SLUG,
    Campaign,
    Database,
    NewPairing,
    Stored,
    find_campaign,
    index_version,
    list_campaigns,
    record_pairings,
)
from matcher.store.campaigns import SLUG_PATTERN, note_index_version
from matcher.store.rosters import import_folder

from .errors import ApiError
from .jobs import StoreBatch
from .roster import Served, load_served, refresh, refresh_if_changed, served
from .settings import DEFAULT_QUICK_PICKS

log = logging.getLogger(__name__)

#: Seconds a worker trusts its copy of a campaign's settings.
CAMPAIGN_TTL = 2.0
DB_KEY = "matcher.db"
STATE_KEY = "matcher.campaigns"


def database(app: Flask | None = None) -> Database:
    db: Database = (app or current_app).extensions[DB_KEY]
    return db


#: What a worker serves for a campaign (``roster.py``); ``state(app).slots[slug].matcher``.
Slot = Served


@dataclass
class CampaignState:
    """Per-worker caches: campaign rows, campaigns' served rosters, versions noted."""

    rows: dict[str, tuple[Campaign | None, float]] = field(default_factory=dict)
    slots: dict[str, Served] = field(default_factory=dict)
    noted: dict[str, str] = field(default_factory=dict)
    origins: tuple[list[str], float] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def state(app: Flask) -> CampaignState:
    found: CampaignState | None = app.extensions.get(STATE_KEY)
    if found is None:
        found = app.extensions.setdefault(STATE_KEY, CampaignState(slots=served(app)))
    return found


def forget(app: Flask, slug: str) -> None:
    """Drop this worker's cached copy of a campaign (after a planner changed it)."""
    state(app).rows.pop(slug, None)
    state(app).origins = None


def campaign_slug() -> str:
    slug: str = g.get("campaign_slug") or DEFAULT_SLUG
    return slug


def lookup(slug: str) -> Campaign | None:
    """The campaign named ``slug``, or ``None``; a name no campaign could have is not looked up."""
    if not isinstance(slug, str) or not re.fullmatch(SLUG_PATTERN, slug):
        return None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cache = state(app).rows
    hit = cache.get(slug)
    now = time.monotonic()
    if hit is not None and now - hit[1] < CAMPAIGN_TTL:
        return hit[0]
    campaign = find_campaign(database(app), slug)
    cache[slug] = (campaign, now)
    return campaign


def current_campaign() -> Campaign:
    """The campaign this request is for.

    Raises:
        ApiError: 404 when no campaign has that slug.
    """
    slug = campaign_slug()
    campaign = lookup(slug)
    if campaign is None:
        raise ApiError(
            404,
            "unknown_campaign",
            gettext("There is no campaign %(slug)s.", slug=slug),
            "campaign",
        )
    return campaign


def request_settings() -> dict[str, Any]:
    """The request's campaign's settings; none for a campaign that does not exist.

    Read after a view has run (security headers), so an unknown campaign,
    already answered with a 404, must not raise a second time here.
    """
    campaign = lookup(campaign_slug())
    if campaign is None:
        return {"embed_origins": [], "quick_picks": DEFAULT_QUICK_PICKS}
    return campaign_settings(campaign)


def rosters_root(app: Flask | None = None) -> Path:
    """The folder every non-default campaign's roster must be inside."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    configured = app.config.get("MATCHER_ROSTERS_DIR")
    return Path(configured or Path(app.instance_path) / "rosters").resolve()


def roster_path(folder: str | Path, app: Flask | None = None) -> Path:
    """A planner-given roster folder, resolved inside :func:`rosters_root`.

    Raises:
        ConfigError: the folder is outside the root (links followed).
    """
    return confined_folder(rosters_root(app), folder)


def _load_campaign_matcher(app: Flask, campaign: Campaign) -> Served:
    """Load a non-default campaign's published roster, importing its folder if none is.

    Raises:
        MatcherError: the folder is outside the rosters root, a profile file
            links out of it, or it is not a valid roster; the version cannot be loaded.
    """
    base: Matcher = app.extensions["matcher"]
    path = roster_path(campaign.profiles_dir, app)
    return load_served(app, database(app), campaign, base, folder=path, within=rosters_root(app))


def campaign_settings(campaign: Campaign) -> dict[str, Any]:
    """Embed origins and quick picks; ``MATCHER_EMBED_ORIGINS`` wins for the default campaign."""
    env_origins = parse_origins(current_app.config["MATCHER_EMBED_ORIGINS"])
    origins = env_origins if env_origins and campaign.slug == DEFAULT_SLUG else None
    return {
        "embed_origins": origins or list(campaign.embed_origins),
        "quick_picks": campaign.quick_picks or DEFAULT_QUICK_PICKS,
    }


def matcher_for(campaign: Campaign) -> Matcher:
    """The campaign's matcher, serving its published roster (reloaded when a newer one is).

    A campaign whose roster folder (``profiles_dir``) was changed imports the
    new folder as a new version.

    Raises:
        ApiError: 503 when a campaign's roster cannot be loaded (the problem is logged).
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    db = database(app)
    current = refresh_if_changed(app, db, campaign)
    if campaign.slug == DEFAULT_SLUG:
        if current is not None:
            return current.matcher
        default: Matcher = app.extensions["matcher"]
        return default
    if current is not None and current.folder == campaign.profiles_dir:
        return current.matcher
    campaigns = state(app)
    with campaigns.lock:
        try:
            if current is not None:
                # The planner pointed the campaign at another folder: that is its roster now.
                path = roster_path(campaign.profiles_dir, app)
                import_folder(db, campaign.id, path, within=rosters_root(app))
                fresh = refresh(app, db, campaign)
                fresh.folder = campaign.profiles_dir
                return fresh.matcher
            loaded = _load_campaign_matcher(app, campaign)
        except MatcherError as exc:
            if current is not None:
                log.warning(
                    "campaign %s: new roster folder cannot be loaded: %s", campaign.slug, exc
                )
                current.folder = campaign.profiles_dir
                return current.matcher
            log.error("campaign %s: roster cannot be loaded: %s", campaign.slug, exc)
            raise ApiError(
                503,
                "campaign_unavailable",
                gettext("This campaign is not available right now."),
            ) from None
        campaigns.slots[campaign.slug] = loaded
    return loaded.matcher


def refresh_campaign(campaign: Campaign) -> Matcher:
    """Serve the campaign's published version now, in this worker (after a publish here;
    the other workers and machines follow within seconds).

    Raises:
        MatcherError: the version cannot be loaded; the campaign keeps its matcher.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if campaign.slug != DEFAULT_SLUG and campaign.slug not in state(app).slots:
        matcher_for(campaign)
    return refresh(app, database(app), campaign).matcher


def current_matcher() -> Matcher:
    return matcher_for(current_campaign())


def store(
    campaign: Campaign,
    matcher: Matcher,
    items: list[NewPairing],
    *,
    source: str,
    batch: bool = False,
    filename: str | None = None,
) -> Stored:
    """Store answered pairings before the answer goes out (nothing answered is lost)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    version = index_version(matcher.index)
    db = database(app)
    if state(app).noted.get(campaign.slug) != version:
        note_index_version(db, campaign.slug, version)
        state(app).noted[campaign.slug] = version
    return record_pairings(
        db,
        campaign,
        items,
        model_id=matcher.index.model_id,
        index_version=version,
        source=source,
        batch=batch,
        filename=filename,
        limits=limits_of(matcher.index.profiles) or None,
    )


def rank(matcher: Matcher, texts: list[str], k: int) -> list[tuple[list[Match], tuple[Match, ...]]]:
    """Each text's ``k`` best matches, and its whole ranking when the roster has limits.

    Under quotas and shares the pairing may go to any celebrity, so the store
    needs every one of them by fit; without limits the best is the pairing.
    """
    if not limits_of(matcher.index.profiles):
        return [(matches, ()) for matches in matcher.match_many(texts, k)]
    everyone = matcher.match_many(texts, matcher.roster_size)
    return [(matches[:k], tuple(matches)) for matches in everyone]


def rank_one(matcher: Matcher, text: str, k: int) -> tuple[list[Match], tuple[Match, ...]]:
    """:func:`rank` for one text."""
    if not limits_of(matcher.index.profiles):
        return matcher.match(text, k), ()
    everyone = matcher.match(text, matcher.roster_size)
    return everyone[:k], tuple(everyone)


def assigned_field(
    stored: Stored | None, position: int = 0, key: str | None = None
) -> dict[str, str] | None:
    """The API's ``assigned``: who the stored pairing went to, and why.

    ``position`` is the pairing's place among those given to the store, and
    ``key`` its request key, by which a replayed answer finds the first one.
    """
    if stored is None:
        return None
    if stored.replayed:
        earlier = (stored.earlier or {}).get(key or "")
        if earlier is None:
            return None
        return {"celebrity_id": earlier.celebrity_id, "assignment": earlier.assignment or "best"}
    if not stored.assigned or position >= len(stored.assigned):
        return None
    placed = stored.assigned[position]
    if placed.celebrity_id is None:
        return None
    return {"celebrity_id": placed.celebrity_id, "assignment": placed.why}


def batch_store(campaign: Campaign, matcher: Matcher) -> StoreBatch:
    """A function that stores a planner's matched upload for ``campaign``, in one transaction.

    Bound to this app now, because the upload is stored later from a background
    thread, outside any request.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    db = database(app)

    def store_upload(items: Iterable[NewPairing], filename: str) -> Stored:
        return record_pairings(
            db,
            campaign,
            items,
            model_id=matcher.index.model_id,
            index_version=index_version(matcher.index),
            source="upload",
            batch=True,
            filename=filename,
            limits=limits_of(matcher.index.profiles) or None,
        )

    return store_upload


def all_origins() -> list[str]:
    """Every origin any campaign lists (the API's CORS allowance), cached like a campaign."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cache = state(app)
    now = time.monotonic()
    if cache.origins is None or now - cache.origins[1] >= CAMPAIGN_TTL:
        origins = set(parse_origins(app.config["MATCHER_EMBED_ORIGINS"]))
        for campaign in list_campaigns(database(app)):
            origins.update(campaign.embed_origins)
        cache.origins = (sorted(origins), now)
    return cache.origins[0]


def register_campaign_urls(app: Flask) -> None:
    """Take ``<campaign>`` out of page URLs into ``g``, and put it back when building URLs."""

    @app.url_value_preprocessor
    def pull(_endpoint: str | None, values: dict[str, Any] | None) -> None:
        if values and "campaign" in values:
            g.campaign_slug = values.pop("campaign")

    @app.url_defaults
    def push(endpoint: str, values: dict[str, Any]) -> None:
        slug = g.get("campaign_slug")
        if (
            slug
            and "campaign" not in values
            and app.url_map.is_endpoint_expecting(endpoint, "campaign")
        ):
            values["campaign"] = slug
