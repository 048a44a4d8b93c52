"""What every planner page shares: the blueprint, its limits, and the hooks that run first.

Every request to the area passes :func:`require_login` (off until a password
is configured; a session ends at logout, after :data:`SESSION_HOURS`, or when
the configured credentials change) and :func:`select_campaign` (the campaign
named by ``?campaign=``, the default without it, kept in every link and
redirect), in that order. Pages are never cached.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    redirect,
    request,
    session,
    url_for,
)
from flask_babel import gettext
from werkzeug.wrappers import Response as BaseResponse

from matcher.store import (
    DEFAULT_SLUG,
    Campaign,
    list_campaigns,
)
from matcher.store.campaigns import SLUG_PATTERN

from ..campaigns import (
    current_campaign,
    database,
    lookup,
)
from ..errors import ApiError
from ..i18n import LANGUAGES
from ..jobs import DEFAULT_TTL, JobRegistry
from ..pairing import facet_label

bp = Blueprint("planner", __name__, url_prefix="/planner")

#: A login lasts a working day.
SESSION_HOURS = 12
#: Failed logins from one address within :data:`LOGIN_WINDOW` seconds before it is refused.
MAX_FAILED_LOGINS = 10
LOGIN_WINDOW = 10 * 60
#: werkzeug's hash formats; any other configured password is plain text.
HASH_PREFIXES = ("scrypt:", "pbkdf2:")
#: A top-1 lead smaller than this is flagged as a close call in the try box.
CLOSE_CALL = 0.02
#: Limits on the quick picks a planner may set, so the shopper form stays usable.
MAX_PICKS = 20
MAX_PICK_CHARS = 40
MAX_COLUMN_CHARS = 100

JOBS_KEY = "matcher.planner_jobs"
THROTTLE_KEY = "matcher.planner_login_throttle"


def credentials_stamp(app: Flask) -> str:
    """A keyed digest of the configured credentials, so changing them ends every session.

    Keyed with the secret key: the cookie is signed, not encrypted, and must
    not carry anything that helps guess the password.
    """
    secret = str(app.secret_key or "").encode("utf-8")
    account = f"{app.config['MATCHER_PLANNER_USER']}\0{app.config['MATCHER_PLANNER_PASSWORD']}"
    return hmac.new(secret, account.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def logged_in_user() -> str | None:
    login = session.get("planner")
    if not isinstance(login, dict):
        return None
    fresh = time.time() - float(login.get("at", 0)) < SESSION_HOURS * 3600
    if fresh and login.get("stamp") == credentials_stamp(current_app):
        user = login.get("user")
        return user if isinstance(user, str) else None
    return None


def job_registry(app: Flask) -> JobRegistry:
    """This worker's view of the batch jobs, made on first use.

    Every worker's registry works on the same folder under the instance path,
    so a job is seen by all of them whichever one runs it.
    """
    registry = app.extensions.get(JOBS_KEY)
    if registry is None:
        ttl = float(app.config.get("MATCHER_PLANNER_BATCH_TTL", DEFAULT_TTL))
        fresh = JobRegistry(Path(app.instance_path) / "planner-batches", ttl=ttl)
        registry = app.extensions.setdefault(JOBS_KEY, fresh)
    assert isinstance(registry, JobRegistry)
    return registry


def lang_args() -> dict[str, Any]:
    """Keep an explicitly chosen language across redirects."""
    chosen = request.args.get("lang") or request.form.get("lang")
    return {"lang": chosen} if chosen in LANGUAGES else {}


def safe_next(target: str | None) -> str | None:
    """Only a path inside the planner area: never another site, never a ``//host`` URL."""
    prefix = f"{bp.url_prefix}/"
    if not target or not target.startswith(prefix) or "\\" in target or "//" in target:
        return None
    return target


@bp.before_request
def require_login() -> BaseResponse | None:
    if not current_app.config["MATCHER_PLANNER_PASSWORD"]:
        raise ApiError(
            503,
            "planner_off",
            "The planner area is off: set MATCHER_PLANNER_PASSWORD to turn it on.",
        )
    job_registry(current_app).sweep_if_due()
    if request.endpoint == "planner.login" or logged_in_user() is not None:
        return None
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("planner.login", next=target, **lang_args()))


#: Pages that are the same whichever campaign is selected, and do not carry it.
CAMPAIGN_FREE = frozenset({"planner.login", "planner.logout"})


@bp.before_request
def select_campaign() -> None:
    """Point the request at the campaign in ``?campaign=`` (the default one without it).

    Runs after the login check, so only a planner learns which campaigns exist.
    """
    if request.endpoint in CAMPAIGN_FREE:
        return
    slug = request.args.get("campaign", "").strip() or DEFAULT_SLUG
    if not re.fullmatch(SLUG_PATTERN, slug) or lookup(slug) is None:
        raise ApiError(
            404,
            "unknown_campaign",
            gettext(
                "There is no campaign %(slug)s. Choose one of the campaigns listed at %(url)s.",
                slug=slug[:60],
                url=url_for("planner.campaigns", campaign=None),
            ),
        )
    g.campaign_slug = slug


@bp.url_defaults
def keep_campaign(endpoint: str, values: dict[str, Any]) -> None:
    """Links and redirects within the area stay on the selected campaign.

    Pass ``campaign=None`` to build a link without it (the default campaign).
    """
    slug = g.get("campaign_slug")
    if slug and slug != DEFAULT_SLUG and endpoint not in CAMPAIGN_FREE:
        values.setdefault("campaign", slug)


@bp.after_request
def no_store(response: Response) -> Response:
    # Rankings, corrections and pairings are not for shared caches or the back button.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def planner_context() -> dict[str, Any]:
    user = logged_in_user()
    selected = None
    choices: list[Campaign] = []
    if user is not None and g.get("campaign_slug"):
        selected = current_campaign()
        choices = list_campaigns(database())
    return {
        "planner_user": user,
        "facet_label": facet_label,
        "campaign": selected,
        "campaign_choices": choices,
    }
