"""What a shopper reads when the matcher will not name a celebrity: one hint per doubt.

The core says *why* it is unsure (``matcher.confidence.Doubt``); the words
belong to the web layer, translated like the rest of the UI. The API, the
form and the embed all take their hint from here, so a shopper reads the
same advice wherever they asked.
"""

from __future__ import annotations

from flask_babel import gettext

from matcher.confidence import Doubt


def hint(doubt: Doubt | None) -> str:
    """The advice for ``doubt``, in the request's language (empty when there is no doubt)."""
    if doubt is Doubt.NO_CONTENT:
        return gettext(
            "We could not read that. Tell us in a few words what you like: "
            "a style, a place, a way to spend a weekend."
        )
    if doubt is Doubt.TOO_SHORT:
        return gettext("Tell us a little more about what you like.")
    if doubt is Doubt.WEAK:
        return gettext(
            "That does not tell us much about your taste yet. Tell us more about what you like."
        )
    if doubt is Doubt.NEAR_TIE:
        return gettext(
            "You are close to more than one of our celebrities. "
            "Tell us a little more so we can choose."
        )
    return ""
