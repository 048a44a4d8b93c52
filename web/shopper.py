"""The shopper pages at ``/`` (and ``/c/<campaign>/``): the form, results, images, links out.

- ``/``: the form (:func:`web.pairing.handle`); a POST redirects to the result.
- ``/r/<token>``: a result, to reopen and share (:func:`web.pairing.show_result`).
- ``/brand.css``, ``/logo``, ``/portraits/<celebrity>``: the campaign's colours
  and fonts, its logo and its portraits, from the database, cached by version.
- ``/go/<celebrity>``: a celebrity's call to action. It redirects only to the
  link the planner stored for that celebrity (never to a URL from the
  request) and counts the click for the funnel.
- ``/healthz``: the health check.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Response, abort, redirect, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response as BaseResponse

from matcher.errors import InputError
from matcher.profiles import ID_PATTERN
from matcher.store.brand_images import LOGO_KEY, find_image, portrait_key
from matcher.store.events import record_event

from .branding import current_brand
from .campaigns import current_campaign, database
from .pairing import current_matcher, handle, show_result

log = logging.getLogger(__name__)

bp = Blueprint("shopper", __name__)

#: A year: a versioned URL (``?v=<digest>``) never changes content.
IMMUTABLE = "public, max-age=31536000, immutable"
#: An unversioned request gets the current version, briefly cached.
SHORT = "public, max-age=300"
#: Where a click can come from, as the funnel counts sources.
CLICK_SOURCES = ("form", "embed")


@bp.get("/healthz")
def healthz() -> tuple[dict[str, object], int]:
    """200 once the matcher is loaded (the app is built after it is) and the database answers."""
    try:
        database().ping()
    except SQLAlchemyError:
        return {"status": "database unavailable"}, 503
    return {"status": "ok", "celebrities": current_matcher().roster_size}, 200


@bp.route("/", methods=["GET", "POST"])
def form() -> tuple[str, int] | BaseResponse:
    return handle("shopper/page.html", "form")


@bp.get("/r/<token>")
def result(token: str) -> BaseResponse:
    return show_result("shopper/result.html", token, "form")


def _cached(body: bytes | str, mimetype: str, digest: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Cache-Control"] = IMMUTABLE if request.args.get("v") == digest else SHORT
    response.set_etag(digest)
    response.make_conditional(request)
    return response


@bp.get("/brand.css")
def brand_css() -> Response:
    brand = current_brand()
    return _cached(brand.css, "text/css", brand.css_version)


def _image(key: str) -> Response:
    image = find_image(database(), current_campaign().id, key)
    if image is None:
        abort(404)
    return _cached(image.data, image.content_type, image.digest)


@bp.get("/logo")
def logo() -> Response:
    return _image(LOGO_KEY)


def _celebrity(value: str) -> str:
    """A celebrity id as profiles spell them; anything else is not looked up (404)."""
    if not re.fullmatch(ID_PATTERN, value) or len(value) > 64:
        abort(404)
    return value


@bp.get("/portraits/<celebrity>")
def portrait(celebrity: str) -> Response:
    return _image(portrait_key(_celebrity(celebrity)))


@bp.get("/go/<celebrity>")
def go(celebrity: str) -> BaseResponse:
    """Follow a celebrity's call to action: to the stored link only, counting the click."""
    brand = current_brand()
    target = brand.cta_url(_celebrity(celebrity))
    if target is None or celebrity not in {p.id for p in current_matcher().index.profiles}:
        abort(404)
    source = request.args.get("src")
    _count_click(
        brand.campaign.id,
        source if source in CLICK_SOURCES else "form",
        brand.lang,
        celebrity,
    )
    response = redirect(target, 302)
    response.headers["Cache-Control"] = "no-store"
    return response


def _count_click(campaign_id: int, source: str, lang: str, celebrity: str) -> None:
    """Count the click for the funnel; a click is never lost to a counting problem."""
    try:
        record_event(
            database(),
            campaign_id,
            "cta_click",
            source=source,
            language=lang,
            celebrity_id=celebrity,
        )
    except (InputError, SQLAlchemyError) as exc:
        log.warning("call-to-action click not counted: %s", type(exc).__name__)


@bp.record_once
def _on_register(state: Any) -> None:
    from .branding import language_url, shopper_endpoint

    state.app.jinja_env.globals["shopper_endpoint"] = shopper_endpoint
    state.app.jinja_env.globals["language_url"] = language_url
