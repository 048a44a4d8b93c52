"""The shopper form at ``/`` and the health check."""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy.exc import SQLAlchemyError

from .campaigns import database
from .pairing import current_matcher, handle

bp = Blueprint("shopper", __name__)


@bp.get("/healthz")
def healthz() -> tuple[dict[str, object], int]:
    """200 once the matcher is loaded (the app is built after it is) and the database answers."""
    try:
        database().ping()
    except SQLAlchemyError:
        return {"status": "database unavailable"}, 503
    return {"status": "ok", "celebrities": current_matcher().roster_size}, 200


@bp.route("/", methods=["GET", "POST"])
def form() -> tuple[str, int]:
    return handle("shopper/page.html", "form")
