"""A campaign's branding as its pages read it: words, colours, images and names, per language.

:func:`current_brand` gives the request's campaign's :class:`Brand`: its
stored branding (``matcher.store.branding``) with every field a planner left
out filled by a neutral default made from the campaign's own name and brand,
in the page's language (never another campaign's words). Every worker keeps a
campaign's branding for :data:`BRAND_TTL` seconds, like the campaign's row.

The same module names celebrities and facets for shoppers: a celebrity's
display name per language (the planner's, else the profile's Chinese or
English name), a facet's label per language (the planner's, else ours for the
facets we know; a facet a roster invented is never shown as its raw English
key on a Chinese page), and one line per reason: the planner's, else a
sentence made for that facet, never the profile's briefing copy.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, g, url_for
from flask_babel import gettext

from matcher.profiles import Profile
from matcher.store import DEFAULT_SLUG, Campaign
from matcher.store.brand_images import LOGO_KEY, portrait_key
from matcher.store.branding import (
    FONT_STACKS,
    SAMPLE_CELEBRITIES,
    Branding,
    Copy,
    branding_for,
)
from matcher.store.campaigns import DEFAULT_CONSENT_TEXT

from .campaigns import current_campaign, current_matcher, database

#: Seconds a worker trusts its copy of a campaign's branding.
BRAND_TTL = 2.0
CACHE_KEY = "matcher.branding"

#: Where the bilingual default consent notice turns from English to Chinese.
_CHINESE_HALF = DEFAULT_CONSENT_TEXT.index("保存")


@dataclass
class _Cached:
    branding: Branding
    images: dict[str, str]
    at: float = field(default_factory=time.monotonic)


def _cache(app: Flask) -> dict[int, _Cached]:
    found: dict[int, _Cached] = app.extensions.setdefault(CACHE_KEY, {})
    return found


def forget_branding(app: Flask, campaign_id: int) -> None:
    """Drop this worker's copy of a campaign's branding (after a planner changed it)."""
    _cache(app).pop(campaign_id, None)


def _load(campaign: Campaign, celebrity_ids: frozenset[str]) -> _Cached:
    from matcher.store.brand_images import image_versions

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cache = _cache(app)
    hit = cache.get(campaign.id)
    if hit is not None and time.monotonic() - hit.at < BRAND_TTL:
        return hit
    db = database(app)
    fresh = _Cached(branding_for(db, campaign.id, celebrity_ids), image_versions(db, campaign.id))
    cache[campaign.id] = fresh
    return fresh


def known_facet_label(facet: str) -> str | None:
    """Our label for a facet we know, in the request's language; ``None`` for others."""
    labels = {
        "style": gettext("style"),
        "values": gettext("values"),
        "lifestyle": gettext("lifestyle"),
        "scent": gettext("scent"),
        "audience": gettext("audience"),
    }
    return labels.get(facet)


def _known_line(facet: str, name: str) -> str | None:
    """A sentence for a reason from a facet we know, naming the celebrity."""
    if facet == "style":
        return gettext("You and %(name)s dress in the same spirit.", name=name)
    if facet == "values":
        return gettext("What matters to you is what %(name)s stands for.", name=name)
    if facet == "lifestyle":
        return gettext("You would love the way %(name)s spends their days.", name=name)
    if facet == "scent":
        return gettext("You are drawn to the same scents as %(name)s.", name=name)
    if facet == "audience":
        return gettext("%(name)s speaks to people like you.", name=name)
    return None


