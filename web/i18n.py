"""The UI's languages: Simplified Chinese and English, via Flask-Babel.

The language comes from an explicit ``lang`` (query string or form field, so
the switch works inside an iframe where cookies are dropped), then from the
browser's ``Accept-Language``, then English.
"""

from __future__ import annotations

from flask import Flask, request
from flask_babel import Babel

LANGUAGES = {"en": "English", "zh": "中文"}


def select_locale() -> str:
    chosen = request.args.get("lang") or request.form.get("lang")
    if chosen in LANGUAGES:
        return chosen
    best = request.accept_languages.best_match(["en", "zh", "zh-CN", "zh-Hans"], default="en")
    return "zh" if best.startswith("zh") else "en"


def register_i18n(app: Flask) -> None:
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES
    app.jinja_env.globals["current_lang"] = select_locale
