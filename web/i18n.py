"""The UI's languages: Simplified Chinese and English, via Flask-Babel.

The language comes from an explicit ``lang`` (query string or form field, so
the switch works inside an iframe where cookies are dropped), then from the
browser's ``Accept-Language``, then English.

Data shown in a page is never passed to the template's ``_()``: Jinja marks
what ``_()`` returns as safe markup, so a planner's quick pick given to it
would be rendered as HTML. :func:`pick_label` translates only the default
picks, whose words are ours, and returns plain text that the template escapes.
"""

from __future__ import annotations

from flask import Flask, request
from flask_babel import Babel, gettext
from werkzeug.exceptions import HTTPException

from .settings import DEFAULT_QUICK_PICKS

LANGUAGES = {"en": "English", "zh": "中文"}

#: The picks whose words have translations (``web/translations/data_messages.py``).
TRANSLATED_PICKS = frozenset(pick for group in DEFAULT_QUICK_PICKS.values() for pick in group)


def _posted_lang() -> str | None:
    """The form's ``lang``, unless reading the form is itself the problem.

    Error pages choose their language too: for a body over the size limit, or
    one that cannot be parsed, reading the form again would fail again inside
    the error handler, so the form is only read when it already was, or when
    it is small enough to read.
    """
    if "form" not in request.__dict__:
        limit = request.max_content_length
        length = request.content_length
        if length is None or (limit is not None and length > limit):
            return None
    try:
        value = request.form.get("lang")
    except HTTPException:
        return None
    return value


def select_locale() -> str:
    chosen = request.args.get("lang") or _posted_lang()
    if chosen in LANGUAGES:
        return chosen
    best = request.accept_languages.best_match(["en", "zh", "zh-CN", "zh-Hans"], default="en")
    return "zh" if best.startswith("zh") else "en"


def pick_label(pick: str) -> str:
    """A quick pick as the shopper reads it: a default pick translated, any other as written."""
    return gettext(pick) if pick in TRANSLATED_PICKS else pick


def register_i18n(app: Flask) -> None:
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES
    app.jinja_env.globals["current_lang"] = select_locale
    app.jinja_env.globals["pick_label"] = pick_label