@dataclass(frozen=True)
class Brand:
    """The request's campaign as its pages show it, in one language."""

    campaign: Campaign
    branding: Branding
    lang: str
    images: dict[str, str]
    #: Serving the shipped sample roster: its picks are the sample's moods and scents.
    sample: bool = False

    @property
    def copy(self) -> Copy:
        return self.branding.copy_for(self.lang)

    @property
    def name(self) -> str:
        return self.branding.brand_name or self.campaign.brand

    @property
    def headline(self) -> str:
        return self.copy.headline or gettext(
            "Find the %(brand)s celebrity who matches you", brand=self.campaign.brand
        )

    @property
    def intro(self) -> str:
        return self.copy.intro or gettext(
            "Tell us about yourself: your style, the places and the moments you love. "
            "We will pair you with the celebrity who fits you best."
        )

    @property
    def prompt(self) -> str:
        return self.copy.prompt or gettext(
            "Tell us about yourself: your style, the places you love, your perfect weekend…"
        )

    @property
    def button(self) -> str:
        return self.copy.button or gettext("Find my celebrity")

    @property
    def result_heading(self) -> str:
        return self.copy.result_heading or gettext("Your match")

    @property
    def cta_label(self) -> str:
        return self.copy.cta_label or gettext("Discover more")

    @property
    def share_text(self) -> str:
        return self.copy.share_text or gettext("My %(brand)s match", brand=self.campaign.brand)

    @property
    def heading_font(self) -> str:
        return FONT_STACKS[self.branding.heading_font]

    @property
    def body_font(self) -> str:
        return FONT_STACKS[self.branding.body_font]

    # -- consent -----------------------------------------------------------------------

    @property
    def consent_text(self) -> str | None:
        """The consent notice in this language only; ``None``: none is written in it.

        Without a notice in the page's language no consent is asked for, so
        a shopper never agrees to words they were not shown in their language.
        """
        own = self.copy.consent_text
        if own:
            return own
        text = self.campaign.consent_text
        if text == DEFAULT_CONSENT_TEXT:
            half = text[_CHINESE_HALF:] if self.lang == "zh" else text[:_CHINESE_HALF]
            return half.strip()
        return text if self.lang == "en" else None

    @property
    def consent_version(self) -> str:
        """The version a consenting pairing records: ``1`` in English, ``zh:1`` in Chinese."""
        version = self.copy.consent_version or self.campaign.consent_version
        return version if self.lang == "en" else f"{self.lang}:{version}"

    # -- quick picks -------------------------------------------------------------------

    def quick_picks(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """The form's pick groups in this language: (legend, [(value, label)])."""
        from .i18n import pick_label
        from .settings import DEFAULT_QUICK_PICKS

        if self.copy.quick_picks:
            return [(g.label, [(p, p) for p in g.picks]) for g in self.copy.quick_picks]
        neutral = DEFAULT_QUICK_PICKS if self.sample else {"moods": DEFAULT_QUICK_PICKS["moods"]}
        picks = self.campaign.quick_picks or neutral
        legends = {"moods": gettext("Moods"), "scents": gettext("Scent families")}
        return [
            (legends.get(group, group), [(p, pick_label(p)) for p in values])
            for group, values in picks.items()
        ]

    def allowed_picks(self) -> set[str]:
        """Every pick a form of this campaign may send, in any language."""
        allowed = {p for group in (self.campaign.quick_picks or {}).values() for p in group}
        for copy in self.branding.copy_.values():
            allowed.update(p for group in copy.quick_picks for p in group.picks)
        if not self.campaign.quick_picks:
            allowed.update(value for _, picks in self.quick_picks() for value, _ in picks)
        return allowed

    # -- celebrities -------------------------------------------------------------------

    def display_name(self, profile: Profile) -> str:
        own = self.branding.celebrity(profile.id).display_name.get(self.lang)  # type: ignore[call-overload]
        if own:
            return str(own)
        return profile.name_zh if self.lang == "zh" else profile.name

    def other_name(self, profile: Profile) -> str | None:
        """The name in the other script, when it differs (陈安 beside Chen An)."""
        other = profile.name if self.lang == "zh" else profile.name_zh
        return other if other != self.display_name(profile) else None

    def tagline(self, profile: Profile) -> str:
        return (profile.tagline_zh or profile.tagline) if self.lang == "zh" else profile.tagline

    def facet_label(self, facet: str) -> str | None:
        """The facet's label in this language, or ``None`` when nobody wrote one in it."""
        own = self.branding.facet_labels.get(facet, {}).get(self.lang)  # type: ignore[call-overload]
        if own:
            return str(own)
        known = known_facet_label(facet)
        if known:
            return known
        return facet.replace("_", " ") if self.lang == "en" else None

    def reason_line(self, profile: Profile, facet: str) -> str:
        """What the shopper reads for a reason: the planner's line, else one made for the facet."""
        lines = self.branding.celebrity(profile.id).lines.get(facet, {})
        own = lines.get(self.lang)  # type: ignore[call-overload]
        if own:
            return str(own)
        name = self.display_name(profile)
        known = _known_line(facet, name)
        if known:
            return known
        label = self.facet_label(facet)
        if label:
            return gettext("You are close to %(name)s in %(facet)s.", name=name, facet=label)
        return gettext("You have a lot in common with %(name)s.", name=name)

    def initials(self, profile: Profile) -> str:
        name = self.display_name(profile)
        if self.lang == "zh" or not name.isascii():
            return name[:1]
        return "".join(word[:1] for word in name.split()[:2]).upper()

    def cta_url(self, celebrity_id: str) -> str | None:
        return self.branding.celebrity(celebrity_id).cta_url

    # -- images ------------------------------------------------------------------------

    def portrait_url(self, celebrity_id: str, *, external: bool = False) -> str | None:
        digest = self.images.get(portrait_key(celebrity_id))
        if digest is None:
            return None
        return url_for(
            shopper_endpoint("portrait"), celebrity=celebrity_id, v=digest, _external=external
        )

    @property
    def logo_url(self) -> str | None:
        digest = self.images.get(LOGO_KEY)
        return url_for(shopper_endpoint("logo"), v=digest) if digest else None

    @property
    def css(self) -> str:
        """The campaign's colours and fonts as CSS custom properties (the ``brand.css`` body)."""
        colours = self.branding.colours
        values = {
            "--ink": colours.ink,
            "--paper": colours.paper,
            "--accent": colours.accent,
            "--on-accent": colours.on_accent,
            "--muted": colours.muted,
            "--line": colours.line,
            "--heading-font": self.heading_font,
            "--body-font": self.body_font,
        }
        body = "; ".join(f"{name}: {value}" for name, value in values.items())
        return f":root {{ {body}; }}\n"

    @property
    def css_version(self) -> str:
        return hashlib.sha256(self.css.encode("utf-8")).hexdigest()[:12]

    @property
    def css_url(self) -> str:
        return url_for(shopper_endpoint("brand_css"), v=self.css_version)


def shopper_endpoint(view: str) -> str:
    """A view of the shopper blueprint, as mounted for the request's campaign."""
    slug = g.get("campaign_slug")
    prefix = "campaign_shopper" if slug and slug != DEFAULT_SLUG else "shopper"
    return f"{prefix}.{view}"


def brand_of(campaign: Campaign, lang: str, celebrity_ids: frozenset[str]) -> Brand:
    cached = _load(campaign, celebrity_ids)
    sample = celebrity_ids == SAMPLE_CELEBRITIES
    return Brand(campaign, cached.branding, lang, dict(cached.images), sample)


def current_brand(lang: str | None = None) -> Brand:
    """The request's campaign's brand in ``lang`` (default: the request's language).

    Raises:
        ApiError: 404 when the campaign does not exist.
    """
    from .errors import ApiError
    from .i18n import select_locale

    campaign = current_campaign()
    try:
        ids = frozenset(p.id for p in current_matcher().index.profiles)
    except ApiError:
        # The roster cannot load: the page still shows, and sending it says so.
        ids = frozenset()
    return brand_of(campaign, lang or select_locale(), ids)


def error_brand() -> tuple[Brand | None, str | None]:
    """The brand and start page for an error page at this path, when it is a shopper page.

    Never loads a roster nor raises: an error page must render whatever failed.
    """
    import re

    from flask import request

    from .campaigns import lookup, state
    from .i18n import select_locale

    path = request.path
    if path.startswith(("/planner", "/api/", "/static/")):
        return None, None
    found = re.match(r"^/c/([^/]+)(?:/|$)", path)
    slug = found.group(1) if found else DEFAULT_SLUG
    try:
        campaign = lookup(slug)
        if campaign is None:
            return None, None
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        if slug == DEFAULT_SLUG:
            matcher = app.extensions["matcher"]
            home = url_for("shopper.form")
        else:
            slot = state(app).slots.get(slug)
            matcher = slot.matcher if slot is not None else None
            home = url_for("campaign_shopper.form", campaign=slug)
        ids = frozenset(p.id for p in matcher.index.profiles) if matcher else frozenset()
        g.campaign_slug = slug
        return brand_of(campaign, select_locale(), ids), home
    except Exception:  # noqa: BLE001 - the error page itself must not fail
        return None, None


def language_url(code: str) -> str:
    """This page in another language: same view and arguments (a result's token and ``o``)."""
    from flask import request

    values: dict[str, Any] = dict(request.view_args or {})
    if request.method == "GET":
        values.update(request.args.to_dict())
    values["lang"] = code
    return url_for(str(request.endpoint), **values)
