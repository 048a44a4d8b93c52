"""The shopper flow shared by the page at ``/`` and the iframe at ``/embed``.

Parses the form, calls the core, and turns matches into what a shopper reads:
names and taglines in their language, reasons in plain words, a fit figure.
Nothing here decides who matches, or whether the matcher is sure; the core
does. When it is not sure, no celebrity is named and nothing is stored: the
shopper sees a hint, with their text still in the box to add to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import render_template, request
from flask_babel import gettext

from matcher.errors import InputError
from matcher.limits import MAX_TEXT_CHARS
from matcher.matching import Match
from matcher.profiles import Profile
from matcher.store import NewPairing
from matcher.text import valid_ref

from .campaigns import (
    assigned_field,
    campaign_settings,
    current_campaign,
    current_matcher,
    rank_one,
    store,
)
from .hints import hint
from .i18n import select_locale
from .idempotency import form_key, new_form_key, same_requests
from .security import check_form_post
from .serving import client_gone

TOP_K = 3
__all__ = ["current_matcher", "facet_label", "handle", "present"]


def quick_picks() -> dict[str, list[str]]:
    picks: dict[str, list[str]] = campaign_settings(current_campaign())["quick_picks"]
    return picks


def given_ref() -> str | None:
    """The shopper reference the microsite passed (``?ref=`` on the page, kept in the form)."""
    return valid_ref(request.values.get("ref") or "")


def facet_label(facet: str) -> str:
    labels = {
        "style": gettext("style"),
        "values": gettext("values"),
        "lifestyle": gettext("lifestyle"),
        "scent": gettext("scent"),
        "audience": gettext("the people they speak to"),
    }
    return labels.get(facet, facet.replace("_", " "))


@dataclass(frozen=True)
class Shown:
    """One match as the shopper sees it."""

    celebrity_id: str
    name: str
    other_name: str
    tagline: str
    initials: str
    image: str | None
    percent: int
    reasons: list[dict[str, str]]


def present(match: Match, profile: Profile, lang: str) -> Shown:
    chinese = lang == "zh"
    return Shown(
        celebrity_id=match.celebrity_id,
        name=profile.name_zh if chinese else profile.name,
        other_name=profile.name if chinese else profile.name_zh,
        tagline=(profile.tagline_zh or profile.tagline) if chinese else profile.tagline,
        initials=profile.name_zh[:1] if chinese else "".join(w[:1] for w in profile.name.split()),
        image=profile.image,
        percent=round(match.share * 100),
        reasons=[{"facet": facet_label(r.facet), "quote": r.quote} for r in match.reasons],
    )


def compose_text(text: str, picks: list[str]) -> str:
    """The text the matcher reads: what the shopper wrote, then the quick picks they ticked."""
    allowed = {pick for group in quick_picks().values() for pick in group}
    chosen = [p for p in picks if p in allowed]
    return " ".join(part for part in (text.strip(), ", ".join(chosen)) if part)


def handle(template: str, source: str) -> tuple[str, int]:
    """GET shows the form; POST checks the form's origin and token, matches and shows the result.

    The pairing is stored before the result is shown; the text only with the
    shopper's consent, where the campaign keeps text. An answer the matcher is
    unsure of is neither shown nor stored: the page asks for more instead.
    """
    lang = select_locale()
    campaign = current_campaign()
    context: dict[str, Any] = {
        "campaign": campaign,
        "ref": given_ref(),
        "stored": None,
        "text": "",
        "picked": [],
        "consent": False,
        "error": None,
        "result": None,
        "unsure": None,
        "assignment": None,
        "no_place": False,
        "max_chars": MAX_TEXT_CHARS,
        "quick_picks": quick_picks(),
        "lang": lang,
        # A new key for every page: its resubmissions (a reload, a double
        # click) find the pairing the first one stored.
        "request_key": new_form_key(),
    }
    status = 200
    if request.method == "POST":
        check_form_post()
        # Browsers send a textarea's line breaks as CRLF; count them as one character.
        text = request.form.get("text", "").replace("\r\n", "\n")
        picked = request.form.getlist("picks")
        context.update(text=text, picked=picked, consent=request.form.get("consent") == "yes")
        composed = compose_text(text, picked)
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
        else:
            verdict = matcher.assess(composed, matches)
            if not verdict.confident:
                context["unsure"] = {"reason": str(verdict.reason), "hint": hint(verdict.reason)}
                return render_template(template, **context), status
            if client_gone(request.environ):
                return "", 499  # the shopper left: nobody to pair
            consented = context["consent"]
            key = form_key()
            pairing = NewPairing(
                matches[0], composed, consented, context["ref"], request_key=key, ranking=ranking
            )
            stored = store(campaign, matcher, [pairing], source=source)
            if (
                key
                and stored.replayed
                and not same_requests(stored, matcher.index, [(key, matches[0])])
            ):
                # The page's key came back with another text (the back button):
                # a new request, stored as one.
                pairing = NewPairing(
                    matches[0], composed, consented, context["ref"], ranking=ranking
                )
                stored = store(campaign, matcher, [pairing], source=source)
            context["stored"] = stored
            profiles = {p.id: p for p in matcher.index.profiles}
            assigned = assigned_field(stored, 0, key)
            if assigned is None:
                # Every celebrity's places have gone: nobody to pair with.
                context["stored"] = None
                context["no_place"] = True
                return render_template(template, **context), status
            chosen = next(
                (m for m in ranking or matches if m.celebrity_id == assigned["celebrity_id"]),
                matches[0],
            )
            others = [m for m in matches if m.celebrity_id != chosen.celebrity_id]
            context["result"] = [
                present(m, profiles[m.celebrity_id], lang) for m in [chosen, *others]
            ]
            if assigned["assignment"] != "best":
                context["assignment"] = {
                    "why": assigned["assignment"],
                    "first": present(matches[0], profiles[matches[0].celebrity_id], lang).name,
                }
    return render_template(template, **context), status
