"""``/embed``: the shopper flow for an iframe on the brand's microsite.

The page may be framed only by the origins a planner listed (see
``security.py``); it sets no cookie. A POST redirects to the result inside
the frame (``/embed/r/<token>``); ``static/embed.js`` tells the host page
about the frame's height and the pairing with ``postMessage``; the events
are documented in ``docs/embedding.md``.
"""

from __future__ import annotations

from flask import Blueprint
from werkzeug.wrappers import Response as BaseResponse

from .pairing import handle, show_result
from .security import allow_embedding

bp = Blueprint("embed", __name__)


@bp.route("/embed", methods=["GET", "POST"])
def form() -> tuple[str, int] | BaseResponse:
    allow_embedding()
    return handle("embed/page.html", "embed")


@bp.get("/embed/r/<token>")
def result(token: str) -> BaseResponse:
    allow_embedding()
    return show_result("embed/result.html", token, "embed")
