"""The shopper flow shared by the page at ``/`` and the iframe at ``/embed``.

GET shows the form. POST checks the form, calls the core, stores the
pairing and redirects (303) to the result's own page, so reloading the
result never sends the form again. That page lives at a random token
(:func:`matcher.store.shares.create_share`) and holds who the shopper was
paired with and why (the facets, as lines a planner wrote or made for the
facet, never the profile's briefing copy), not what the shopper wrote: the
same URL can be shared. The shopper's reference and whether their words were
kept are shown only to the shopper who was just redirected there (a signed,
short-lived ``o=`` parameter), never to whoever opens a shared link.

Nothing here decides who matches, or whether the matcher is sure; the core
does. When it is not sure, no celebrity is named and nothing is stored: the
form asks for a little more, with the shopper's text still in the box.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import abort, current_app, make_response, redirect, render_template, request, url_for
from flask_babel import gettext
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response as BaseResponse

from matcher.errors import InputError
from matcher.limits import MAX_TEXT_CHARS
from matcher.matching import Match
from matcher.profiles import Profile
from matcher.store import NewPairing
from matcher.store.shares import SharedResult, create_share, find_share
from matcher.text import valid_ref

from .branding import Brand, current_brand, known_facet_label, shopper_endpoint
from .campaigns import (
    assigned_field,
    current_campaign,
    current_matcher,
    database,
    rank_one,
    store,
)
from .hints import hint
from .i18n import select_locale
from .idempotency import form_key, new_form_key, same_requests
from .security import check_form_post
from .serving import client_gone

TOP_K = 3
#: A runner-up is shown only with at least this share of the fit (percent).
RUNNER_UP_MIN = 12
#: How long the shopper who was paired sees their reference on the result page (seconds).
OWNER_MAX_AGE = 2 * 60 * 60
OWNER_SALT = "matcher.result-owner"
__all__ = ["current_matcher", "facet_label", "handle", "show_result"]


def given_ref() -> str | None:
    """The shopper reference the microsite passed (``?ref=`` on the page, kept in the form)."""
    return valid_ref(request.values.get("ref") or "")


def facet_label(facet: str) -> str:
    """A facet's label in the request's language (planner pages)."""
    return known_facet_label(facet) or facet.replace("_", " ")


def strength(percent: int) -> str:
    """How close the match is, in words rather than a bare figure."""
    if percent >= 50:
        return gettext("A clear match")
    if percent >= 30:
        return gettext("A strong match")
    return gettext("Your closest match")


@dataclass(frozen=True)
class Shown:
    """One celebrity as the shopper sees them."""

    celebrity_id: str
    name: str
    other_name: str | None
    tagline: str
    initials: str
    portrait: str | None
    percent: int
    strength: str
    lines: list[str]
    cta: str | None


def present(
    brand: Brand, profile: Profile, percent: int, facets: tuple[str, ...], source: str
) -> Shown:
    lines: list[str] = []
    for facet in facets:
        line = brand.reason_line(profile, facet)
        if line not in lines:
            lines.append(line)
    cta = None
    if brand.cta_url(profile.id):
        cta = url_for(shopper_endpoint("go"), celebrity=profile.id, src=source, lang=brand.lang)
    return Shown(
        celebrity_id=profile.id,
        name=brand.display_name(profile),
        other_name=brand.other_name(profile),
        tagline=brand.tagline(profile),
        initials=brand.initials(profile),
        portrait=brand.portrait_url(profile.id),
        percent=percent,
        strength=strength(percent),
        lines=lines,
        cta=cta,
    )


def compose_text(text: str, picks: list[str], allowed: set[str]) -> str:
    """The text the matcher reads: what the shopper wrote, then the quick picks they ticked."""
    chosen = [p for p in picks if p in allowed]
    return " ".join(part for part in (text.strip(), ", ".join(chosen)) if part)


def _owner_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt=OWNER_SALT)


def owner_of(token: str) -> dict[str, Any] | None:
    """What only the paired shopper sees (their reference, whether words were kept), if signed."""
    value = request.args.get("o")
    if not value:
        return None
    try:
        found = _owner_serializer().loads(value, max_age=OWNER_MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(found, dict) or found.get("t") != token:
        return None
    return found


def base_context(brand: Brand) -> dict[str, Any]:
    return {
        "campaign": brand.campaign,
        "brand": brand,
        "lang": brand.lang,
        "ref": given_ref(),
        "text": "",
        "picked": [],
        "consent": False,
        "error": None,
        "unsure": None,
        "no_place": False,
        "max_chars": MAX_TEXT_CHARS,
        "quick_picks": brand.quick_picks(),
        "offer_consent": brand.campaign.store_text and brand.consent_text is not None,
        # A new key for every page: its resubmissions (a reload, a double
        # click) find the pairing the first one stored.
        "request_key": new_form_key(),
    }


def handle(template: str, source: str) -> tuple[str, int] | BaseResponse:
    """GET shows the form; POST checks the form's origin and token, matches and redirects.

    The pairing is stored before the result is shown; the text only with the
    shopper's consent, where the campaign keeps text. An answer the matcher is
    unsure of is neither shown nor stored: the page asks for more instead.
    """
    lang = select_locale()
    campaign = current_campaign()
    brand = current_brand(lang)
    context = base_context(brand)
    status = 200
    if request.method != "POST":
        return render_template(template, **context), status
    check_form_post()
    # Browsers send a textarea's line breaks as CRLF; count them as one character.
    text = request.form.get("text", "").replace("\r\n", "\n")
    picked = request.form.getlist("picks")
    # Text is kept only with a notice shown in the shopper's language (the store
    # keeps none for a campaign that keeps no text, whatever was agreed to).
    consented = request.form.get("consent") == "yes" and (
        context["offer_consent"] or not campaign.store_text
    )
    context.update(text=text, picked=picked, consent=consented)
    composed = compose_text(text, picked, brand.allowed_picks())
    try:
        matcher = current_matcher()
        matches, ranking = rank_one(matcher, composed, TOP_K)
    except InputError:
        status = 400
        if not composed:
            context["error"] = gettext("Tell us a little about what you like first.")
        elif len(composed) > MAX_TEXT_CHARS:
            context["error"] = gettext(
                "That is too long: please keep it under %(n)d characters.", n=MAX_TEXT_CHARS
            )
        else:
            context["error"] = gettext(
                "Some characters cannot be read. Please write in plain words."
            )
        return render_template(template, **context), status
    verdict = matcher.assess(composed, matches)
    if not verdict.confident:
        context["unsure"] = {"reason": str(verdict.reason), "hint": hint(verdict.reason)}
        return render_template(template, **context), status
    if client_gone(request.environ):
        return "", 499  # the shopper left: nobody to pair
    # The notice the shopper was shown, in their language, is the version recorded.
    shown_campaign = campaign.model_copy(update={"consent_version": brand.consent_version})
    key = form_key()
    pairing = NewPairing(
        matches[0], composed, consented, context["ref"], request_key=key, ranking=ranking
    )
    stored = store(shown_campaign, matcher, [pairing], source=source)
    if key and stored.replayed and not same_requests(stored, matcher.index, [(key, matches[0])]):
        # The page's key came back with another text (the back button):
        # a new request, stored as one.
        pairing = NewPairing(matches[0], composed, consented, context["ref"], ranking=ranking)
        stored = store(shown_campaign, matcher, [pairing], source=source)
    assigned = assigned_field(stored, 0, key)
    if assigned is None:
        # Every celebrity's places have gone: nobody to pair with.
        context["no_place"] = True
        return render_template(template, **context), status
    chosen = next(
        (m for m in ranking or matches if m.celebrity_id == assigned["celebrity_id"]),
        matches[0],
    )
    share = _share(campaign.id, chosen, matches, assigned["assignment"])
    owner = _owner_serializer().dumps(
        {"t": share.token, "r": stored.refs[0], "k": bool(stored.texts_kept), "g": context["ref"]}
    )
    endpoint = f"{request.blueprint}.result"
    return redirect(url_for(endpoint, token=share.token, o=owner, lang=lang), 303)


def _share(campaign_id: int, chosen: Match, matches: list[Match], why: str) -> SharedResult:
    others = [
        (m.celebrity_id, round(m.share * 100))
        for m in matches
        if m.celebrity_id != chosen.celebrity_id
    ]
    return create_share(
        database(),
        campaign_id,
        chosen.celebrity_id,
        facets=[r.facet for r in chosen.reasons],
        percent=round(chosen.share * 100),
        others=others,
        assignment=why,
        first_choice=matches[0].celebrity_id if why != "best" else None,
    )


def show_result(template: str, token: str, source: str) -> BaseResponse:
    """A stored result: to the shopper just paired (with their reference), or to anyone shared it.

    Raises:
        NotFound: no such token for this campaign, or its celebrity left the roster.
    """
    brand = current_brand()
    share = find_share(database(), brand.campaign.id, token)
    kept_until = (
        None if share is None else share.created_at + timedelta(days=brand.campaign.retention_days)
    )
    if share is None or kept_until is None or kept_until < datetime.now(UTC):
        # A result is kept no longer than the campaign keeps its pairings.
        abort(404)
    profiles = {p.id: p for p in current_matcher().index.profiles}
    best = profiles.get(share.celebrity_id)
    if best is None:
        abort(404)
    owner = owner_of(token)
    result = [present(brand, best, share.percent, share.facets, source)]
    for celebrity_id, percent in share.others:
        if percent >= RUNNER_UP_MIN and celebrity_id in profiles:
            result.append(present(brand, profiles[celebrity_id], percent, (), source))
    assignment = None
    if share.assignment != "best" and share.first_choice in profiles:
        assignment = {
            "why": share.assignment,
            "first": brand.display_name(profiles[share.first_choice]),
        }
    public = url_for(shopper_endpoint("result"), token=token, lang=brand.lang, _external=True)
    again: dict[str, str] = {"lang": brand.lang}
    if owner and owner.get("g"):
        again["ref"] = owner["g"]
    context = {
        **base_context(brand),
        "result": result,
        "owner": owner,
        "assignment": assignment,
        "share_url": public,
        "share_image": brand.portrait_url(best.id, external=True),
        "again_url": url_for(f"{request.blueprint}.form", **again),
    }
    response = make_response(render_template(template, **context))
    # The shopper's own view carries their reference: never cached, never kept by a proxy.
    response.headers["Cache-Control"] = "no-store" if owner else "public, max-age=300"
    response.headers["Vary"] = "Accept-Language"
    return response
