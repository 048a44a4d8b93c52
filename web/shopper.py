"""The shopper form: type what you like, see the celebrity who fits you and why.

A minimal, JavaScript-free form; it works as a plain POST and result page.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from matcher.errors import InputError
from matcher.matching import MAX_TEXT_CHARS, Matcher

bp = Blueprint("shopper", __name__)


def _matcher() -> Matcher:
    matcher: Matcher = current_app.extensions["matcher"]
    return matcher


@bp.get("/healthz")
def healthz() -> tuple[dict[str, object], int]:
    """200 once the matcher is loaded (it is loaded before the app accepts requests)."""
    return {"status": "ok", "celebrities": _matcher().roster_size}, 200


@bp.route("/", methods=["GET", "POST"])
def form() -> tuple[str, int]:
    text = ""
    error = None
    matches = None
    if request.method == "POST":
        text = request.form.get("text", "")
        try:
            matches = _matcher().match(text, 3)
        except InputError as exc:
            error = str(exc)
    status = 400 if error else 200
    return (
        render_template(
            "shopper/form.html", text=text, error=error, matches=matches, max_chars=MAX_TEXT_CHARS
        ),
        status,
    )
