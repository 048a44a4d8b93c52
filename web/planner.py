"""The planner area at ``/planner``: behind a login, off until a password is configured."""

from __future__ import annotations

from flask import Blueprint, current_app

from .errors import ApiError

bp = Blueprint("planner", __name__, url_prefix="/planner")


@bp.before_request
def require_configured() -> None:
    if not current_app.config["MATCHER_PLANNER_PASSWORD"]:
        raise ApiError(
            503,
            "planner_off",
            "The planner area is off: set MATCHER_PLANNER_PASSWORD to turn it on.",
        )


@bp.get("/")
def home() -> str:
    return "planner"
